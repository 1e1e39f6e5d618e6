"""Optional reranking of the fused candidates by a cross-encoder service.

Off by default: no cross-encoder with its weights inside a PyPI wheel was found for the offline
default (docs/benchmarks.md). When ``WACANDA_RERANK_URL`` is set, the fused top candidates go to
``POST {url}/rerank`` in the wire format Jina, Cohere, vLLM and most OpenAI-compatible servers
speak::

    {"model": "...", "query": "...", "documents": ["...", ...], "top_n": 5}
    -> {"results": [{"index": 0, "relevance_score": 0.93}, ...]}

A reranker that fails (timeout, HTTP error, malformed answer) never fails the search: the caller
keeps the fused order (:func:`reorder` returns ``None``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from wacanda.settings import Settings

log = structlog.get_logger(__name__)

#: How many fused candidates the reranker sees by default (it returns the best ``limit`` of them).
DEFAULT_CANDIDATES = 20
#: A document sent to the reranker is cut here: cross-encoders read 512 tokens at most.
MAX_DOCUMENT_CHARS = 4000


@dataclass(frozen=True)
class Reranked:
    index: int  # position in the documents sent
    score: float  # the reranker's relevance score (higher is better)


class RerankError(Exception):
    """The reranker did not give a usable answer."""


class Reranker(Protocol):
    """Scores documents against a query; returns the best ``top_n``, best first."""

    @property
    def candidates(self) -> int:
        """How many fused candidates to send."""
        ...

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> list[Reranked]: ...


class HTTPReranker:
    """``POST {base_url}/rerank`` (``base_url`` may already end with ``/rerank``)."""

    def __init__(
        self,
        base_url: str,
        model: str = "",
        *,
        api_key: str | None = None,
        timeout: float = 5.0,
        candidates: int = DEFAULT_CANDIDATES,
    ) -> None:
        base = base_url.rstrip("/")
        self.url = base if base.endswith("/rerank") else base + "/rerank"
        self.model = model
        self.timeout = timeout
        self._candidates = candidates
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @property
    def candidates(self) -> int:
        return self._candidates

    async def rerank(self, query: str, documents: Sequence[str], top_n: int) -> list[Reranked]:
        payload: dict[str, Any] = {
            "query": query,
            "documents": [document[:MAX_DOCUMENT_CHARS] for document in documents],
            "top_n": top_n,
        }
        if self.model:
            payload["model"] = self.model
        try:
            # One deadline for the whole exchange (httpx's timeout is per read, so a server that
            # trickles bytes could otherwise hold a search for much longer).
            async with asyncio.timeout(self.timeout), httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, json=payload, headers=self._headers)
        except (TimeoutError, httpx.HTTPError) as exc:
            raise RerankError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise RerankError(f"HTTP {response.status_code}: {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise RerankError("the answer is not JSON") from exc
        return parse_results(body, len(documents))


def parse_results(body: Any, documents: int) -> list[Reranked]:
    """The ``results`` of a rerank answer, best first; every index valid and used once."""
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list) or not results:
        raise RerankError("the answer has no results list")
    reranked: list[Reranked] = []
    seen: set[int] = set()
    for item in results:
        if not isinstance(item, dict):
            raise RerankError("a result is not an object")
        index, score = item.get("index"), item.get("relevance_score")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < documents:
            raise RerankError(f"a result's index is not one of the {documents} documents: {index!r}")
        if isinstance(score, bool) or not isinstance(score, int | float) or not math.isfinite(score):
            raise RerankError(f"a result's relevance_score is not a number: {score!r}")
        if index in seen:
            raise RerankError(f"index {index} is ranked twice")
        seen.add(index)
        reranked.append(Reranked(index, float(score)))
    return sorted(reranked, key=lambda r: -r.score)


async def reorder(
    reranker: Reranker, query: str, documents: Sequence[str], top_n: int
) -> list[Reranked] | None:
    """The reranker's order of ``documents``, or ``None`` (logged) when it failed: keep the fused one."""
    try:
        return await reranker.rerank(query, documents, top_n)
    except RerankError as exc:
        log.warning("rerank.failed", reason=str(exc), documents=len(documents))
        return None


def reranker_for(settings: Settings) -> Reranker | None:
    """The reranker ``WACANDA_RERANK_URL`` configures, or ``None`` (the default: no reranking)."""
    if not settings.rerank_url:
        return None
    return HTTPReranker(
        settings.rerank_url,
        settings.rerank_model,
        api_key=settings.rerank_api_key.get_secret_value() if settings.rerank_api_key else None,
        timeout=settings.rerank_timeout,
        candidates=settings.rerank_candidates,
    )
