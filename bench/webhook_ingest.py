"""Webhook ingest: how many signed Cloud API webhooks a real server accepts per second, how fast.

Starts an embedded PostgreSQL in a temporary directory and the real app under uvicorn
(``uvicorn whatwut.app:create_app --factory``, the app ``whatwut serve`` runs, each process with
its in-process job worker) with 1 and then 2 worker processes; creates an administrator and a
Cloud API inbox through the API; then drives ``POST /webhooks/whatsapp/cloud`` with concurrent
signed webhooks (a minimal keep-alive HTTP/1.1 client, one message per webhook as Meta sends
them, 10% of them re-deliveries of earlier wamids; ``--client httpx`` for httpx's pool). It
reports accepted webhooks/s and the p50/p95/p99 time to the 200, waits for the jobs to drain, and
checks that every unique wamid is stored exactly once.

The crash run SIGKILLs the server (its whole process group) mid-burst, restarts it on the same
database, and checks that every webhook that got a 200 is stored exactly once and its job ran.
Jobs the kill interrupted (``doing`` under a dead worker) are recovered by the queue's own
``jobs.retry_stalled`` job; instead of waiting the minutes its schedule takes, the run ages the
dead worker's heartbeat and runs that job's code once.

    .venv/bin/python bench/webhook_ingest.py                 # 20,000 webhooks, 64 at once, 1 and 2 workers
    .venv/bin/python bench/webhook_ingest.py --messages 2000 --workers 1 --no-docs   # a quick look

Writes its figures into docs/benchmarks.md between the ``webhook_ingest`` markers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from _docs import DOCS, replace_section  # noqa: E402

from whatwut.channels.whatsapp.sandbox.service import SandboxInbox, message_webhook, sign  # noqa: E402
from whatwut.db.embedded import sqlalchemy_url, start_embedded, stop_embedded  # noqa: E402
from whatwut.db.migrate import upgrade_to_head  # noqa: E402

START, END = "<!-- webhook_ingest:start -->", "<!-- webhook_ingest:end -->"
#: What the profiles showed, written by hand; kept when the figures above it are rewritten.
NOTES = "<!-- webhook_ingest:notes -->"
BIN = Path(sys.executable).parent
PHONE_NUMBER_ID = "106540352242922"
BUSINESS_ACCOUNT_ID = "102290129340398"
APP_SECRET = "bench-app-secret-0123456789abcdef"
ADMIN_EMAIL, ADMIN_PASSWORD = "bench@example.com", "bench-password-123"
WEBHOOK = "/webhooks/whatsapp/cloud"
WORDS = (
    "hi hello order tracking refund invoice delivery address where is my package please help thanks",
    "olá pedido entrega obrigado hola envío gracias",
)
VOCABULARY = " ".join(WORDS).split()


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the deliveries ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    wamid: str
    body: bytes
    signature: str
    duplicate: bool


def build_deliveries(n: int, duplicates: float, contacts: int, seed: int, prefix: str) -> list[Delivery]:
    """``n`` signed webhooks; a ``duplicates`` share re-sends an earlier one byte for byte (Meta's retry)."""
    rng = random.Random(seed)
    target = SandboxInbox(
        account_id=0,
        inbox_id=0,
        phone_number_id=PHONE_NUMBER_ID,
        business_account_id=BUSINESS_ACCOUNT_ID,
        display_phone_number="12025550123",
        access_token="",
    )
    deliveries: list[Delivery] = []
    now = time.time()
    for index in range(n):
        if deliveries and rng.random() < duplicates:
            original = deliveries[rng.randrange(len(deliveries))]
            deliveries.append(Delivery(original.wamid, original.body, original.signature, True))
            continue
        customer = rng.randrange(contacts)
        wa_id = f"1555{customer:07d}"
        wamid = f"wamid.BENCH{prefix}{index:08d}{rng.getrandbits(40):010x}"
        text = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(3, 25)))
        payload = message_webhook(
            target,
            wa_id=wa_id,
            name=f"Customer {customer}",
            wamid=wamid,
            message={"type": "text", "text": {"body": text}},
            at=now,
        )
        body = json.dumps(payload, separators=(",", ":")).encode()
        deliveries.append(Delivery(wamid, body, sign(body, APP_SECRET), False))
    return deliveries


# --- the server ---------------------------------------------------------------------------------


