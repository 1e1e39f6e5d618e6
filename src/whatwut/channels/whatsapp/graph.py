"""Meta's Graph API for WhatsApp, over httpx: one client per inbox, errors as types.

Every failure is either :class:`RetryableGraphError` (throttling, Meta's outages, timeouts: the
job tries again later) or :class:`PermanentGraphError` (the request itself is wrong: the message
fails with a reason the agent can act on). The base URL is the inbox's ``graph_url`` setting when
it has one (the sandbox), else ``WHATSAPP_GRAPH_URL``; tests point either at the fake Graph server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import structlog

from whatwut.settings import Settings

log = structlog.get_logger(__name__)

DEFAULT_TIMEOUT_SECONDS = 20.0
#: Meta's page size limit for ``message_templates``.
TEMPLATE_PAGE_SIZE = 100
#: A WABA with more templates than this is cut short rather than looping forever on a bad cursor.
MAX_TEMPLATE_PAGES = 100

PHONE_FIELDS = (
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "platform_type",
    "throughput",
)
#: Error codes Meta documents as temporary: throttling, "unknown"/"service" errors, spam rate limit.
RETRYABLE_CODES = frozenset({1, 2, 4, 17, 341, 80007, 130429, 131000, 131016, 131048, 131056, 133004})


@dataclass(eq=False)
class GraphError(Exception):
    """One failed Graph API call, with Meta's error object flattened."""

    http_status: int
    code: int | None
    message: str
    subcode: int | None = None
    details: str | None = None
    fbtrace_id: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return describe(self)

    @property
    def retryable(self) -> bool:
        return isinstance(self, RetryableGraphError)


class RetryableGraphError(GraphError):
    """Try again later: 429, 5xx, timeouts, connection errors and Meta's temporary codes."""


class PermanentGraphError(GraphError):
    """Trying again will not help: bad token, invalid parameter, closed 24-hour window, ..."""


def classify(http_status: int, body: Any) -> GraphError:
    """The typed error for an HTTP status and Meta's ``{"error": {...}}`` body (if any)."""
    error = body.get("error") if isinstance(body, dict) else None
    code = subcode = None
    message = f"HTTP {http_status} from the Graph API"
    details = fbtrace = None
    if isinstance(error, dict):
        code = error.get("code") if isinstance(error.get("code"), int) else None
        subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
        message = str(error.get("message") or message)[:1000]
        data = error.get("error_data")
        if isinstance(data, dict) and data.get("details"):
            details = str(data["details"])[:1000]
        fbtrace = str(error["fbtrace_id"]) if error.get("fbtrace_id") else None
    retryable = http_status == 429 or http_status >= 500 or (code in RETRYABLE_CODES)
    kind = RetryableGraphError if retryable else PermanentGraphError
    return kind(http_status, code, message, subcode, details, fbtrace)


def describe(error: GraphError) -> str:
    """A sentence for the agent (or administrator) saying what went wrong and what to do."""
    code, text = error.code, error.details or error.message
    if code == 131047:
        return (
            "The 24-hour customer-service window is closed (the customer last wrote more than 24 hours "
            "ago), so WhatsApp only accepts an approved template now: send a template message "
            f"(Meta code 131047: {text})"
        )
    if code == 190:
        return (
            f"Meta rejected the access token (code 190): {error.message}. "
            "Update the inbox's access token (a permanent system-user token does not expire)."
        )
    if code in (10, 200) or (code is not None and 200 <= code <= 299):
        return f"The access token lacks a permission (code {code}): {error.message}"
    if code == 131026:
        return f"WhatsApp could not deliver the message to this number (code 131026): {text}"
    if code == 131051:
        return f"WhatsApp does not support this message type (code 131051): {text}"
    if code == 131052 or code == 131053:
        return f"WhatsApp could not use the attached media (code {code}): {text}"
    if code is not None and 132000 <= code <= 132999:
        return f"The template was refused (code {code}): {text}"
    if code == 100:
        return f"Meta refused a parameter of the request (code 100): {text}"
    if isinstance(error, RetryableGraphError):
        where = f"code {code}" if code is not None else f"HTTP {error.http_status}"
        return f"WhatsApp did not accept the message after several attempts ({where}): {text}"
    where = f"code {code}" if code is not None else f"HTTP {error.http_status}"
    return f"WhatsApp refused the message ({where}): {text}"


