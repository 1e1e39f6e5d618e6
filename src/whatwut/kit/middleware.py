"""ASGI middleware: a request-body size limit that answers problem+json, and request ids."""

from __future__ import annotations

import uuid
from contextvars import ContextVar

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from whatwut.kit.errors import problem_response


class BodySizeLimit:
    """Refuse bodies above ``max_bytes`` before a route reads them (413, nothing written)."""

    def __init__(self, app: ASGIApp, max_bytes: int, *, upload_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        limit = self.upload_max_bytes if content_type.startswith("multipart/") else self.max_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        received = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await self._reject(scope, receive, send, limit)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"request body is larger than the limit of {limit} bytes",
            type_slug="payload-too-large",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


class _BodyTooLarge(BaseException):
    pass


#: The address the current request came from (after trusted proxy headers); audit rows record it.
CLIENT_ADDRESS: ContextVar[str | None] = ContextVar("client_address", default=None)


class RequestId:
    """Bind a request id to every log line of the request and echo it back; note its client."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = headers.get(b"x-request-id", b"").decode("latin-1")[:64] or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        client = scope.get("client")
        address_token = CLIENT_ADDRESS.set(client[0] if client else None)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            CLIENT_ADDRESS.reset(address_token)
            structlog.contextvars.unbind_contextvars("request_id")
