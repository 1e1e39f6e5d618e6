"""``wacanda worker`` as a deployment runs it beside a server started with WACANDA_RUN_WORKER=false:
a real process that ingests uploads and answers customers (the replies queue has workers of its
own), and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psycopg

from tests.wacanda.conftest import serve_wacanda_app, upload, wacanda_settings, wait_processed
from tests.wacanda.test_bot_retries import AGENT_ID, SECRET, ScriptedWhatWut, deliver, whatwut

__all__ = ["whatwut"]  # the scripted WhatWut fixture, shared with the bot retry tests
WACANDA = Path(sys.executable).with_name("wacanda")


def jobs_by_queue(database_url: str, status: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT queue_name, count(*) FROM wacanda.procrastinate_jobs WHERE status = %s GROUP BY 1",
            (status,),
        ).fetchall()
    return {str(queue): int(count) for queue, count in rows}


def test_the_worker_process_ingests_answers_and_stops_on_sigterm(
    wacanda_db: str, data_root: Path, whatwut: ScriptedWhatWut
) -> None:
    data_dir = data_root / "wacanda-worker-cli"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "wacanda-bots.json").write_text(
        json.dumps(
            {"api_url": whatwut.url, "agents": {str(AGENT_ID): {"api_key": "k", "webhook_secret": SECRET}}}
        )
    )
    account_id = random.randint(10_000, 2**40)
    conversation_id = random.randint(1, 2**40)
    settings = wacanda_settings(wacanda_db, data_dir, WACANDA_RUN_WORKER=False)
    with (
        serve_wacanda_app(settings, wacanda_db) as server,
        httpx.Client(base_url=server.url, timeout=60) as http,
    ):
        headers = server.headers(account_id)
        document_id = upload(
            http, headers, "returns.md", b"# Returns\n\nYou have 14 days to return a phone.\n"
        )
        delivered = deliver(server, account_id, conversation_id, 7, "I want to talk to a human", "evt-cli")
        assert delivered.status_code == 202, delivered.text
        # Nothing runs them yet: the server has no worker.
        assert jobs_by_queue(wacanda_db, "todo") == {"wacanda": 1, "wacanda_replies": 1}

        worker = subprocess.Popen(
            [str(WACANDA), "worker", "--reply-concurrency", "2"],
            env={**os.environ, "DATABASE_URL": wacanda_db, "WHATWUT_DATA_DIR": str(data_dir)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert wait_processed(http, headers, document_id)["status"] == "ready"
            calls = whatwut.wait_for(
                lambda c: any(
                    m == "PUT" and f"/{conversation_id}/" in p and p.endswith("/status") for m, p, _ in c
                )
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=60)
    assert worker.returncode == 0, output
    assert "Traceback" not in output, output  # every job it ran was finished and recorded
    (handoff,) = [body for m, p, body in calls if m == "PUT" and p.endswith(f"/{conversation_id}/status")]
    assert handoff["reason"] == "human_request" and handoff["status"] == "open"
    assert jobs_by_queue(wacanda_db, "doing") == {}  # none left behind half-run


def test_a_server_that_stops_lets_its_running_job_finish(wacanda_db: str, data_root: Path) -> None:
    """Stopping ``wacanda serve`` (the app's lifespan) stops its workers gracefully: an ingestion
    running at that moment completes and is recorded, not left ``doing`` for the stalled-job retry."""
    data_dir = data_root / "wacanda-worker-stop"
    data_dir.mkdir(parents=True, exist_ok=True)
    account_id = random.randint(10_000, 2**40)
    catalogue = "\n\n".join(f"## Part {n}\n\nPart {n} comes in a box of {n % 5 + 2}." for n in range(30))
    with psycopg.connect(wacanda_db) as holder:
        with serve_wacanda_app(wacanda_settings(wacanda_db, data_dir), wacanda_db) as server:
            headers = server.headers(account_id)
            with httpx.Client(base_url=server.url, timeout=60) as http:
                document_id = upload(http, headers, "parts.md", catalogue.encode())
            holder.execute("SELECT 1 FROM wacanda.documents WHERE id = %s FOR UPDATE", (document_id,))
            deadline = time.monotonic() + 30
            while jobs_by_queue(wacanda_db, "doing").get("wacanda") != 1:
                assert time.monotonic() < deadline, "the ingestion never started"
                time.sleep(0.1)
            # The lock goes a moment after the server starts stopping, so the job is mid-run then.
            threading.Timer(1.0, holder.rollback).start()
        with psycopg.connect(wacanda_db) as conn:
            status = conn.execute(
                "SELECT status FROM wacanda.documents WHERE id = %s", (document_id,)
            ).fetchone()
    assert status == ("ready",)
    assert jobs_by_queue(wacanda_db, "doing") == {}