@dataclass(frozen=True)
class GraphTarget:
    """Where and as whom to call: the Graph base URL and the bearer token."""

    base_url: str
    access_token: str

    @classmethod
    def for_inbox(cls, settings: Settings, inbox_settings: dict[str, Any], secrets: dict[str, Any]) -> Self:
        base = str(inbox_settings.get("graph_url") or settings.whatsapp_graph_url)
        token = secrets.get("access_token")
        if not token and settings.whatsapp_cloud_api_token is not None:
            token = settings.whatsapp_cloud_api_token.get_secret_value()
        return cls(base_url=base.rstrip("/"), access_token=str(token or ""))


class GraphClient:
    """An async Graph API client; use as ``async with GraphClient(target) as graph: ...``."""

    def __init__(
        self,
        target: GraphTarget,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if not target.access_token:
            raise PermanentGraphError(0, 190, "the inbox has no access token")
        self.target = target
        self._http = httpx.AsyncClient(
            base_url=target.base_url + "/",
            headers={"Authorization": f"Bearer {target.access_token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._http.aclose()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> dict[str, Any]:
        """One call; the JSON answer, or a typed :class:`GraphError`."""
        try:
            response = await self._http.request(
                method, path.lstrip("/"), json=json, params=params, data=data, files=files
            )
        except httpx.TimeoutException as exc:
            raise RetryableGraphError(0, None, f"the Graph API did not answer in time ({exc!r})") from exc
        except httpx.TransportError as exc:
            raise RetryableGraphError(0, None, f"could not reach the Graph API ({exc!r})") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code >= 400 or (isinstance(body, dict) and "error" in body):
            error = classify(response.status_code, body)
            log.info(
                "whatsapp.graph_error",
                method=method,
                path=path,
                http_status=response.status_code,
                code=error.code,
                subcode=error.subcode,
                retryable=error.retryable,
                fbtrace_id=error.fbtrace_id,
            )
            raise error
        if not isinstance(body, dict):
            raise RetryableGraphError(response.status_code, None, "the Graph API answered without JSON")
        return body

    # --- the calls WhatWut makes ------------------------------------------------------------------

    async def send_message(self, phone_number_id: str, payload: dict[str, Any]) -> str:
        """``POST /{phone_number_id}/messages``; the new message's ``wamid``."""
        body = await self.request("POST", f"{phone_number_id}/messages", json=payload)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
            raise PermanentGraphError(200, None, "the Graph API accepted the message but returned no id")
        return str(messages[0]["id"])

    async def mark_read(self, phone_number_id: str, wamid: str) -> None:
        await self.request(
            "POST",
            f"{phone_number_id}/messages",
            json={"messaging_product": "whatsapp", "status": "read", "message_id": wamid},
        )

    async def upload_media(self, phone_number_id: str, data: bytes, mime_type: str, file_name: str) -> str:
        """``POST /{phone_number_id}/media`` (multipart); the media id to send by."""
        body = await self.request(
            "POST",
            f"{phone_number_id}/media",
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (file_name, data, mime_type)},
        )
        if not body.get("id"):
            raise PermanentGraphError(200, None, "the Graph API stored the media but returned no id")
        return str(body["id"])

    async def phone_number(self, phone_number_id: str) -> dict[str, Any]:
        """The number's details (``display_phone_number``, ``verified_name``, quality, ...)."""
        fields = ",".join(PHONE_FIELDS)
        return await self.request("GET", phone_number_id, params={"fields": fields})

    async def message_templates(self, business_account_id: str) -> AsyncIterator[dict[str, Any]]:
        """Every template of the WhatsApp Business Account, following ``paging.cursors.after``."""
        after: str | None = None
        fields = "name,language,status,category,components,parameter_format,id"
        for _page in range(MAX_TEMPLATE_PAGES):
            params: dict[str, Any] = {"fields": fields, "limit": TEMPLATE_PAGE_SIZE}
            if after:
                params["after"] = after
            body = await self.request("GET", f"{business_account_id}/message_templates", params=params)
            for item in body.get("data") or []:
                if isinstance(item, dict):
                    yield item
            paging = body.get("paging")
            paging = paging if isinstance(paging, dict) else {}
            cursors = paging.get("cursors")
            cursors = cursors if isinstance(cursors, dict) else {}
            after = cursors.get("after")
            if not paging.get("next") or not after:
                return
        log.warning("whatsapp.templates_truncated", business_account_id=business_account_id)
