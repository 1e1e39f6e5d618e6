"""``whatwut serve`` registers the Wacanda it starts as every account's "Wacanda" AI agent.

WhatWut and that Wacanda share the data directory, so the agents' credentials travel in a 0600
JSON file there (``wacanda-bots.json``): WhatWut keeps only the API key's hash and the sealed
webhook secret, Wacanda reads the file to sign in and to check signatures. A key the file no
longer matches (a new data directory, a rotated key) is rotated again and rewritten; nothing is
ever written to the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.bots import service
from whatwut.bots.models import AiAgent
from whatwut.bots.schemas import AiAgentCreate
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.inboxes import service as inboxes
from whatwut.settings import Settings

log = structlog.get_logger(__name__)
BOTS_FILE = "wacanda-bots.json"
AGENT_NAME = "Wacanda"
WEBHOOK_PATH = "/webhooks/whatwut"


def bots_file(settings: Settings) -> Path:
    return settings.data_dir / BOTS_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically, readable by this user only (it holds API keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(temporary, path)


async def ensure_agent(
    session: AsyncSession,
    context: AppContext,
    account_id: int,
    *,
    webhook_url: str,
    known: dict[str, Any],
) -> tuple[AiAgent, dict[str, str] | None]:
    """The account's Wacanda agent pointing at ``webhook_url``; new credentials when ``known``
    (the file's entries) does not hold working ones."""
    agent = await service.find_agent_by_name(session, account_id, AGENT_NAME)
    if agent is None:
        agent, api_key, secret = await service.create_agent(
            session,
            context,
            account_id,
            AiAgentCreate(name=AGENT_NAME, type="wacanda", webhook_url=webhook_url),
            actor_user_id=None,
        )
        return agent, {"api_key": api_key, "webhook_secret": secret}
    if agent.configuration.get("webhook_url") != webhook_url:
        agent.configuration = {**agent.configuration, "webhook_url": webhook_url}
    entry = known.get(str(agent.id))
    if (
        isinstance(entry, dict)
        and service.api_key_matches(agent, str(entry.get("api_key", "")))
        and entry.get("webhook_secret") == service.webhook_secret(context, agent)
    ):
        return agent, None
    api_key, secret = await service.rotate_credentials(session, context, agent, actor_user_id=None)
    return agent, {"api_key": api_key, "webhook_secret": secret}


async def register_wacanda(
    settings: Settings, *, wacanda_url: str, api_url: str, attach_inbox: str | None = None
) -> dict[int, int]:
    """Every account's Wacanda agent, its credentials in the bots file; with ``attach_inbox``,
    that inbox (the demo's sandbox) answered by it where it has no agent yet. Returns
    ``{account_id: agent_id}``."""
    path = bots_file(settings)
    data = _read(path)
    known = data.get("agents") if isinstance(data.get("agents"), dict) else {}
    assert isinstance(known, dict)
    webhook_url = wacanda_url.rstrip("/") + WEBHOOK_PATH
    context = AppContext.create(settings)
    registered: dict[int, int] = {}
    try:
        async with transaction(context.sessionmaker) as session:
            account_ids = await accounts.all_account_ids(session)
            for account_id in account_ids:
                agent, fresh = await ensure_agent(
                    session, context, account_id, webhook_url=webhook_url, known=known
                )
                registered[account_id] = agent.id
                if fresh is not None:
                    known[str(agent.id)] = {**fresh, "account_id": account_id}
                if attach_inbox is not None:
                    inbox = await inboxes.find_inbox_by_name(session, account_id, attach_inbox)
                    if inbox is not None and await service.inbox_agent(session, account_id, inbox.id) is None:
                        await service.set_inbox_agent(
                            session, account_id, inbox.id, agent.id, actor_user_id=None
                        )
    finally:
        await context.close()
    # Written once the agents are committed, so the file never holds credentials the database lacks.
    live = {str(agent_id) for agent_id in registered.values()}
    agents = {k: v for k, v in known.items() if k in live}
    _write(path, {"api_url": api_url, "wacanda_url": wacanda_url, "agents": agents})
    log.info("bots.wacanda_registered", accounts=len(registered), webhook_url=webhook_url)
    return registered


async def register_with_running_wacanda(settings: Settings) -> bool:
    """Give accounts created after ``whatwut serve`` started (``whatwut create-admin`` in another
    process) their Wacanda agent at once: the bots file of the data directory says which Wacanda
    and API to use, and that Wacanda re-reads the file when it changes. False when no ``serve``
    with Wacanda ever wrote one here."""
    data = _read(bots_file(settings))
    wacanda_url, api_url = data.get("wacanda_url"), data.get("api_url")
    if not (isinstance(wacanda_url, str) and wacanda_url and isinstance(api_url, str) and api_url):
        return False
    await register_wacanda(settings, wacanda_url=wacanda_url, api_url=api_url)
    return True
