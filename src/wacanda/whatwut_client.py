"""WhatWut's Agent API, as Wacanda calls it: exactly what any third-party bot may do.

The bot's API key is exchanged once for a bearer token (cached per agent, renewed on 401).
A 409 means a person handles the conversation now: :class:`HandledByPeople`, and the bot stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

TIMEOUT = httpx.Timeout(15.0, connect=5.0)


class WhatWutError(Exception):
    """WhatWut refused or could not be reached (the job retries)."""


class HandledByPeople(Exception):
    """The conversation was handed off or taken over: nothing more is sent to it."""


@dataclass(frozen=True)
class BotCredentials:
    agent_id: int | None
    api_url: str
    api_key: str
    webhook_secret: str


_tokens: dict[tuple[str, str], str] = {}
_lock = asyncio.Lock()


class WhatWutClient:
    def __init__(self, credentials: BotCredentials, *, http: httpx.AsyncClient | None = None) -> None:
        self.credentials = credentials
        self._http = http or httpx.AsyncClient(base_url=credentials.api_url.rstrip("/"), timeout=TIMEOUT)

    async def close(self) -> None:
        await self._http.aclose()

    async def _token(self, *, renew: bool = False) -> str:
        key = (self.credentials.api_url, self.credentials.api_key)
        async with _lock:
            if renew or key not in _tokens:
                response = await self._http.post(
                    "/api/agents/auth", json={"api_key": self.credentials.api_key}
                )
                if response.status_code != 200:
                    raise WhatWutError(f"auth failed: HTTP {response.status_code} {response.text[:200]}")
                _tokens[key] = str(response.json()["access_token"])
            return _tokens[key]

    async def _call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = await self._http.request(
                method, path, json=body, headers={"Authorization": f"Bearer {await self._token()}"}
            )
            if response.status_code == 401:
                response = await self._http.request(
                    method,
                    path,
                    json=body,
                    headers={"Authorization": f"Bearer {await self._token(renew=True)}"},
                )
        except httpx.HTTPError as exc:
            raise WhatWutError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 409:
            raise HandledByPeople(response.text[:200])
        if not 200 <= response.status_code < 300:
            raise WhatWutError(f"{method} {path}: HTTP {response.status_code} {response.text[:300]}")
        result: dict[str, Any] = response.json()
        return result

    async def post_message(
        self,
        conversation_id: int,
        content: str,
        *,
        sources: list[dict[str, Any]] | None = None,
        confidence: float | None = None,
        in_reply_to: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"content": content, "sources": sources or []}
        if confidence is not None:
            body["confidence"] = confidence
        if in_reply_to is not None:
            body["in_reply_to"] = in_reply_to
        return await self._call("POST", f"/api/conversations/{conversation_id}/messages", body)

    async def record_sentiment(self, conversation_id: int, message_id: int, score: float) -> dict[str, Any]:
        score = max(-1.0, min(1.0, score))
        return await self._call(
            "PUT", f"/api/conversations/{conversation_id}/messages/{message_id}/sentiment", {"score": score}
        )

    async def hand_off(self, conversation_id: int, reason: str, detail: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "open", "reason": reason[:255]}
        if detail:
            body["detail"] = detail[:1000]
        return await self._call("PUT", f"/api/conversations/{conversation_id}/status", body)
