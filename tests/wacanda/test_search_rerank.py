"""Optional reranking of search results over real HTTP: a Wacanda app configured with
``WACANDA_RERANK_URL`` pointing at a fake rerank service on 127.0.0.1, next to one without it on
the same database (its order is the fused order a failing reranker must fall back to)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fake_openai import serve_fake_openai
from tests.fake_rerank import Body, Delay, FakeRerankServer, Status, serve_fake_rerank
from tests.wacanda.conftest import WacandaServer, serve_wacanda_app, wacanda_settings, wait_processed
from wacanda.knowledge.embeddings import OpenAICompatibleEmbedder
from wacanda.knowledge.search import QueryVectorCache

DOCUMENTS = {
    "returns.md": "# Returns\n\nYou have 14 days to return a phone.\n\n## Refunds\n\n"
    "Refunds reach your card within 5 business days of the return.\n",
    "roaming.md": "# Roaming\n\nThe Travel Pass costs 12 dollars per day in Europe and Mexico.\n",
    "stores.md": "# Stores\n\n## Opening hours\n\nStores open at nine on weekdays and ten on Saturdays.\n",
    "billing.md": "# Billing\n\n## Paying your bill\n\nPay your bill with Pix or a card in the app; "
    "a late refund of a double payment takes a week.\n",
}
RERANK_KEY = "rerank-test-key"
RERANK_MODEL = "fake-rerank-multilingual"


@pytest.fixture(scope="module")
def fake_rerank() -> Iterator[FakeRerankServer]:
    with serve_fake_rerank() as fake:
        yield fake


@pytest.fixture
def reranker(fake_rerank: FakeRerankServer) -> FakeRerankServer:
    fake_rerank.reset()
    return fake_rerank


@pytest.fixture(scope="module")
def reranking_live(
    wacanda_db: str, data_root: Path, fake_rerank: FakeRerankServer
) -> Iterator[WacandaServer]:
    """A second Wacanda app on the module's database, with a reranker (1 s timeout, 10 candidates)."""
    data_dir = data_root / "wacanda-rerank"
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = wacanda_settings(
        wacanda_db,
        data_dir,
        WACANDA_RERANK_URL=fake_rerank.base_url,
        WACANDA_RERANK_MODEL=RERANK_MODEL,
        WACANDA_RERANK_API_KEY=RERANK_KEY,
        WACANDA_RERANK_TIMEOUT=1.0,
        WACANDA_RERANK_CANDIDATES=10,
        WACANDA_RUN_WORKER=False,
    )
    with serve_wacanda_app(settings, wacanda_db, key=settings.service_key()) as server:
        yield server


@pytest.fixture(scope="module")
def account(wacanda_live: WacandaServer) -> int:
    """An account whose documents the plain app's worker has processed."""
    account_id = random.randint(10_000, 2**40)
    headers = wacanda_live.headers(account_id)
    with httpx.Client(base_url=wacanda_live.url, timeout=60) as client:
        response = client.post(
            "/functions/v1/document-embed",
            headers=headers,
            files=[("files", (name, text.encode(), "text/markdown")) for name, text in DOCUMENTS.items()],
            data={"knowledge_base": "help"},
        )
        assert response.status_code == 202, response.text
        for document in response.json()["documents"]:
            assert wait_processed(client, headers, document["id"])["status"] == "ready"
    return account_id


def search(server: WacandaServer, account_id: int, q: str, **params: Any) -> httpx.Response:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        return client.get(
            "/functions/v1/document-search", headers=server.headers(account_id), params={"q": q, **params}
        )


def results(server: WacandaServer, account_id: int, q: str, **params: Any) -> list[dict[str, Any]]:
    response = search(server, account_id, q, **params)
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def test_the_reranker_reorders_the_fused_candidates_and_its_scores_are_returned(
    wacanda_live: WacandaServer, reranking_live: WacandaServer, reranker: FakeRerankServer, account: int
) -> None:
    fused = results(wacanda_live, account, "how do I get a refund", limit=3)
    assert fused[0]["document"] == "returns.md"
    assert all(hit["rerank_score"] is None and "rerank" not in hit["ranks"] for hit in fused)

    reranker.reset(favourite="pix")  # the fake prefers the billing passage
    hits = results(reranking_live, account, "how do I get a refund", limit=3)

    assert hits[0]["document"] == "billing.md"
    assert [hit["ranks"]["rerank"] for hit in hits] == [1, 2, 3]
    scores = [hit["rerank_score"] for hit in hits]
    assert all(isinstance(score, float) for score in scores) and scores == sorted(scores, reverse=True)
    (request,) = reranker.requests
    assert request["model"] == RERANK_MODEL and request["query"] == "how do I get a refund"
    assert request["top_n"] == 3
    assert 3 <= len(request["documents"]) <= 10  # the fused candidates, at most WACANDA_RERANK_CANDIDATES
    assert any("Billing" in document and "Pix" in document for document in request["documents"])
    assert reranker.state.headers[0]["authorization"] == f"Bearer {RERANK_KEY}"


