"""A fake OpenAI-compatible server over real HTTP on 127.0.0.1, scripted per test.

``/v1/chat/completions`` (non-streaming JSON, or ``text/event-stream`` chunks ending with
``data: [DONE]`` when the request says ``"stream": true``) and ``/v1/embeddings``, in OpenAI's
wire format. Each chat request takes the next scripted :class:`Script` step (or asks
``responder(request)`` when the queue is empty): a reply text, an HTTP error, a delay longer
than the client's timeout, or a malformed body. Every request is recorded.

    with serve_fake_openai() as fake:
        fake.script(Reply("Plans start at $25 [1]."), Status(500), Delay(5))
        client = AsyncOpenAI(base_url=fake.base_url, api_key="test")
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import serve_in_thread


@dataclass(frozen=True)
class Reply:
    """An assistant message; streamed as deltas of ``chunk_size`` characters."""

    text: str
    chunk_size: int = 8
    finish_reason: str = "stop"


@dataclass(frozen=True)
class Status:
    """An HTTP error with OpenAI's error envelope (429 carries ``retry-after: 0``)."""

    code: int
    message: str = "scripted error"


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds`` before answering ``then`` (a client with a shorter timeout gives up)."""

    seconds: float
    then: Reply | None = None


@dataclass(frozen=True)
class Malformed:
    """A 200 whose body is not valid JSON (or, streaming, a chunk that is not)."""

    body: str = '{"id": "chatcmpl-broken", "choices": ['


Script = Reply | Status | Delay | Malformed
Responder = Callable[[dict[str, Any]], Script]
#: Asked with an embeddings request's texts: ``None`` answers normally, a ``Status`` fails it, a
#: ``Delay`` answers after ``seconds``.
EmbeddingResponder = Callable[[list[str]], Status | Delay | None]


@dataclass
class FakeOpenAIState:
    steps: deque[Script] = field(default_factory=deque)
    responder: Responder | None = None
    requests: list[dict[str, Any]] = field(default_factory=list)
    embedding_dimension: int = 16
    embedding_responder: EmbeddingResponder | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_step(self, request: dict[str, Any]) -> Script:
        with self.lock:
            self.requests.append(request)
            if self.steps:
                return self.steps.popleft()
        if self.responder is not None:
            return self.responder(request)
        return Reply("NO_ANSWER")


_ids = itertools.count(1)


def _completion(text: str, model: str, finish_reason: str) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": max(1, len(text) // 4),
            "total_tokens": 100 + max(1, len(text) // 4),
        },
    }


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish_reason: str | None) -> str:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    return f"data: {json.dumps(body)}\n\n"


def _error(status: Status) -> JSONResponse:
    kinds = {400: "invalid_request_error", 401: "authentication_error", 429: "rate_limit_exceeded"}
    headers = {"retry-after": "0"} if status.code == 429 else {}
    return JSONResponse(
        {
            "error": {
                "message": status.message,
                "type": kinds.get(status.code, "server_error"),
                "param": None,
                "code": None,
            }
        },
        status_code=status.code,
        headers=headers,
    )


def create_fake_openai_app(state: FakeOpenAIState) -> Starlette:
    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(Status(400, "the body is not JSON"))
        if not isinstance(body, dict) or "messages" not in body or "model" not in body:
            return _error(Status(400, "model and messages are required"))
        step = state.next_step(body)
        if isinstance(step, Delay):
            await asyncio.sleep(step.seconds)
            step = step.then or Reply("NO_ANSWER")
        if isinstance(step, Status):
            return _error(step)
        model = str(body["model"])
        if isinstance(step, Malformed):
            if body.get("stream"):
                return Response(f"data: {step.body}\n\n", media_type="text/event-stream")
            return Response(step.body, media_type="application/json")
        if not body.get("stream"):
            return JSONResponse(_completion(step.text, model, step.finish_reason))
        reply = step

        async def events() -> AsyncIterator[str]:
            completion_id = f"chatcmpl-fake{next(_ids)}"
            yield _chunk(completion_id, model, {"role": "assistant", "content": ""}, None)
            for start in range(0, len(reply.text), reply.chunk_size):
                yield _chunk(
                    completion_id, model, {"content": reply.text[start : start + reply.chunk_size]}, None
                )
                await asyncio.sleep(0)
            yield _chunk(completion_id, model, {}, reply.finish_reason)
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    async def embeddings(request: Request) -> Response:
        body = await request.json()
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        with state.lock:
            state.requests.append(body)
        step = state.embedding_responder([str(t) for t in texts]) if state.embedding_responder else None
        if isinstance(step, Delay):
            await asyncio.sleep(step.seconds)
        elif isinstance(step, Status):
            return _error(step)
        data = []
        for index, text in enumerate(texts):
            digest = hashlib.sha256(str(text).encode()).digest()
            vector = [(digest[i % len(digest)] - 128) / 128 for i in range(state.embedding_dimension)]
            data.append({"object": "embedding", "index": index, "embedding": vector})
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": body.get("model", "text-embedding-3-small"),
                "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)},
            }
        )

    return Starlette(
        routes=[
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/embeddings", embeddings, methods=["POST"]),
        ]
    )


@dataclass
class FakeOpenAIServer:
    base_url: str  # ends with /v1, as OPENAI_BASE_URL does
    state: FakeOpenAIState

    def script(self, *steps: Script) -> None:
        with self.state.lock:
            self.state.steps.extend(steps)

    def respond_with(self, responder: Responder | None) -> None:
        self.state.responder = responder

    def reset(self) -> None:
        with self.state.lock:
            self.state.steps.clear()
            self.state.requests.clear()
        self.state.responder = None

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r for r in self.state.requests if "messages" in r]


@contextmanager
def serve_fake_openai(state: FakeOpenAIState | None = None) -> Iterator[FakeOpenAIServer]:
    """Run the fake with uvicorn in a daemon thread for the duration of the block."""
    state = state or FakeOpenAIState()
    with serve_in_thread(create_fake_openai_app(state), "fake-openai", lifespan="off") as url:
        yield FakeOpenAIServer(f"{url}/v1", state)
