"""A fake rerank service over real HTTP on 127.0.0.1: ``POST /v1/rerank`` in the wire format of
Jina, Cohere and vLLM (``{"model", "query", "documents", "top_n"}`` ->
``{"results": [{"index", "relevance_score"}]}``).

By default it scores each document by how many times it contains ``favourite`` (a word a test
chooses), so a test knows which passage the reranker puts first. Scripted steps replace the next
answers: an HTTP error, a delay longer than the client's timeout, or any body. Every request is
recorded with its headers.

    with serve_fake_rerank() as fake:
        fake.favourite = "refund"
        fake.script(Status(500), Body({"results": "nope"}))
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support import serve_in_thread


@dataclass(frozen=True)
class Status:
    code: int


@dataclass(frozen=True)
class Delay:
    seconds: float


@dataclass(frozen=True)
class Body:
    """A 200 with this JSON value (or, for a ``str``, these raw bytes as ``application/json``)."""

    value: Any


Step = Status | Delay | Body


@dataclass
class FakeRerankState:
    favourite: str = ""
    steps: deque[Step] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def create_fake_rerank_app(state: FakeRerankState) -> Starlette:
    async def rerank(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"detail": "the body is not JSON"}, status_code=400)
        if not isinstance(body, dict) or not isinstance(body.get("documents"), list) or "query" not in body:
            return JSONResponse({"detail": "query and documents are required"}, status_code=422)
        with state.lock:
            state.requests.append(body)
            state.headers.append(dict(request.headers))
            step = state.steps.popleft() if state.steps else None
        if isinstance(step, Delay):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Status):
            return JSONResponse({"detail": "scripted error"}, status_code=step.code)
        elif isinstance(step, Body):
            if isinstance(step.value, str):
                return Response(step.value, media_type="application/json")
            return JSONResponse(step.value)
        documents = [str(d) for d in body["documents"]]
        favourite = state.favourite.lower()
        scores = [
            (d.lower().count(favourite) if favourite else 0) + 1 / (2 + i) for i, d in enumerate(documents)
        ]
        order = sorted(range(len(documents)), key=lambda i: -scores[i])[
            : int(body.get("top_n") or len(documents))
        ]
        return JSONResponse(
            {
                "model": body.get("model", "fake-reranker"),
                "results": [{"index": i, "relevance_score": scores[i]} for i in order],
                "usage": {"total_tokens": sum(len(d.split()) for d in documents)},
            }
        )

    return Starlette(routes=[Route("/v1/rerank", rerank, methods=["POST"])])


@dataclass
class FakeRerankServer:
    base_url: str  # ends with /v1; the client appends /rerank
    state: FakeRerankState

    def script(self, *steps: Step) -> None:
        with self.state.lock:
            self.state.steps.extend(steps)

    def reset(self, favourite: str = "") -> None:
        with self.state.lock:
            self.state.steps.clear()
            self.state.requests.clear()
            self.state.headers.clear()
            self.state.favourite = favourite

    @property
    def requests(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return list(self.state.requests)


@contextmanager
def serve_fake_rerank(state: FakeRerankState | None = None) -> Iterator[FakeRerankServer]:
    """Run the fake with uvicorn in a daemon thread for the duration of the block."""
    state = state or FakeRerankState()
    with serve_in_thread(create_fake_rerank_app(state), "fake-rerank", lifespan="off") as url:
        yield FakeRerankServer(base_url=f"{url}/v1", state=state)
