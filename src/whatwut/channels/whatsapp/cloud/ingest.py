"""The webhook's accept path: a lean ASGI route and group commit (ADR 0008).

Meta needs a 200 only once a delivery is safe, and a 200 must mean "stored with its job". Doing
that one transaction per request costs three round trips and a WAL flush per webhook, and
FastAPI's dependency solving costs as much again; under a burst the server spent its CPU there.

- :class:`GroupCommit` collects the deliveries that arrive while the previous batch is being
  written and writes them in ONE transaction (one statement: every event, unique per key, plus one
  processing job per inbox). Each request is answered only after that commit. When the batch
  fails, nothing of it is stored and each delivery is written again alone; one that fails alone
  too is answered 503 (Meta re-delivers it).
- :class:`CloudWebhookFastPath` answers ``POST /webhooks/whatsapp/cloud`` before FastAPI's router
  (it sits inside the body-size and request-id middleware, so those still apply); errors leave as
  the same problem+json the rest of the API sends. Everything else goes on to the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from dataclasses import dataclass, field

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whatwut.channels.whatsapp.cloud import service
from whatwut.context import AppContext
from whatwut.kit.errors import PayloadTooLarge, WhatWutError, problem_response

log = structlog.get_logger(__name__)

PATH = "/webhooks/whatsapp/cloud"
#: A batch holds at most this many events; more waiting deliveries go into the next one.
MAX_BATCH_EVENTS = 1000


class IngestUnavailable(WhatWutError):
    """The batch this delivery was in could not be committed: nothing of it is stored, re-send."""

    status_code = 503
    title = "Service unavailable"
    type_slug = "ingest-unavailable"


@dataclass
class _Pending:
    batch: list[service.InboxEvents]
    done: asyncio.Future[list[int]]
    events: int = field(init=False)

    def __post_init__(self) -> None:
        self.events = sum(len(events) for _route, events in self.batch)


class GroupCommit:
    """Writes the deliveries of concurrent requests together, one transaction per batch.

    One writer task per process and event loop: while it commits a batch, new deliveries queue;
    when it is done it takes everything queued (up to :data:`MAX_BATCH_EVENTS` events) at once. A
    lone delivery on a quiet server is written at once (no timer), so batching costs no latency;
    under load the batches grow by themselves to what arrives during one commit.
    """

    def __init__(self, engine: AsyncEngine, *, max_events: int = MAX_BATCH_EVENTS) -> None:
        self.engine = engine
        self.max_events = max_events
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        #: Batches written and deliveries in them (logged on shutdown, read by tests and the bench).
        self.batches = 0
        self.deliveries = 0

    async def store(self, batch: list[service.InboxEvents]) -> list[int]:
        """Queue one delivery's events; answers how many were new per item once committed."""
        pending = _Pending(batch, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        if self._writer is None or self._writer.done():
            # A context of its own: the writer serves many requests, not the first one's request id.
            self._writer = asyncio.create_task(self._write_all(), context=contextvars.Context())
        # A request cancelled here (client gone) is still written: Meta re-sends, the key dedupes.
        return await asyncio.shield(pending.done)

    async def _write_all(self) -> None:
        while self._queue:
            taken, events = 0, 0
            for pending in self._queue:
                if taken and events + pending.events > self.max_events:
                    break
                taken += 1
                events += pending.events
            batch, self._queue = self._queue[:taken], self._queue[taken:]
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        items = [item for pending in batch for item in pending.batch]
        try:
            async with self.engine.begin() as conn:
                new = await service.store_events(conn, items)
        except Exception as exc:
            if len(batch) > 1:
                # One delivery must not sink the others (e.g. an inbox deleted a moment ago):
                # write each alone; only what fails again is refused.
                log.warning("whatsapp.ingest_batch_split", deliveries=len(batch), error=type(exc).__name__)
                for pending in batch:
                    await self._write([pending])
                return
            log.exception("whatsapp.ingest_batch_failed", events=len(items))
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(
                        IngestUnavailable(
                            f"the delivery could not be stored ({type(exc).__name__}); re-send it"
                        )
                    )
            return
        self.batches += 1
        self.deliveries += len(batch)
        for pending in batch:
            counts: list[int] = []
            for route, events in pending.batch:
                stored = 0
                for kind, key, _payload in events:
                    found = (route.inbox_id, kind, key)
                    if found in new:
                        new.discard(found)  # the first delivery carrying it stored it, later ones did not
                        stored += 1
                counts.append(stored)
            if not pending.done.done():
                pending.done.set_result(counts)

    async def close(self) -> None:
        """Let the writer finish what is queued (shutdown)."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer


async def receive_delivery(
    context: AppContext, committer: GroupCommit, raw: bytes, signature: str | None
) -> JSONResponse:
    """Accept one delivery (raises :class:`WhatWutError` for 400/401/413/503); the 200's body."""
    if len(raw) > context.settings.max_body_bytes:
        raise PayloadTooLarge("the webhook body is too large", field="body")
    try:
        accepted = await service.accept_delivery(
            context.engine, context.secrets, context.settings, raw, signature, committer.store
        )
    except WhatWutError as exc:
        log.warning("whatsapp.webhook_rejected", status=exc.status_code, reason=exc.detail, bytes=len(raw))
        raise
    if accepted.ignored or accepted.reasons:
        log.info(
            "whatsapp.webhook_ignored",
            stored=accepted.stored,
            duplicates=accepted.duplicates,
            ignored=accepted.ignored,
            reasons=accepted.reasons[:5],
        )
    return JSONResponse(
        {"stored": accepted.stored, "duplicates": accepted.duplicates, "ignored": accepted.ignored}
    )


_committers: dict[tuple[int, int], GroupCommit] = {}


def committer_for(context: AppContext) -> GroupCommit:
    """The group commit of this context's engine on the running event loop (tests run several)."""
    key = (id(context.engine), id(asyncio.get_running_loop()))
    found = _committers.get(key)
    if found is None or found.engine is not context.engine:
        found = _committers[key] = GroupCommit(context.engine)
    return found


def error_response(exc: WhatWutError, path: str) -> JSONResponse:
    """The problem+json the API's error handler would send for ``exc``."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    if exc.status_code == 503:
        headers = {"Retry-After": "1"}
    return problem_response(
        exc.status_code,
        exc.title,
        exc.detail,
        type_slug=exc.type_slug,
        instance=path,
        headers=headers,
        field=exc.field,
        **exc.extra,
    )


class CloudWebhookFastPath:
    """ASGI middleware answering ``POST /webhooks/whatsapp/cloud`` without FastAPI's routing.

    Install it inside :class:`~whatwut.kit.middleware.BodySizeLimit` (which still refuses big
    bodies with 413) and ``RequestId``. The FastAPI route of the same path stays for the OpenAPI
    document and answers identically, through the same :func:`receive_delivery`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        context: AppContext = scope["app"].state.context
        signature: str | None = None
        for name, value in scope["headers"]:
            if name == b"x-hub-signature-256":
                signature = value.decode("latin-1")
        try:
            raw = await _read_body(receive, context.settings.max_body_bytes)
            response = await receive_delivery(context, committer_for(context), raw, signature)
        except WhatWutError as exc:
            response = error_response(exc, PATH)
        await response(scope, receive, send)


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected("the client left before sending the whole body", field="body")
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise PayloadTooLarge("the webhook body is too large", field="body")
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Disconnected(WhatWutError):
    """The client left before sending its whole body; nothing is stored."""

    status_code = 400
    title = "Bad request"
    type_slug = "client-disconnected"
