"""`whatwut worker` as its own OS process runs jobs deferred by someone else, then stops cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import jobs_for_tests, support
from tests.support import LiveServer, unique
from whatwut.context import AppContext
from whatwut.jobs.service import defer

REPO = Path(__file__).resolve().parent.parent
WHATWUT = REPO / ".venv" / "bin" / "whatwut"


@pytest.fixture(scope="module")
def database(database_url: str, data_root: Path, db_conn: psycopg.Connection[Any]) -> LiveServer:
    """The module's database, with no API process (and so no in-process worker) running on it."""
    for ddl in jobs_for_tests.EFFECTS_DDL:
        db_conn.execute(ddl)
    data_dir = data_root / "worker-process"
    data_dir.mkdir(parents=True, exist_ok=True)
    return LiveServer(
        url="", database_url=database_url, settings=support.test_settings(database_url, data_dir)
    )


def defer_committed(database: LiveServer, task: str, args: dict[str, Any]) -> int:
    async def go(context: AppContext) -> int:
        async with context.sessionmaker() as session:
            job_id = await defer(session, task, args)
            await session.commit()
            return job_id

    return database.run(go)  # type: ignore[return-value]


def test_standalone_worker_process_runs_a_deferred_job(database: LiveServer, db_conn) -> None:
    key = unique("standalone")
    job_id = defer_committed(database, "tests.record_effect", {"key": key})
    env = {
        **os.environ,
        "DATABASE_URL": database.database_url,
        "WHATWUT_DATA_DIR": str(database.settings.data_dir),
        "WHATWUT_SECRET_KEY": support.TEST_SECRET,
        "WHATWUT_EXTRA_TASK_MODULES": "tests.jobs_for_tests",
        "WHATWUT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO),
    }
    worker = subprocess.Popen([str(WHATWUT), "worker", "--concurrency", "2"], env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and worker.poll() is None:
            row = db_conn.execute(
                "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
            ).fetchone()
            status = row[0] if row else None
            if status == "succeeded":
                break
            time.sleep(0.1)
        assert status == "succeeded", f"job is {status}; worker exit code {worker.poll()}"
        assert db_conn.execute("SELECT count(*) FROM test_job_runs WHERE key = %s", (key,)).fetchone()[0] == 1

        # A job deferred while it runs is picked up at once (LISTEN/NOTIFY), not at the next poll.
        later = unique("while-running")
        defer_committed(database, "tests.record_effect", {"key": later})
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            if db_conn.execute("SELECT count(*) FROM test_job_effects WHERE key = %s", (later,)).fetchone()[
                0
            ]:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the running worker did not pick up the new job")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        workers_left = db_conn.execute("SELECT count(*) FROM procrastinate_workers").fetchone()[0]
        assert workers_left == 0  # it unregistered itself on the way out
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