@pytest.mark.parametrize(
    "failure",
    [
        Status(500),
        Status(429),
        Status(404),
        Delay(3.0),  # longer than WACANDA_RERANK_TIMEOUT
        Body("this is not json"),
        Body({"results": []}),
        Body({"data": [{"index": 0, "relevance_score": 1.0}]}),
        Body({"results": [{"index": 99, "relevance_score": 1.0}]}),
        Body({"results": [{"index": -1, "relevance_score": 1.0}]}),
        Body({"results": [{"index": 0, "relevance_score": 1.0}, {"index": 0, "relevance_score": 0.5}]}),
        Body({"results": [{"index": 0, "relevance_score": "high"}]}),
        Body({"results": [{"index": "0", "relevance_score": 0.9}]}),
        Body({"results": [{"index": True, "relevance_score": 0.9}]}),
        Body({"results": ["index 0"]}),
        Body([1, 2, 3]),
    ],
    ids=repr,
)
def test_a_failing_reranker_leaves_the_fused_order(
    wacanda_live: WacandaServer,
    reranking_live: WacandaServer,
    reranker: FakeRerankServer,
    account: int,
    failure: Status | Delay | Body,
) -> None:
    fused = results(wacanda_live, account, "stores opening hours on saturday", limit=3)
    reranker.script(failure)

    hits = results(reranking_live, account, "stores opening hours on saturday", limit=3)

    assert [(hit["document"], hit["text"]) for hit in hits] == [
        (hit["document"], hit["text"]) for hit in fused
    ]
    assert [hit["score"] for hit in hits] == [hit["score"] for hit in fused]
    assert all(hit["rerank_score"] is None and "rerank" not in hit["ranks"] for hit in hits)
    assert len(reranker.requests) == 1


def test_candidates_the_reranker_leaves_out_follow_in_fused_order(
    wacanda_live: WacandaServer, reranking_live: WacandaServer, reranker: FakeRerankServer, account: int
) -> None:
    fused = results(wacanda_live, account, "travel pass price", limit=10)
    assert len(fused) >= 3
    reranker.script(Body({"results": [{"index": 2, "relevance_score": 0.8}]}))  # top_n was 3

    hits = results(reranking_live, account, "travel pass price", limit=3)

    assert [hit["text"] for hit in hits] == [fused[2]["text"], fused[0]["text"], fused[1]["text"]]
    assert hits[0]["rerank_score"] == 0.8 and hits[0]["ranks"]["rerank"] == 1
    assert hits[1]["rerank_score"] is None and hits[2]["rerank_score"] is None


@pytest.mark.parametrize(
    ("q", "status"), [("😀🙏🔥", 200), ("?!…", 200), ("refund " * 1500, 422), ("x" * 10_000, 422)]
)
def test_queries_with_nothing_to_find_never_reach_the_reranker(
    reranking_live: WacandaServer, reranker: FakeRerankServer, account: int, q: str, status: int
) -> None:
    response = search(reranking_live, account, q)

    assert response.status_code == status, response.text
    if status == 200:
        assert response.json()["results"] == []
    else:
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "q"
    assert reranker.requests == []


def test_a_repeated_query_is_embedded_once() -> None:
    """The query-vector cache (per model, least recently used dropped) spares the embeddings endpoint."""
    with serve_fake_openai() as fake:
        embedder = OpenAICompatibleEmbedder("text-embedding-3-small", api_key="test", base_url=fake.base_url)
        cache = QueryVectorCache(size=2)

        async def ask(*queries: str) -> list[list[float]]:
            return [(await cache.get(embedder, query)).tolist() for query in queries]

        first, again, other, evicting, evicted = asyncio.run(
            ask("opening hours?", "opening hours?", "refund?", "pix?", "opening hours?")
        )

        embedded = [request["input"] for request in fake.state.requests]
        assert embedded == [["opening hours?"], ["refund?"], ["pix?"], ["opening hours?"]]
        assert first == again == evicted and first != other != evicting
        assert len(cache) == 2


def test_answers_are_drawn_from_the_reranked_passages_and_survive_a_failing_reranker(
    wacanda_live: WacandaServer, reranking_live: WacandaServer, reranker: FakeRerankServer, account: int
) -> None:
    def ask(server: WacandaServer, message: str) -> dict[str, Any]:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            response = client.post(
                "/functions/v1/rag-process",
                headers=server.headers(account),
                json={"message": message, "knowledge_base": "help"},
            )
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    reranker.reset(favourite="pix")
    answer = ask(reranking_live, "How do I pay my bill?")
    assert [request["query"] for request in reranker.requests] == ["How do I pay my bill?"]
    assert answer["sources"][0]["document"] == "billing.md"

    reranker.reset()
    reranker.script(Status(503))
    fallback = ask(reranking_live, "Refunds within how many business days?")
    plain = ask(wacanda_live, "Refunds within how many business days?")
    assert len(reranker.requests) == 1
    assert (fallback["answer"], fallback["sources"]) == (plain["answer"], plain["sources"])
    assert fallback["sources"], fallback
