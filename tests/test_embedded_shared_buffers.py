"""The embedded PostgreSQL gets a quarter of the machine's memory for shared buffers (128 MB to
1 GB) from its second start on, in WhatWut's and in Wacanda's helper alike; a value an operator
set with ``ALTER SYSTEM`` stays."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import psycopg
import pytest

import wacanda.db
import whatwut.db.embedded


def _shared_buffers_mb(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'")
        return int(row.fetchone()[0])  # type: ignore[index]


def _stored_setting(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT setting FROM pg_file_settings WHERE name = 'shared_buffers'"
            " AND sourcefile LIKE '%postgresql.auto.conf'"
        ).fetchone()
        return None if row is None else str(row[0])


@pytest.mark.parametrize("helpers", [whatwut.db.embedded, wacanda.db], ids=["whatwut", "wacanda"])
def test_the_embedded_server_sizes_its_shared_buffers_and_keeps_an_operators_value(
    helpers: ModuleType,
) -> None:
    start: Callable[[Path], str] = helpers.start_embedded
    stop: Callable[[Path], None] = helpers.stop_embedded
    wanted = helpers.shared_buffers_mb()
    assert 128 <= wanted <= 1024
    # A short path: the server's socket lives in its data directory.
    root = Path(tempfile.mkdtemp(prefix="wwsb-"))
    try:
        url = start(root)
        assert _stored_setting(url) == f"{wanted}MB"
        stop(root)

        url = start(root)  # the setting needs a restart
        assert _shared_buffers_mb(url) == wanted
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET shared_buffers = '160MB'")
        helpers.size_shared_buffers(url)
        assert _stored_setting(url) == "160MB"
        stop(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
