"""The FastAPI application: routers, error handling, middleware and the process lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from whatwut import __version__
from whatwut.accounts.api import router as accounts_router
from whatwut.audit.api import router as audit_router
from whatwut.bots.api import admin_router as ai_agents_router
from whatwut.bots.api import agent_router as agent_api_router
from whatwut.canned_responses.api import router as canned_responses_router
from whatwut.channels.whatsapp.admin_api import router as whatsapp_admin_router
from whatwut.channels.whatsapp.cloud.api import router as whatsapp_cloud_webhook_router
from whatwut.channels.whatsapp.cloud.ingest import CloudWebhookFastPath
from whatwut.contacts.api import router as contacts_router
from whatwut.context import AppContext, set_current
from whatwut.conversations.api import router as conversations_router
from whatwut.health import router as health_router
from whatwut.inboxes.api import router as inboxes_router
from whatwut.jobs.api import router as jobs_router
from whatwut.jobs.worker import InProcessWorker
from whatwut.kit.errors import install_error_handlers
from whatwut.kit.logging import configure_logging
from whatwut.kit.middleware import BodySizeLimit, RequestId
from whatwut.knowledge_proxy.api import router as knowledge_proxy_router
from whatwut.labels.api import router as labels_router
from whatwut.realtime.api import router as realtime_router
from whatwut.realtime.hub import EventHub
from whatwut.settings import Settings, get_settings
from whatwut.teams.api import router as teams_router
from whatwut.web import install_web

API_ROUTERS = (
    accounts_router,
    teams_router,
    inboxes_router,
    contacts_router,
    conversations_router,
    labels_router,
    canned_responses_router,
    realtime_router,
    jobs_router,
    audit_router,
    knowledge_proxy_router,
    whatsapp_admin_router,
    whatsapp_cloud_webhook_router,
    ai_agents_router,
    agent_api_router,
)


def create_app(settings: Settings | None = None, *, context: AppContext | None = None) -> FastAPI:
    """Build the app; the database is opened in the lifespan, not at import time."""
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = context or AppContext.create(settings)
        app.state.context = ctx
        set_current(ctx)
        event_hub = EventHub.for_database(ctx.database_url, ctx.sessionmaker)
        await event_hub.start()
        app.state.event_hub = event_hub
        job_worker = InProcessWorker(ctx) if settings.run_worker else None
        if job_worker is not None:
            job_worker.start()
        try:
            yield
        finally:
            if job_worker is not None:
                await job_worker.stop()
            await event_hub.stop()
            if context is None:
                await ctx.close()

    app = FastAPI(
        title="WhatWut",
        version=__version__,
        summary="Team inbox for WhatsApp customer support, with the Wacanda AI agent.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health_router)
    for router in API_ROUTERS:
        app.include_router(router)
    install_web(app)
    # Inside the body limit and request ids, before FastAPI's routing (the webhook's hot path).
    app.add_middleware(CloudWebhookFastPath)
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_body_bytes, upload_max_bytes=settings.max_upload_bytes
    )
    app.add_middleware(RequestId)
    return app