@dataclass
class Server:
    """``workers`` uvicorn processes; with ``job_workers``, that many ``whatwut worker`` processes
    run the jobs and the web processes run none (``WHATWUT_RUN_WORKER=0``), as in production."""

    workers: int
    port: int
    env: dict[str, str]
    job_workers: int = 0
    job_concurrency: int = 4
    process: subprocess.Popen[bytes] | None = None
    job_processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in [self.process, *self.job_processes] if p is not None]

    def start(self) -> None:
        command = [
            str(BIN / "python"), "-m", "uvicorn", "whatwut.app:create_app", "--factory",
            "--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        log_file = open(Path(self.env["WHATWUT_DATA_DIR"]) / "server.log", "ab")  # noqa: SIM115
        env = {**self.env, "WHATWUT_RUN_WORKER": "0" if self.job_workers else "1"}
        # Its own process group: SIGKILL reaches the supervisor and every worker process at once.
        self.process = subprocess.Popen(
            command, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.job_processes = [
            subprocess.Popen(
                [str(BIN / "whatwut"), "worker", "--concurrency", str(self.job_concurrency)],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for _ in range(self.job_workers)
        ]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {log_file.name}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    time.sleep(1.0 if self.workers > 1 else 0.2)  # let every worker process come up
                    return
            time.sleep(0.2)
        raise RuntimeError("the server did not become healthy")

    def kill(self) -> None:
        for process in [self.process, *self.job_processes]:
            if process is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def stop(self) -> None:
        for process in [self.process, *self.job_processes]:
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@contextlib.contextmanager
def database(root: Path) -> Iterator[str]:
    """A fresh embedded PostgreSQL owned by the benchmark (it survives the server's SIGKILL)."""
    server_dir = root / "pg"
    url = start_embedded(server_dir)
    try:
        upgrade_to_head(sqlalchemy_url(url))
        yield url
    finally:
        stop_embedded(server_dir)


def server_env(url: str, data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WHATWUT_", "WHATSAPP_"))}
    env.update(
        {
            "DATABASE_URL": sqlalchemy_url(url),
            "WHATWUT_DATA_DIR": str(data_dir),
            "WHATWUT_SECRET_KEY": "bench-secret-key-not-for-production",
            "WHATWUT_LOG_LEVEL": "WARNING",
            "WHATWUT_WORKER_POLL_SECONDS": "1",
            # No job may reach the internet; nothing in a text message needs the Graph API.
            "WHATSAPP_GRAPH_URL": "http://127.0.0.1:9/v23.0",
        }
    )
    return env


def create_inbox(server: Server) -> int:
    """The administrator (CLI) and the Cloud API inbox (API), as an operator would create them."""
    subprocess.run(
        [str(BIN / "whatwut"), "create-admin", "--email", ADMIN_EMAIL, "--password", ADMIN_PASSWORD,
         "--account", "Bench"],
        env=server.env, check=True, capture_output=True,
    )  # fmt: skip
    login = httpx.post(
        f"{server.url}/api/v1/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}
    )
    login.raise_for_status()
    account_id = login.json()["accounts"][0]["id"]
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    created = httpx.post(
        f"{server.url}/api/v1/accounts/{account_id}/inboxes",
        headers=headers,
        json={
            "name": "Bench WhatsApp",
            "enable_auto_assignment": False,
            "channel": {
                "type": "whatsapp_cloud",
                "phone_number": "+12025550123",
                "phone_number_id": PHONE_NUMBER_ID,
                "business_account_id": BUSINESS_ACCOUNT_ID,
                "access_token": "EAAbench",
                "app_secret": APP_SECRET,
                "verify_token": "bench-verify",
            },
        },
    )
    if created.status_code != 201:
        raise RuntimeError(f"creating the inbox failed: {created.status_code} {created.text}")
    return int(created.json()["id"])


# --- the burst ------------------------------------------------------------------------------------


@dataclass
class Burst:
    statuses: list[int]
    latencies_ms: list[float]
    seconds: float
    client_cpu_seconds: float
    killed_after: int | None = None

    @property
    def acknowledged(self) -> int:
        return sum(1 for s in self.statuses if s == 200)


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on asyncio streams: one request at a time per connection.

    The load generator shares the server's 2 cores, so it must be cheap: httpx's pool spends ~5 ms
    of CPU per request at 64 connections (measured here), more than the server; this costs ~0.1 ms.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def request(self, path: str, body: bytes, headers: dict[str, str]) -> bytes:
        """The bytes of one POST, built before the timed phase."""
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Length: {len(body)}\r\n"
            f"{head}\r\n".encode()
            + body
        )

    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> int:
        return await self.send(self.request(path, body, headers))

    async def send(self, request: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        length, close = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"connection" and value.strip().lower() == b"close":
                close = True
        await self.reader.readexactly(length)
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def drive(
    url: str,
    deliveries: list[Delivery],
    concurrency: int,
    *,
    kill_after: int | None = None,
    server: Server | None = None,
    client: str = "raw",
    rate: float | None = None,
) -> Burst:
    """Send every delivery, ``concurrency`` at a time; with ``kill_after``, SIGKILL the server then.

    With ``rate``, the load is open-loop: delivery *i* is due at ``i / rate`` seconds and its time to
    the 200 counts from then, so a server that falls behind is charged for the wait too (no
    coordinated omission). Without it, every connection sends again as soon as it has its answer:
    the server's saturated throughput, with the latency of a queue 64 deep.
    """
    statuses = [0] * len(deliveries)
    latencies = [0.0] * len(deliveries)
    counter = itertools.count()
    acknowledged = 0
    killed: list[int] = []
    host, port = url.removeprefix("http://").rsplit(":", 1)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    prepared = [
        RawHttp(host, int(port)).request(
            WEBHOOK,
            d.body,
            {"Content-Type": "application/json", "X-Hub-Signature-256": d.signature},
        )
        for d in deliveries
    ]
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as pooled:

        async def sender() -> None:
            nonlocal acknowledged
            raw = RawHttp(host, int(port))
            try:
                while True:
                    index = next(counter)
                    if index >= len(deliveries) or killed:
                        return
                    delivery = deliveries[index]
                    headers = {"Content-Type": "application/json", "X-Hub-Signature-256": delivery.signature}
                    if rate:
                        started = paced_from + index / rate
                        await asyncio.sleep(max(0.0, started - time.perf_counter()))
                    else:
                        started = time.perf_counter()
                    try:
                        if client == "raw":
                            statuses[index] = await raw.send(prepared[index])
                        else:
                            response = await pooled.post(WEBHOOK, content=delivery.body, headers=headers)
                            statuses[index] = response.status_code
                    except (httpx.HTTPError, OSError, asyncio.IncompleteReadError):
                        statuses[index] = -1  # no answer: the server died under this request
                        return
                    latencies[index] = (time.perf_counter() - started) * 1000
                    if statuses[index] == 200:
                        acknowledged += 1
                        if kill_after is not None and acknowledged >= kill_after and not killed:
                            killed.append(acknowledged)
                            assert server is not None
                            server.kill()
            finally:
                await raw.close()

        started = paced_from = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    answered = [lat for lat, status in zip(latencies, statuses, strict=True) if status == 200]
    return Burst(statuses, answered, seconds, cpu, killed[0] if killed else None)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


# --- the checks -----------------------------------------------------------------------------------


def job_counts(conn: psycopg.Connection[Any]) -> dict[str, int]:
    rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs GROUP BY 1").fetchall()
    return {str(status): int(count) for status, count in rows}


def wait_for_jobs(conn: psycopg.Connection[Any], *, timeout: float, allow_doing: bool = False) -> float:
    """Seconds until no job is ``todo`` (nor ``doing``, unless allowed); raises on timeout."""
    started = time.monotonic()
    while True:
        counts = job_counts(conn)
        pending = counts.get("todo", 0) + (0 if allow_doing else counts.get("doing", 0))
        if pending == 0:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"jobs did not drain in {timeout:.0f}s: {counts}")
        time.sleep(0.5)


def stored_wamids(conn: psycopg.Connection[Any], inbox_id: int) -> dict[str, int]:
    rows = conn.execute(
        "SELECT source_id, count(*) FROM messages WHERE inbox_id = %s AND message_type = 'incoming'"
        " GROUP BY source_id",
        (inbox_id,),
    ).fetchall()
    return {str(source_id): int(count) for source_id, count in rows}


def recover_stalled_jobs(url: str, dead: list[int]) -> int:
    """What ``jobs.retry_stalled`` does on its schedule, now: dead workers' ``doing`` jobs run again.

    The killed workers (``dead``) stopped sending heartbeats; rather than wait out the timeout,
    their last heartbeat is moved an hour back (only theirs: a live worker's heartbeat may be 10 s
    old too), then the periodic job's own function runs once.
    """
    from procrastinate.psycopg_connector import PsycopgConnector

    from whatwut.jobs.registry import queue
    from whatwut.jobs.tasks import retry_stalled

    with psycopg.connect(url, autocommit=True) as conn:
        live = conn.execute(
            "SELECT count(*) FROM procrastinate_jobs j"
            " LEFT JOIN procrastinate_workers w ON w.id = j.worker_id WHERE j.status = 'doing'"
            " AND (w.id IS NULL OR w.id = ANY(%s))",
            (dead,),
        ).fetchone()
        interrupted = int(live[0]) if live else 0
        if not interrupted:
            return 0
        conn.execute(
            "UPDATE procrastinate_workers SET last_heartbeat = now() - interval '1 hour' WHERE id = ANY(%s)",
            (dead,),
        )

    async def run() -> None:
        with queue.replace_connector(PsycopgConnector(conninfo=url)):
            async with queue.open_async():
                await retry_stalled(int(time.time()))

    asyncio.run(run())
    return interrupted


# --- the runs -------------------------------------------------------------------------------------


@dataclass
class RunResult:
    workers: int
    requests: int
    unique: int
    burst: Burst
    drain_seconds: float
    stored_ok: bool
    problems: list[str] = field(default_factory=list)
    jobs: dict[str, int] = field(default_factory=dict)
    server_cpu_seconds: float = 0.0
    jobs_cpu_seconds: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0

    @property
    def rate(self) -> float:
        return self.burst.acknowledged / self.burst.seconds

    @property
    def processed_rate(self) -> float:
        """Events turned into messages per second, from the burst's start to the last job's end."""
        return self.unique / (self.burst.seconds + self.drain_seconds)


def process_cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children still running (uvicorn's worker processes)."""
    total = 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for one in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def steady_run(args: argparse.Namespace, workers: int) -> RunResult:
    root = Path(tempfile.mkdtemp(prefix="ww-bench-ingest-"))
    try:
        with database(root) as url:
            server = Server(
                workers=workers,
                port=free_port(),
                env=server_env(url, root / "app"),
                job_workers=args.job_workers,
                job_concurrency=args.job_concurrency,
            )
            Path(server.env["WHATWUT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
            server.start()
            try:
                inbox_id = create_inbox(server)
                warmup = build_deliveries(args.warmup, 0.0, args.contacts, args.seed + 1, "W")
                asyncio.run(drive(server.url, warmup, args.concurrency, client=args.client))
                deliveries = build_deliveries(args.messages, args.duplicates, args.contacts, args.seed, "M")
                with psycopg.connect(url, autocommit=True) as conn:
                    wait_for_jobs(conn, timeout=600)
                    load_before = os.getloadavg()[0]
                    assert server.process is not None
                    cpu_before = process_cpu_seconds(server.process.pid)
                    jobs_cpu_before = sum(process_cpu_seconds(p.pid) for p in server.job_processes)
                    log(f"{workers} worker(s): {len(deliveries)} webhooks, {args.concurrency} at once")
                    burst = asyncio.run(
                        drive(server.url, deliveries, args.concurrency, client=args.client, rate=args.rate)
                    )
                    server_cpu = process_cpu_seconds(server.process.pid) - cpu_before
                    jobs_cpu = sum(process_cpu_seconds(p.pid) for p in server.job_processes) - jobs_cpu_before
                    load_after = os.getloadavg()[0]
                    log(f"  {burst.acknowledged} acknowledged in {burst.seconds:.1f}s; waiting for the jobs")
                    drain = wait_for_jobs(conn, timeout=1800)
                    stored = stored_wamids(conn, inbox_id)
                    jobs = job_counts(conn)
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    problems = []
    unique = {d.wamid for d in deliveries} | {d.wamid for d in warmup}
    failed = [s for s in burst.statuses if s != 200]
    if failed:
        problems.append(f"{len(failed)} webhooks did not get a 200 ({sorted(set(failed))})")
    missing = unique - stored.keys()
    doubled = {w: c for w, c in stored.items() if c != 1}
    extra = stored.keys() - unique
    if missing:
        problems.append(f"{len(missing)} wamids not stored")
    if doubled:
        problems.append(f"{len(doubled)} wamids stored more than once")
    if extra:
        problems.append(f"{len(extra)} unexpected messages")
    if jobs.get("failed"):
        problems.append(f"{jobs['failed']} jobs failed")
    return RunResult(
        workers=workers,
        requests=len(deliveries),
        unique=len({d.wamid for d in deliveries}),
        burst=burst,
        drain_seconds=drain,
        stored_ok=not problems,
        problems=problems,
        jobs=jobs,
        server_cpu_seconds=server_cpu,
        jobs_cpu_seconds=jobs_cpu,
        load_before=load_before,
        load_after=load_after,
    )


@dataclass
class CrashResult:
    workers: int
    sent: int
    acknowledged: int
    killed_after: int
    unanswered: int
    stored_ok: bool
    interrupted_jobs: int
    problems: list[str]
    jobs: dict[str, int]


def crash_run(args: argparse.Namespace, workers: int) -> CrashResult:
    root = Path(tempfile.mkdtemp(prefix="ww-bench-crash-"))
    try:
        with database(root) as url:
            server = Server(
                workers=workers,
                port=free_port(),
                env=server_env(url, root / "app"),
                job_workers=args.job_workers,
                job_concurrency=args.job_concurrency,
            )
            Path(server.env["WHATWUT_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
            server.start()
            inbox_id = create_inbox(server)
            deliveries = build_deliveries(
                args.crash_messages, args.duplicates, args.contacts, args.seed + 7, "C"
            )
            kill_after = len(deliveries) * 2 // 5
            log(f"crash run, {workers} worker(s): SIGKILL after {kill_after} acknowledged webhooks")
            burst = asyncio.run(
                drive(server.url, deliveries, args.concurrency, kill_after=kill_after, server=server)
            )
            acked = {deliveries[i].wamid for i, s in enumerate(burst.statuses) if s == 200}
            unanswered = sum(1 for s in burst.statuses if s == -1)
            with psycopg.connect(url, autocommit=True) as conn:
                dead = [int(r[0]) for r in conn.execute("SELECT id FROM procrastinate_workers").fetchall()]
            server.start()
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    wait_for_jobs(conn, timeout=600, allow_doing=True)
                    interrupted = recover_stalled_jobs(url, dead)
                    wait_for_jobs(conn, timeout=600)
                    stored = stored_wamids(conn, inbox_id)
                    jobs = job_counts(conn)
                    unfinished_events = conn.execute(
                        "SELECT count(*) FROM whatsapp_inbound_events"
                        " WHERE inbox_id = %s AND processed_at IS NULL",
                        (inbox_id,),
                    ).fetchone()
            finally:
                server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    problems = []
    missing = acked - stored.keys()
    doubled = [w for w, c in stored.items() if c != 1]
    if missing:
        problems.append(f"{len(missing)} acknowledged wamids not stored")
    if doubled:
        problems.append(f"{len(doubled)} wamids stored more than once")
    if unfinished_events and unfinished_events[0]:
        problems.append(f"{unfinished_events[0]} accepted events never processed")
    if jobs.get("failed"):
        problems.append(f"{jobs['failed']} jobs failed")
    return CrashResult(
        workers=workers,
        sent=sum(1 for s in burst.statuses if s != 0),
        acknowledged=burst.acknowledged,
        killed_after=burst.killed_after or 0,
        unanswered=unanswered,
        stored_ok=not problems,
        interrupted_jobs=interrupted,
        problems=problems,
        jobs=jobs,
    )


# --- the report -----------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return (
        f"{os.cpu_count()} cores ({cpu}), {ram} RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def report(
    args: argparse.Namespace, runs: list[RunResult], crashes: list[CrashResult], started: datetime
) -> str:
    lines = [
        "## Webhook ingest (`make bench-webhooks`, bench/webhook_ingest.py)",
        "",
        f"- **Run**: {started:%Y-%m-%d %H:%M} UTC; {args.messages:,} signed webhooks per run "
        f"(one text message each, {args.duplicates:.0%} re-deliveries of earlier wamids, "
        f"{args.contacts:,} customers), {args.concurrency} in flight, "
        f"after {args.warmup} warm-up webhooks.",
        f"- **Machine**: {machine()}. The load generator runs on the same 2 cores: a minimal keep-alive "
        "HTTP/1.1 client on asyncio streams (`RawHttp`; httpx's pool cost more CPU than the server).",
        "- **Server**: `uvicorn whatwut.app:create_app --factory --workers N` (the app `whatwut serve` runs) "
        + (
            f"with its in-process job worker off and {args.job_workers} separate `whatwut worker "
            f"--concurrency {args.job_concurrency}` process(es) beside it, as in production"
            if args.job_workers
            else "with its in-process job worker in every process"
        )
        + ", on embedded PostgreSQL 18 as installed. The request path verifies the signature, and a group "
        "commit writes the raw events of all deliveries in flight and one processing job per inbox in one "
        "transaction before their 200s (ADR 0010); a job applies its batch one event per transaction.",
        "",
        "| web processes | webhooks/s (200s) | p50 ms | p95 ms | p99 ms | max ms | load avg before → after"
        " | web CPU s | job worker CPU s | client CPU s | jobs drained after the burst | events processed/s"
        " | stored once per wamid |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for run in runs:
        lat = run.burst.latencies_ms
        lines.append(
            f"| {run.workers} | {run.rate:,.0f} | {percentile(lat, 50):.1f} | {percentile(lat, 95):.1f} | "
            f"{percentile(lat, 99):.1f} | {max(lat) if lat else float('nan'):.1f} | "
            f"{run.load_before:.1f} → {run.load_after:.1f} | {run.server_cpu_seconds:.0f} | "
            f"{run.jobs_cpu_seconds:.0f} | {run.burst.client_cpu_seconds:.0f} | {run.drain_seconds:.0f} s | "
            f"{run.processed_rate:,.0f} | "
            f"{'yes' if run.stored_ok else '**no**: ' + '; '.join(run.problems)} |"
        )
    if crashes:
        lines += [
            "",
            "Crash runs (SIGKILL of the server's process group mid-burst, restart on the same database):",
            "",
            "| web processes | webhooks answered 200 before the kill | requests cut off "
            "| jobs interrupted (recovered by `jobs.retry_stalled`) | every 200 stored once, its job run |",
            "| --- | ---: | ---: | ---: | --- |",
        ]
        for crash in crashes:
            verdict = "yes" if crash.stored_ok else "**no**: " + "; ".join(crash.problems)
            lines.append(
                f"| {crash.workers} | {crash.acknowledged:,} | {crash.unanswered} | "
                f"{crash.interrupted_jobs} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offer this many webhooks/s (open loop) instead of sending as fast as answers come back",
    )
    parser.add_argument("--duplicates", type=float, default=0.10)
    parser.add_argument("--contacts", type=int, default=4_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="uvicorn processes")
    parser.add_argument(
        "--job-workers",
        type=int,
        default=1,
        help="separate `whatwut worker` processes (0: each web process runs its in-process worker)",
    )
    parser.add_argument(
        "--job-concurrency", type=int, default=8, help="jobs each `whatwut worker` runs at once"
    )
    parser.add_argument("--crash-messages", type=int, default=5_000)
    parser.add_argument("--no-crash", action="store_true")
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    args = parser.parse_args()
    started = datetime.now(UTC)
    runs = [steady_run(args, workers) for workers in args.workers]
    for run in runs:
        lat = run.burst.latencies_ms
        log(
            f"{run.workers} worker(s): {run.rate:,.0f} webhooks/s, p50 {percentile(lat, 50):.1f} ms, "
            f"p95 {percentile(lat, 95):.1f} ms, p99 {percentile(lat, 99):.1f} ms; "
            f"drained {run.drain_seconds:.0f}s after, {run.processed_rate:.0f} events/s; "
            f"stored once: {run.stored_ok} {run.problems}"
        )
    crashes = [] if args.no_crash else [crash_run(args, workers) for workers in args.workers]
    for crash in crashes:
        log(
            f"crash, {crash.workers} worker(s): {crash.acknowledged} acknowledged; "
            f"ok: {crash.stored_ok} {crash.problems}"
        )
    section = report(args, runs, crashes, started)
    print(section)
    if not args.no_docs:
        replace_section(START, END, section.rstrip(), notes=NOTES)
        log(f"wrote {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
