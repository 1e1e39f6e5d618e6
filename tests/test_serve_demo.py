"""`make run` is `whatwut serve --demo`: on the embedded default, with no configuration at all.

Runs the real command as a subprocess with only a data directory, signs in with the printed demo
credentials, and starts it a second time to show the demo seeding is idempotent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import free_port, stop_process, wait_healthy
from whatwut.bootstrap import DEMO_EMAIL, DEMO_PASSWORD

WHATWUT = str(Path(sys.executable).parent / "whatwut")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path: the embedded server runs as its own user and must reach the folder.
    path = Path(tempfile.mkdtemp(prefix="ww-demo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def serve_demo(data_dir: Path, port: int) -> subprocess.Popen[str]:
    inherited = os.environ.items()
    env = {key: value for key, value in inherited if not key.startswith(("DATABASE_URL", "WHATWUT_"))}
    env.update({"WHATWUT_DATA_DIR": str(data_dir), "NO_COLOR": "1", "COLUMNS": "200"})
    return subprocess.Popen(
        [WHATWUT, "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def demo_state(base: str) -> tuple[list[str], list[str]]:
    login = httpx.post(f"{base}/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert login.status_code == 200, login.text
    body = login.json()
    assert [a["name"] for a in body["accounts"]] == ["Demo"]
    account_id = body["accounts"][0]["id"]
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    inboxes = httpx.get(f"{base}/api/v1/accounts/{account_id}/inboxes", headers=headers).json()["data"]
    conversations = httpx.get(f"{base}/api/v1/accounts/{account_id}/conversations", headers=headers).json()
    return sorted(i["name"] for i in inboxes), sorted(c["contact"]["name"] for c in conversations["data"])


def test_serve_demo_runs_on_the_embedded_default_and_seeds_once(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = serve_demo(data_dir, port)
    try:
        wait_healthy(base, first)
        inboxes, customers = demo_state(base)
        health = httpx.get(f"{base}/health").json()
    finally:
        printed = stop_process(first)
    assert DEMO_EMAIL in printed and DEMO_PASSWORD in printed
    assert health["database_version"].startswith("18")
    assert (data_dir / "pgdata" / "PG_VERSION").exists(), "the embedded server keeps its data in the data dir"
    assert "Website" in inboxes
    assert len(customers) >= 3

    second = serve_demo(data_dir, port)
    try:
        wait_healthy(base, second)
        assert demo_state(base) == (inboxes, customers), "a second --demo start adds nothing"
    finally:
        stop_process(second)


def postmaster_pid(data_dir: Path) -> int | None:
    """The embedded server's pid while it runs (PostgreSQL removes the file on a clean stop)."""
    pid_file = data_dir / "pgdata" / "postmaster.pid"
    return int(pid_file.read_text().split()[0]) if pid_file.exists() else None


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_serve_wacanda_and_the_embedded_database(data_dir: Path) -> None:
    """A service manager stops ``whatwut serve`` with SIGTERM: nothing it started may outlive it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve_demo(data_dir, port)
    try:
        wait_healthy(base, server)
        wacanda = f"http://127.0.0.1:{port + 1}"
        wait_healthy(wacanda, server)
        database = postmaster_pid(data_dir)
        assert database is not None and running(database)
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    assert server.returncode != 0, "stopped by a signal, not a normal exit"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{wacanda}/health", timeout=2)
    deadline = time.monotonic() + 30
    while running(database) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(database), "the embedded PostgreSQL was left running"
    assert postmaster_pid(data_dir) is None
