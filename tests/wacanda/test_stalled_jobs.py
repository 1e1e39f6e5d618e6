"""A Wacanda worker that dies mid-job leaves it ``doing``; ``wacanda.retry_stalled`` (every five
minutes on every worker) puts it back, and a live worker runs it again."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import psycopg
from procrastinate.psycopg_connector import PsycopgConnector

from tests.wacanda.conftest import WacandaServer, live_chunks, wait_prepared
from tests.wacanda.test_knowledge_api import new_account
from tests.wacanda.test_latent_terms import stored_hashes
from tests.wacanda.test_prepare_answers import topics_document
from tests.wacanda.test_sentence_vectors import load
from wacanda import jobs
from wacanda.answering.sentence_store import text_hash
from wacanda.db import JOBS_SEARCH_PATH, connect_args


def retry_stalled_once(database_url: str) -> None:
    """The periodic job as its schedule runs it."""

    async def run() -> None:
        connector = PsycopgConnector(
            conninfo=database_url, kwargs=connect_args("wacanda-test", JOBS_SEARCH_PATH)
        )
        with jobs.queue.replace_connector(connector):
            async with jobs.queue.open_async():
                await jobs.retry_stalled(int(time.time()))

    asyncio.run(run())


def test_the_job_of_a_dead_worker_runs_again(wacanda: httpx.Client, wacanda_live: WacandaServer) -> None:
    account_id = new_account()
    headers = wacanda_live.headers(account_id)
    (document_id,) = load(wacanda, wacanda_live, headers, {"topics.md": topics_document("stalled")})
    passages = [text for _, text in live_chunks(wacanda_live.database_url, document_id)]
    args = json.dumps({"document_id": document_id, "account_id": account_id})
    with psycopg.connect(wacanda_live.database_url, autocommit=True) as conn:
        conn.execute(
            "DELETE FROM wacanda.latent_terms WHERE text_hash = ANY(%s)", ([text_hash(t) for t in passages],)
        )
        # A worker that took the document's preparation, then died: silent for an hour.
        (dead,) = conn.execute(
            "INSERT INTO wacanda.procrastinate_workers (last_heartbeat)"
            " VALUES (now() - interval '1 hour') RETURNING id"
        ).fetchone()  # type: ignore[misc]
        conn.execute(
            "INSERT INTO wacanda.procrastinate_jobs (queue_name, task_name, args, status, worker_id)"
            " VALUES ('wacanda', 'wacanda.prepare_answers', %s, 'doing', %s)",
            (args, dead),
        )
    assert stored_hashes(wacanda_live.database_url, passages) == set()

    retry_stalled_once(wacanda_live.database_url)

    wait_prepared(wacanda_live.database_url, [document_id])
    assert stored_hashes(wacanda_live.database_url, passages) == {text_hash(t) for t in passages}
