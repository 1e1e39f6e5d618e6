"""Which WhatWut bots this Wacanda answers for, and with which credentials.

Either one bot set by hand (``WHATWUT_API_URL``, ``WHATWUT_API_KEY``, ``WHATWUT_WEBHOOK_SECRET``),
or the bots ``whatwut serve`` registered, one per account, in a 0600 JSON file of the data
directory (``{"api_url": ..., "agents": {"<id>": {"api_key", "webhook_secret"}}}``), re-read when
it changes so a new account's bot works without a restart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wacanda.settings import Settings
from wacanda.whatwut_client import BotCredentials

BOTS_FILE = "wacanda-bots.json"
_cache: dict[Path, tuple[float, dict[str, Any]]] = {}


def bots_file(settings: Settings) -> Path:
    return settings.bots_file or settings.data_dir / BOTS_FILE


def _registered(path: Path) -> dict[str, Any]:
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return {}
    cached = _cache.get(path)
    if cached is None or cached[0] != mtime:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            data = {}
        _cache[path] = (mtime, data if isinstance(data, dict) else {})
    return _cache[path][1]


def credentials_for(settings: Settings, agent_id: int | None) -> BotCredentials | None:
    """The credentials of WhatWut agent ``agent_id`` (None when this Wacanda does not serve it)."""
    data = _registered(bots_file(settings))
    agents = data.get("agents") if isinstance(data.get("agents"), dict) else {}
    entry = agents.get(str(agent_id)) if agent_id is not None and agents else None
    if isinstance(entry, dict) and entry.get("api_key") and entry.get("webhook_secret"):
        return BotCredentials(
            agent_id=agent_id,
            api_url=str(entry.get("api_url") or data.get("api_url") or settings.whatwut_api_url or ""),
            api_key=str(entry["api_key"]),
            webhook_secret=str(entry["webhook_secret"]),
        )
    if settings.whatwut_api_url and settings.whatwut_api_key and settings.whatwut_webhook_secret:
        return BotCredentials(
            agent_id=agent_id,
            api_url=settings.whatwut_api_url,
            api_key=settings.whatwut_api_key.get_secret_value(),
            webhook_secret=settings.whatwut_webhook_secret.get_secret_value(),
        )
    return None
