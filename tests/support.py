"""Helpers shared by the tests: the live server, and making accounts and users through the app."""

from __future__ import annotations

import asyncio
import itertools
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
import uvicorn
from starlette.types import ASGIApp

from whatwut.accounts import service as accounts
from whatwut.app import create_app
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.settings import Settings

TEST_SECRET = "test-secret-key-not-for-production"
PASSWORD = "correct horse battery"
_counter = itertools.count(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "WHATWUT_DATA_DIR": str(data_dir),
        "WHATWUT_SECRET_KEY": TEST_SECRET,
        "WHATWUT_LOG_LEVEL": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@dataclass
class LiveServer:
    url: str
    database_url: str
    settings: Settings
    _loop_runner: asyncio.Runner | None = field(default=None, repr=False)

    def run(self, coro: object) -> object:
        """Run a coroutine against the server's database (for setup the API does not offer)."""

        async def with_context() -> object:
            context = AppContext.create(self.settings)
            try:
                return await coro(context)  # type: ignore[operator]
            finally:
                await context.close()

        return asyncio.run(with_context())


@contextmanager
def serve_in_thread(app: ASGIApp, name: str, *, lifespan: Literal["on", "off"] = "on") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a thread and yield its ``http://127.0.0.1:PORT`` once it answers.

    The socket is bound before uvicorn starts, so no other process can take the port in between
    (tests of several engineers share the machine); the server is stopped and joined on exit.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan, access_log=False))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"{name}-{port}", daemon=True
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {name} server on port {port} did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


@contextmanager
def start_live_server(database_url: str, data_dir: Path, **overrides: object) -> Iterator[LiveServer]:
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = test_settings(database_url, data_dir, **overrides)
    with serve_in_thread(create_app(settings), "live-server") as url:
        yield LiveServer(url=url, database_url=database_url, settings=settings)


@dataclass(frozen=True)
class Actor:
    """A signed-in user of one account, with a ready ``Authorization`` header."""

    account_id: int
    user_id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def path(self, suffix: str) -> str:
        return f"/api/v1/accounts/{self.account_id}/{suffix.lstrip('/')}"


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


def login(client: httpx.Client, email: str, password: str = PASSWORD) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def new_account(live: LiveServer, client: httpx.Client, *, role: str = "administrator") -> Actor:
    """A fresh account whose first user has ``role``; signed in over HTTP."""
    email = f"{unique('user')}@example.com"
    name = unique("Account")

    async def create(context: AppContext) -> tuple[int, int]:
        async with transaction(context.sessionmaker) as session:
            account = await accounts.create_account(session, name)
            user = await accounts.create_user(session, email=email, name="Test User", password=PASSWORD)
            await accounts.add_member(session, account, user, role)
            return account.id, user.id

    account_id, user_id = live.run(create)  # type: ignore[misc]
    return Actor(account_id=account_id, user_id=user_id, email=email, token=login(client, email))


def add_user(live: LiveServer, client: httpx.Client, account_id: int, *, role: str = "agent") -> Actor:
    """Another user in an existing account; signed in over HTTP."""
    email = f"{unique('user')}@example.com"

    async def create(context: AppContext) -> int:
        async with transaction(context.sessionmaker) as session:
            from whatwut.accounts.models import Account

            account = await session.get(Account, account_id)
            assert account is not None
            user = await accounts.create_user(session, email=email, name="Agent", password=PASSWORD)
            await accounts.add_member(session, account, user, role)
            return user.id

    user_id = live.run(create)  # type: ignore[assignment]
    return Actor(account_id=account_id, user_id=int(user_id), email=email, token=login(client, email))  # type: ignore[arg-type]


def assert_problem(response: httpx.Response, status: int, *, field: str | None = None) -> dict[str, object]:
    """The response is ``application/problem+json`` with this status (and names ``field``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, object] = response.json()
    assert body["status"] == status and body["detail"], body
    if field is not None:
        assert field in str(body.get("field", "")) + str(body.get("errors", "")), body
    return body


def wait_healthy(url: str, process: subprocess.Popen[str], *, seconds: float = 90) -> None:
    """Wait for a server started as a subprocess to answer ``/health``; fail with its output if it
    dies, or stop it and fail with what it printed when it never answers."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stdout.read() if process.stdout else "the server exited")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    printed = stop_process(process) if process.stdout else ""
    raise AssertionError(f"{url} did not become healthy in {seconds:.0f} s; the server printed:\n{printed}")


def stop_process(process: subprocess.Popen[str]) -> str:
    """Stop a server subprocess as Ctrl-C would (killing it after 30 s); return what it printed."""
    process.send_signal(signal.SIGINT)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    return out
