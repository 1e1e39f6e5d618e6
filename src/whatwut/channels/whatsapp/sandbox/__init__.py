"""The WhatsApp sandbox of ``whatwut serve --demo``: a phone view at ``/sandbox`` and the fake Graph API.

:func:`install_sandbox` mounts both on the app. It is only ever called for the demo: the sandbox's
pages and API need no sign-in (anyone who reaches the server may chat as a customer of the Demo
account), and the fake Graph API must never face the internet.
"""

from __future__ import annotations

from fastapi import FastAPI

from whatwut.channels.whatsapp.fake_graph import FakeGraphState, create_fake_graph_app
from whatwut.channels.whatsapp.sandbox.service import (
    GRAPH_MOUNT,
    Sandbox,
    SandboxInbox,
    ensure_sandbox_inbox,
    graph_url_for,
)
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.settings import Settings


async def prepare_sandbox(settings: Settings, account_id: int, *, base_url: str) -> SandboxInbox:
    """Create (once) the account's sandbox inbox, pointing its ``graph_url`` at this server."""
    context = AppContext.create(settings)
    try:
        async with transaction(context.sessionmaker) as session:
            return await ensure_sandbox_inbox(session, context, account_id, graph_url=graph_url_for(base_url))
    finally:
        await context.close()


def install_sandbox(app: FastAPI, target: SandboxInbox, *, base_url: str) -> Sandbox:
    """Mount the fake Graph API at ``/sandbox/graph`` and the sandbox's pages and API on ``app``.

    ``base_url`` is how the server reaches itself (the webhooks go there over HTTP); the sandbox
    inbox's ``graph_url`` must be ``graph_url_for(base_url)``.
    """
    from whatwut.channels.whatsapp.sandbox.api import router

    graph = FakeGraphState()
    sandbox = Sandbox(target, base_url=base_url, graph=graph, context=lambda: app.state.context)
    app.state.sandbox = sandbox
    app.include_router(router)
    app.mount(GRAPH_MOUNT, create_fake_graph_app(graph))
    return sandbox
