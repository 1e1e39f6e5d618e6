"""Nothing accepted is lost: SIGKILL the server mid-burst of Cloud API webhooks, restart it.

The real ``whatwut serve`` runs as a subprocess (its own process group, in-process job worker) on
the module's database. 200 signed webhooks (10% re-deliveries) go out 8 at a time; once 100 got
their 200 the server is killed outright. After a restart, every webhook that got a 200 is stored
exactly once and its processing job ran; jobs the kill interrupted are recovered by the queue's
own ``jobs.retry_stalled`` (run here once, with the dead worker's heartbeat aged, instead of
waiting out its schedule). Meta re-sends what got no 200: after that, every wamid is stored once.
A smaller, deterministic sibling of the crash run in bench/webhook_ingest.py; no timing asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from procrastinate.psycopg_connector import PsycopgConnector

from tests import support
from tests.support import PASSWORD, free_port
from whatwut.accounts import service as accounts
from whatwut.channels.whatsapp.sandbox.service import SandboxInbox, message_webhook, sign
from whatwut.context import AppContext
from whatwut.db.embedded import libpq_url
from whatwut.db.engine import transaction
from whatwut.jobs.registry import queue
from whatwut.jobs.tasks import retry_stalled

WHATWUT = str(Path(sys.executable).parent / "whatwut")
PHONE_NUMBER_ID = "190000000000042"
APP_SECRET = "crash-test-app-secret"
TOTAL, KILL_AFTER, CONCURRENCY = 200, 100, 8


@dataclass(frozen=True)
class Delivery:
    wamid: str
    body: bytes
    signature: str


def deliveries() -> list[Delivery]:
    rng = random.Random(42)
    target = SandboxInbox(0, 0, PHONE_NUMBER_ID, "190000000000043", "12025550142", "")
    made: list[Delivery] = []
    for index in range(TOTAL):
        if made and rng.random() < 0.1:
            made.append(made[rng.randrange(len(made))])  # Meta re-delivers, byte for byte
            continue
        wa_id = f"1555{rng.randrange(40):07d}"
        payload = message_webhook(
            target,
            wa_id=wa_id,
            name=f"Customer {wa_id[-2:]}",
            wamid=f"wamid.CRASH{index:05d}",
            message={"type": "text", "text": {"body": f"message {index}"}},
            at=time.time(),
        )
        body = json.dumps(payload).encode()
        made.append(Delivery(f"wamid.CRASH{index:05d}", body, sign(body, APP_SECRET)))
    return made


class Server:
    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        ours = ("DATABASE_URL", "WHATWUT_", "WHATSAPP_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env.update(
            {
                "DATABASE_URL": database_url,
                "WHATWUT_DATA_DIR": str(data_dir),
                "WHATWUT_SECRET_KEY": "crash-test-secret-key",
                "WHATWUT_LOG_LEVEL": "WARNING",
                "WHATWUT_WORKER_POLL_SECONDS": "0.5",
                "WHATSAPP_GRAPH_URL": "http://127.0.0.1:9/v23.0",
            }
        )
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [WHATWUT, "serve", "--no-wacanda", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill reaches everything it started
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "whatwut serve exited"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise AssertionError("whatwut serve did not become healthy")

    def kill(self) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def create_cloud_inbox(server: Server, database_url: str, data_dir: Path) -> int:
    email = "crash-admin@example.com"

    async def admin() -> int:
        context = AppContext.create(support.test_settings(database_url, data_dir))
        try:
            async with transaction(context.sessionmaker) as session:
                account = await accounts.create_account(session, "Crash Test")
                user = await accounts.create_user(session, email=email, name="Admin", password=PASSWORD)
                await accounts.add_member(session, account, user, "administrator")
                return account.id
        finally:
            await context.close()

    account_id = asyncio.run(admin())
    login = httpx.post(f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    created = httpx.post(
        f"{server.url}/api/v1/accounts/{account_id}/inboxes",
        headers=headers,
        json={
            "name": "WhatsApp",
            "channel": {
                "type": "whatsapp_cloud",
                "phone_number": "+12025550142",
                "phone_number_id": PHONE_NUMBER_ID,
                "business_account_id": "190000000000043",
                "access_token": "EAAcrash",
                "app_secret": APP_SECRET,
                "verify_token": "crash-verify",
            },
        },
    )
    assert created.status_code == 201, created.text
    return int(created.json()["id"])


async def burst(server: Server, sent: list[Delivery], kill_after: int | None) -> list[int]:
    """Statuses per delivery: the HTTP status, -1 when the server died under it, 0 when never sent."""
    statuses = [0] * len(sent)
    counter = itertools.count()
    acknowledged = 0
    killed = False
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:

        async def sender() -> None:
            nonlocal acknowledged, killed
            while (index := next(counter)) < len(sent) and not killed:
                delivery = sent[index]
                try:
                    response = await client.post(
                        "/webhooks/whatsapp/cloud",
                        content=delivery.body,
                        headers={
                            "Content-Type": "application/json",
                            "X-Hub-Signature-256": delivery.signature,
                        },
                    )
                except httpx.HTTPError:
                    statuses[index] = -1
                    return
                statuses[index] = response.status_code
                if response.status_code == 200:
                    acknowledged += 1
                    if kill_after is not None and acknowledged >= kill_after and not killed:
                        killed = True
                        server.kill()

        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    return statuses


def pending_jobs(conn: psycopg.Connection[Any], *, doing: bool) -> int:
    states = ("todo", "doing") if doing else ("todo",)
    row = conn.execute(
        "SELECT count(*) FROM procrastinate_jobs WHERE status::text = ANY(%s)", (list(states),)
    )
    found = row.fetchone()
    return int(found[0]) if found else 0


def wait_until_no_jobs(conn: psycopg.Connection[Any], *, doing: bool, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while pending_jobs(conn, doing=doing):
        assert time.monotonic() < deadline, "the jobs did not drain"
        time.sleep(0.2)


def recover_interrupted_jobs(database_url: str, conn: psycopg.Connection[Any], dead: list[int]) -> None:
    """``jobs.retry_stalled`` as its schedule would run it once the dead workers' heartbeats are old.

    Only the killed workers are aged: a live worker's heartbeat is up to 10 s old too, and its
    running job must not be taken for a stalled one.
    """
    conn.execute(
        "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = ANY(%s)",
        (dead,),
    )

    async def run() -> None:
        with queue.replace_connector(PsycopgConnector(conninfo=libpq_url(database_url))):
            async with queue.open_async():
                await retry_stalled(int(time.time()))

    asyncio.run(run())


def stored(conn: psycopg.Connection[Any], inbox_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT source_id, count(*) FROM messages WHERE inbox_id = %s AND message_type = 'incoming'"
        " GROUP BY source_id",
        (inbox_id,),
    ).fetchall()
    return {str(source_id): int(count) for source_id, count in rows}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "app"
    path.mkdir()
    return path


def test_every_acknowledged_webhook_survives_a_sigkill_stored_once_with_its_job_run(
    database_url: str, db_conn: psycopg.Connection[Any], data_dir: Path
) -> None:
    server = Server(database_url, data_dir)
    server.start()
    try:
        inbox_id = create_cloud_inbox(server, database_url, data_dir)
        sent = deliveries()
        statuses = asyncio.run(burst(server, sent, KILL_AFTER))
        assert server.process is not None and server.process.poll() is not None, "the server was killed"
        acknowledged = {sent[i].wamid for i, status in enumerate(statuses) if status == 200}
        assert len([s for s in statuses if s == 200]) >= KILL_AFTER
        assert set(statuses) <= {200, -1, 0}, "every answer before the kill was a 200"

        dead = [int(row[0]) for row in db_conn.execute("SELECT id FROM procrastinate_workers").fetchall()]
        server.start()  # same database, same data directory
        wait_until_no_jobs(db_conn, doing=False)
        recover_interrupted_jobs(database_url, db_conn, dead)
        wait_until_no_jobs(db_conn, doing=True)

        after_restart = stored(db_conn, inbox_id)
        assert acknowledged <= after_restart.keys(), "a webhook that got its 200 was lost"
        assert all(count == 1 for count in after_restart.values()), "a wamid was stored twice"
        unprocessed = db_conn.execute(
            "SELECT count(*) FROM whatsapp_inbound_events WHERE inbox_id = %s AND processed_at IS NULL",
            (inbox_id,),
        ).fetchone()
        assert unprocessed == (0,), "an accepted event's job never ran"
        failed = db_conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'failed'").fetchone()
        assert failed == (0,)

        # Meta re-sends whatever got no 200; in the end every message is there exactly once.
        retried = [sent[i] for i, status in enumerate(statuses) if status != 200]
        assert all(status == 200 for status in asyncio.run(burst(server, retried, None)))
        wait_until_no_jobs(db_conn, doing=True)
        final = stored(db_conn, inbox_id)
        assert final.keys() == {d.wamid for d in sent}
        assert set(final.values()) == {1}
    finally:
        server.stop()
