"""Test fixtures: a real embedded PostgreSQL, a migrated template database cloned per module,
and the real app served over HTTP on 127.0.0.1. No socket may leave the machine."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import LiveServer, start_live_server
from whatwut.db.embedded import libpq_url, sqlalchemy_url, start_embedded, stop_embedded
from whatwut.db.migrate import upgrade_to_head

TEMPLATE_DB = "whatwut_template"
LOOPBACK_PREFIXES = ("127.", "::1", "localhost")

_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address: object) -> object:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = str(address[0]) if isinstance(address, tuple) else str(address)
        if not host.startswith(LOOPBACK_PREFIXES):
            raise RuntimeError(f"tests may not connect outside 127.0.0.1 (tried {host})")
    return _real_connect(self, address)  # type: ignore[arg-type]


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def data_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ww-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def pg_admin_url(data_root: Path) -> Iterator[str]:
    """libpq URL of the embedded server's maintenance database."""
    server_dir = data_root / "server"
    url = start_embedded(server_dir)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE_DB}")
        conn.execute(f"CREATE DATABASE {TEMPLATE_DB}")
    upgrade_to_head(sqlalchemy_url(_with_db(url, TEMPLATE_DB)))
    yield url
    stop_embedded(server_dir)


def _with_db(url: str, database: str) -> str:
    before, _, after = url.partition("@/")
    _old, _, query = after.partition("?")
    return f"{before}@/{database}?{query}"


def create_database(admin_url: str, name: str) -> str:
    """A fresh, fully migrated database cloned from the template; returns its SQLAlchemy URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}")
    return sqlalchemy_url(_with_db(admin_url, name))


@pytest.fixture(scope="module")
def database_url(request: pytest.FixtureRequest, pg_admin_url: str) -> str:
    name = "t_" + request.module.__name__.rsplit(".", 1)[-1][:40].lower()
    return create_database(pg_admin_url, name)


@pytest.fixture(scope="module")
def db_conn(database_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """A plain autocommit connection to the module's database, for assertions on stored rows."""
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        yield conn


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """The real app on a random 127.0.0.1 port, against the module's database."""
    data_dir = data_root / ("app-" + request.module.__name__.rsplit(".", 1)[-1])
    with start_live_server(database_url, data_dir) as server:
        yield server


@pytest.fixture
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        yield http


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HYPOTHESIS_PROFILE", "ci")
