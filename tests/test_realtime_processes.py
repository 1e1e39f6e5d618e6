"""Two API processes on one database: an event caused through one reaches a client of the other."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import support
from tests.sse_client import SseStream
from tests.support import TEST_SECRET, LiveServer, free_port, new_account

SERVE = (
    "import sys, uvicorn\n"
    "from whatwut.app import create_app\n"
    "from whatwut.settings import Settings\n"
    "uvicorn.run(create_app(Settings()), host='127.0.0.1', port=int(sys.argv[1]), log_level='warning')\n"
)
REPO = Path(__file__).resolve().parent.parent


def start_process(database_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WHATWUT_DATA_DIR": str(data_dir),
        "WHATWUT_SECRET_KEY": TEST_SECRET,
        "WHATWUT_RUN_WORKER": "false",
        "WHATWUT_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(REPO / "src"),
    }
    process = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the API process exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the API process did not start")


@pytest.fixture(scope="module")
def two_processes(database_url: str, data_root: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    started: list[subprocess.Popen[bytes]] = []
    servers: list[LiveServer] = []
    try:
        for n in (1, 2):
            data_dir = data_root / f"process-{n}"
            data_dir.mkdir(parents=True, exist_ok=True)
            process, url = start_process(database_url, data_dir)
            started.append(process)
            servers.append(
                LiveServer(
                    url=url, database_url=database_url, settings=support.test_settings(database_url, data_dir)
                )
            )
        yield servers[0], servers[1]
    finally:
        for process in started:
            process.terminate()
        for process in started:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def test_event_caused_on_one_process_reaches_a_client_of_the_other(two_processes) -> None:
    first, second = two_processes
    with httpx.Client(base_url=first.url, timeout=30) as client_of_first:
        admin = new_account(first, client_of_first)
        with (
            SseStream(second.url, admin.path("events"), headers=admin.headers) as on_second,
            SseStream(first.url, admin.path("events"), headers=admin.headers) as on_first,
        ):
            assert on_second.status_code == 200 and on_first.status_code == 200
            on_second.wait_connected()
            on_first.wait_connected()
            changed = client_of_first.put(
                admin.path("profile/availability"), json={"availability": "busy"}, headers=admin.headers
            )
            assert changed.status_code == 200, changed.text
            seen_by_second = on_second.next_event(timeout=15)
            seen_by_first = on_first.next_event(timeout=15)
    assert seen_by_second is not None and seen_by_second.event == "presence.updated"
    assert seen_by_second.payload == {"user_id": admin.user_id, "availability": "busy"}
    assert seen_by_first is not None and seen_by_first.id == seen_by_second.id


def test_processes_keep_accounts_apart(two_processes) -> None:
    first, second = two_processes
    with httpx.Client(base_url=first.url, timeout=30) as client:
        alice = new_account(first, client)
        bob = new_account(first, client)
        with SseStream(second.url, bob.path("events"), headers=bob.headers) as bob_stream:
            bob_stream.wait_connected()
            client.put(
                alice.path("profile/availability"), json={"availability": "online"}, headers=alice.headers
            )
            client.put(bob.path("profile/availability"), json={"availability": "online"}, headers=bob.headers)
            event = bob_stream.next_event(timeout=15)
    assert event is not None and event.payload["user_id"] == bob.user_id
