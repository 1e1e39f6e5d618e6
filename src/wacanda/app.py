"""Wacanda's FastAPI app: the knowledge-base API, its job worker and a background model warm-up."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wacanda import jobs
from wacanda.answering.api import router as answering_router
from wacanda.bot.api import router as bot_router
from wacanda.context import WacandaContext, set_current
from wacanda.db import transaction
from wacanda.errors import install_error_handlers, problem_response
from wacanda.knowledge import service
from wacanda.knowledge.api import router as knowledge_router
from wacanda.settings import Settings, get_settings

log = structlog.get_logger(__name__)


class BodySizeLimit:
    """Refuse bodies over ``max_bytes`` with 413 before they are read whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, send)
            return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, counting_receive, send)
        except _TooLarge:
            await self._too_large(scope, send)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"the request body is larger than {self.max_bytes:,} bytes",
            type_slug="payload-too-large",
            instance=scope.get("path"),
            field="files",
        )
        await response(scope, _empty_receive, send)


class _TooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def _warm_up(context: WacandaContext) -> None:
    """Load the embedding model off the request path, so the first upload or search is not slow."""
    try:
        context.embedder.embed_query("warm up")
    except Exception:
        log.exception("wacanda.embedder_warm_up_failed")


async def _requeue_stale(context: WacandaContext) -> None:
    """Documents left ``processing`` and re-embeddings left ``running`` by a worker that died get
    a new job (both are idempotent)."""
    async with transaction(context.sessionmaker) as session:
        for document_id in await service.stale_processing(session):
            account_id = await session.scalar(
                text("SELECT account_id FROM wacanda.documents WHERE id = :id"), {"id": document_id}
            )
            await jobs.defer(
                session, "wacanda.ingest_document", {"document_id": document_id, "account_id": account_id}
            )
        for reembedding_id, account_id in await service.orphaned_reembeddings(session):
            await jobs.defer(
                session, "wacanda.reembed", {"reembedding_id": reembedding_id, "account_id": account_id}
            )


def create_app(settings: Settings | None = None, *, context: WacandaContext | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or WacandaContext.create(settings)
        app.state.context = ctx
        set_current(ctx)
        threading.Thread(target=_warm_up, args=(ctx,), name="wacanda-warm-up", daemon=True).start()
        worker: asyncio.Task[Any] | None = None
        if settings.run_worker:
            await _requeue_stale(ctx)
            worker = asyncio.create_task(
                jobs.run_worker(
                    ctx.database_url,
                    concurrency=settings.worker_concurrency,
                    reply_concurrency=settings.reply_concurrency,
                    install_signal_handlers=False,
                ),
                name="wacanda-worker",
            )
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await worker
            set_current(None)
            if context is None:
                await ctx.close()

    app = FastAPI(
        title="Wacanda",
        version="0.1.0",
        summary="The RAG agent of WhatWut: knowledge base, hybrid retrieval, grounded answers.",
        lifespan=lifespan,
    )
    app.state.service_key = settings.service_key()
    install_error_handlers(app)
    app.include_router(knowledge_router)
    app.include_router(answering_router)
    app.include_router(bot_router)

    @app.get("/health", tags=["health"])
    async def health() -> dict[str, str]:
        try:
            async with app.state.context.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return {"status": "degraded", "database": "unreachable"}
        return {"status": "ok", "database": "ok"}

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_upload_bytes + 1024 * 1024)
    return app
