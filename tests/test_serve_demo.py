"""`make run` is `whatwut serve --demo`: on the embedded default, with no configuration at all.

Runs the real command as a subprocess with only a data directory, signs in with the printed demo
credentials, and starts it a second time to show the demo seeding is idempotent.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
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


def serve_demo(data_dir: Path, port: int, wacanda_port: int | None = None) -> subprocess.Popen[str]:
    """``whatwut serve --demo``; Wacanda on ``wacanda_port``, a free one by default (``port + 1``,
    the product's default, may be a client connection's port in a busy test run)."""
    ours = ("DATABASE_URL", "WHATWUT_", "WACANDA_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    env.update({"WHATWUT_DATA_DIR": str(data_dir), "NO_COLOR": "1", "COLUMNS": "200"})
    env["WACANDA_PORT"] = str(wacanda_port or free_port())
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


def serving_with_wacanda(data_dir: Path) -> tuple[subprocess.Popen[str], str, str]:
    """``serve --demo`` once both WhatWut and its Wacanda answer ``/health``, with their URLs (a
    server that never does is stopped by ``wait_healthy``)."""
    port, wacanda_port = free_port(), free_port()
    base, wacanda = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{wacanda_port}"
    server = serve_demo(data_dir, port, wacanda_port)
    wait_healthy(base, server)
    wait_healthy(wacanda, server)
    return server, base, wacanda


def test_sigterm_stops_serve_wacanda_and_the_embedded_database(data_dir: Path) -> None:
    """A service manager stops ``whatwut serve`` with SIGTERM: nothing it started may outlive it."""
    server, _base, wacanda = serving_with_wacanda(data_dir)
    try:
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


def wacanda_child(server: subprocess.Popen[str]) -> int:
    """The pid of the ``wacanda serve`` that ``whatwut serve`` started."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    for pid in children:
        if "wacanda" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            return int(pid)
    raise AssertionError(f"no wacanda child among {children}")


def test_a_wacanda_that_dies_is_reported_while_whatwut_keeps_serving(data_dir: Path) -> None:
    server, base, _wacanda = serving_with_wacanda(data_dir)
    try:
        os.kill(wacanda_child(server), signal.SIGKILL)
        time.sleep(1)
        assert httpx.get(f"{base}/health").status_code == 200, "WhatWut itself keeps serving"
    finally:
        printed = stop_process(server)
    assert "wacanda.exited" in printed and "-9" in printed, printed[-2000:]


def test_serve_refuses_to_start_when_wacandas_port_is_taken(data_dir: Path) -> None:
    """Starting anyway would leave the inbox without its AI agent and say nothing."""
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        server = serve_demo(data_dir, port, taken)
        try:
            printed, _ = server.communicate(timeout=120)
        finally:
            if server.poll() is None:
                server.kill()
                server.communicate()
    assert server.returncode == 2
    assert f"port {taken}" in printed and "WACANDA_PORT" in printed, printed[-2000:]
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    assert postmaster_pid(data_dir) is None, "the embedded PostgreSQL it started is stopped again"
