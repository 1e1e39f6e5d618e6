"""Wacanda test fixtures: the module's database (cloned from the WhatWut template) with Wacanda's
own migrations applied, and the real Wacanda app served over HTTP on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.support import serve_in_thread
from wacanda.app import create_app
from wacanda.db import libpq_url
from wacanda.migrate import upgrade_to_head
from wacanda.settings import Settings

SERVICE_KEY = "wacanda-test-service-key"


@dataclass(frozen=True)
class WacandaServer:
    url: str
    database_url: str  # libpq form
    key: str

    def headers(self, account_id: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Account-Id": str(account_id)}


def wacanda_settings(database_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "DATABASE_URL": database_url,
        "WHATWUT_DATA_DIR": str(data_dir),
        "WACANDA_API_KEY": SERVICE_KEY,
        "WACANDA_LOG_LEVEL": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextmanager
def serve_wacanda_app(
    settings: Settings, database_url: str, *, key: str = SERVICE_KEY
) -> Iterator[WacandaServer]:
    """A Wacanda app with these settings on a free 127.0.0.1 port, in a thread; stopped on exit."""
    with serve_in_thread(create_app(settings), "wacanda") as url:
        yield WacandaServer(url=url, database_url=database_url, key=key)


@contextmanager
def serve_with_openai(
    database_url: str, data_dir: Path, openai_base_url: str, **overrides: object
) -> Iterator[WacandaServer]:
    """A Wacanda app whose OpenAI-compatible endpoint is ``openai_base_url`` (a fake on 127.0.0.1)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = wacanda_settings(
        database_url, data_dir, OPENAI_BASE_URL=openai_base_url, OPENAI_API_KEY="test-key", **overrides
    )
    with serve_wacanda_app(settings, database_url) as server:
        yield server


@pytest.fixture(scope="module")
def wacanda_db(database_url: str) -> str:
    """The module's database (WhatWut's schema already there) with Wacanda's schema added."""
    url = libpq_url(database_url, Path("/nonexistent"))
    upgrade_to_head(url)
    return url


@pytest.fixture(scope="module")
def wacanda_live(wacanda_db: str, data_root: Path, request: pytest.FixtureRequest) -> Iterator[WacandaServer]:
    data_dir = data_root / ("wacanda-" + request.module.__name__.rsplit(".", 1)[-1])
    data_dir.mkdir(parents=True, exist_ok=True)
    with serve_wacanda_app(wacanda_settings(wacanda_db, data_dir), wacanda_db) as server:
        yield server


@pytest.fixture
def wacanda(wacanda_live: WacandaServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=wacanda_live.url, timeout=60) as http:
        yield http


def live_chunks(database_url: str, document_id: int) -> list[tuple[list[str], str]]:
    """The (heading path, text) of a document's live chunks, in order."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT heading_path, chunk_text FROM wacanda.document_embeddings"
            " WHERE document_id = %s AND is_live ORDER BY chunk_index",
            (document_id,),
        ).fetchall()
    return [(path, text) for path, text in rows]


def wait_prepared(database_url: str, document_ids: list[int], timeout: float = 120) -> None:
    """Wait until the answerer's preparation of these ready documents has run: their ingestion queued
    it in the transaction that made them live, so once none of its jobs is left to do, it is done
    (the worker deletes the jobs that succeed)."""
    deadline = time.monotonic() + timeout
    while True:
        with psycopg.connect(database_url) as conn:
            pending = conn.execute(
                "SELECT count(*) FROM wacanda.procrastinate_jobs WHERE task_name = 'wacanda.prepare_answers'"
                " AND status IN ('todo', 'doing') AND (args->>'document_id')::bigint = ANY(%s)",
                (document_ids,),
            ).fetchone()
        if pending == (0,):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the answers of documents {document_ids} are still being prepared")
        time.sleep(0.1)


def upload(
    client: httpx.Client, headers: dict[str, str], name: str, data: bytes, *, knowledge_base: str = "help"
) -> int:
    """Upload one Markdown file through ``document-embed`` (202 asserted); its document's id."""
    response = client.post(
        "/functions/v1/document-embed",
        headers=headers,
        files=[("files", (name, data, "text/markdown"))],
        data={"knowledge_base": knowledge_base},
    )
    assert response.status_code == 202, response.text
    return int(response.json()["documents"][0]["id"])


def wait_processed(
    client: httpx.Client, headers: dict[str, str], document_id: int, timeout: float = 90
) -> dict:  # type: ignore[type-arg]
    """Poll the document's status until it leaves ``processing``."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/functions/v1/document-status/{document_id}", headers=headers)
        assert response.status_code == 200, response.text
        status = response.json()
        if status["status"] != "processing":
            return status  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"document {document_id} still processing: {status}")
        time.sleep(0.1)
