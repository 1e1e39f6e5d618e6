"""A fake of Meta's Graph API for WhatsApp, as a real HTTP server on 127.0.0.1.

Tests and the sandbox point ``WHATSAPP_GRAPH_URL`` at it, so the Cloud API channel runs the same
code path as in production: the fake speaks Meta's wire format (``messaging_product``,
``contacts[].wa_id``, ``messages[].id``, media ids and download URLs, phone number details,
paged message templates, errors as ``{"error": {"message", "type", "code", ...}}``), checks the
bearer token, records every request, and fails the next calls on demand.

Use it in-process (``with serve_fake_graph() as graph: graph.base_url``), or mount
``create_fake_graph_app(state)`` inside another ASGI app. The control endpoints under ``/_fake``
(``POST /_fake/fail``, ``GET /_fake/requests``, ``POST /_fake/media``, ``POST /_fake/reset``) let
another process drive it. It is a test double: never expose it on a public address.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

GRAPH_VERSION = "v23.0"
_VERSION = re.compile(r"^v[0-9]{1,3}\.[0-9]{1,3}$")
_NUMERIC = re.compile(r"^[0-9]{1,32}$")


@dataclass(frozen=True)
class GraphError:
    """One of Meta's error answers: HTTP status plus the ``error`` object's fields."""

    status: int
    code: int
    message: str
    error_subcode: int | None = None
    details: str | None = None
    type: str = "OAuthException"

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "fbtrace_id": "A" + secrets.token_urlsafe(16),
        }
        if self.error_subcode is not None:
            error["error_subcode"] = self.error_subcode
        if self.details is not None:
            error["error_data"] = {"messaging_product": "whatsapp", "details": self.details}
        return {"error": error}


#: The failures tests and the sandbox ask for by name (codes as Meta documents them).
ERRORS: dict[str, GraphError] = {
    "rate_limit": GraphError(
        429, 130429, "(#130429) Rate limit hit", details="Cloud API message throughput has been reached."
    ),
    "too_many_messages": GraphError(
        429,
        80007,
        "(#80007) There have been too many calls to this WhatsApp Business account.",
        details="Rate limit issues",
    ),
    "server_error": GraphError(500, 1, "An unknown error occurred", details="Unknown error"),
    "unavailable": GraphError(
        503, 2, "Service temporarily unavailable", details="Temporary due to downtime or overload"
    ),
    "reengagement": GraphError(
        400,
        131047,
        "(#131047) Re-engagement message",
        error_subcode=2494010,
        details="Message failed to send because more than 24 hours have passed since the customer "
        "last replied to this number.",
    ),
    "expired_token": GraphError(
        401,
        190,
        "Error validating access token: Session has expired.",
        error_subcode=463,
    ),
    "invalid_token": GraphError(401, 190, "Invalid OAuth access token - Cannot parse access token"),
    "invalid_parameter": GraphError(400, 100, "(#100) Invalid parameter"),
    "recipient_not_on_whatsapp": GraphError(
        400,
        131026,
        "(#131026) Message Undeliverable",
        details="Message Undeliverable.",
    ),
}

#: Which endpoint a failure may be aimed at (``None`` = the next call of any kind).
ENDPOINTS = (
    "messages",
    "media_upload",
    "media_info",
    "media_delete",
    "media_download",
    "phone_number",
    "templates",
)


@dataclass
class RecordedRequest:
    """A request as the fake received it; ``json`` or ``form`` holds the parsed body."""

    index: int
    method: str
    path: str
    endpoint: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] | None = None
    files: dict[str, dict[str, Any]] | None = None
    status: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Media:
    id: str
    content: bytes
    mime_type: str
    filename: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class _Failure:
    error: GraphError
    times: int
    endpoint: str | None


@dataclass
class FakeGraphState:
    """What the fake knows and what it saw. Thread-safe; shared by the server and the test.

    ``tokens``: accepted bearer tokens (empty = any non-empty token). ``phone_numbers``: details
    served by ``GET /{phone_number_id}`` (unknown numeric ids get generated details).
    ``templates``: per WhatsApp Business Account id, as Meta lists them. ``on_message``: callbacks
    run with ``(phone_number_id, body, wamid)`` for each accepted send (the sandbox's phone view).
    """

    tokens: set[str] = field(default_factory=set)
    phone_numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    media: dict[str, Media] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    on_message: list[Callable[[str, dict[str, Any], str], None]] = field(default_factory=list)
    _deleted_media: set[str] = field(default_factory=set)
    _failures: deque[_Failure] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    # --- set-up -----------------------------------------------------------------------------

    def add_token(self, token: str) -> None:
        with self._lock:
            self.tokens.add(token)

    def add_phone_number(
        self,
        phone_number_id: str,
        display_phone_number: str,
        verified_name: str = "WhatWut Test",
        quality_rating: str = "GREEN",
    ) -> None:
        with self._lock:
            self.phone_numbers[phone_number_id] = {
                "verified_name": verified_name,
                "code_verification_status": "VERIFIED",
                "display_phone_number": display_phone_number,
                "quality_rating": quality_rating,
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": phone_number_id,
            }

    def add_template(
        self,
        business_account_id: str,
        name: str,
        *,
        language: str = "en_US",
        body: str = "Hello {{1}}",
        category: str = "UTILITY",
        status: str = "APPROVED",
        components: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        template = {
            "name": name,
            "parameter_format": "POSITIONAL",
            "components": components or [{"type": "BODY", "text": body}],
            "language": language,
            "status": status,
            "category": category,
            "id": self._new_numeric_id(),
        }
        with self._lock:
            self.templates.setdefault(business_account_id, []).append(template)
        return template

    def add_media(self, content: bytes, mime_type: str, filename: str | None = None) -> str:
        """Store a file as Meta would hold an inbound media item; returns its media id."""
        media = Media(id=self._new_numeric_id(), content=content, mime_type=mime_type, filename=filename)
        with self._lock:
            self.media[media.id] = media
        return media.id

    def fail_next(self, error: str | GraphError, *, times: int = 1, endpoint: str | None = None) -> None:
        """Answer the next ``times`` calls (to ``endpoint``, or any) with ``error`` instead."""
        failure = ERRORS[error] if isinstance(error, str) else error
        if endpoint is not None and endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}")
        with self._lock:
            self._failures.append(_Failure(failure, times, endpoint))

    def reset(self) -> None:
        """Forget recorded requests and pending failures (tokens, numbers, media stay)."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    # --- reading ----------------------------------------------------------------------------

    def requests_to(self, endpoint: str, method: str | None = None) -> list[RecordedRequest]:
        with self._lock:
            return [
                r
                for r in self.requests
                if r.endpoint == endpoint and (method is None or r.method == method.upper())
            ]

    def sent_messages(self) -> list[dict[str, Any]]:
        """Bodies of accepted ``POST /{phone_number_id}/messages`` calls (mark-read excluded)."""
        return [
            r.json
            for r in self.requests_to("messages", "POST")
            if r.status == 200 and isinstance(r.json, dict) and r.json.get("status") != "read"
        ]

    def wait_for_requests(self, endpoint: str, count: int, timeout: float = 10.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests reached ``endpoint`` (jobs run asynchronously)."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.requests_to(endpoint)
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.02)

    # --- internals --------------------------------------------------------------------------

    def _new_numeric_id(self) -> str:
        with self._lock:
            n = next(self._ids)
        return str(10**15 + n * 7919 + secrets.randbelow(7919))

    def _record(self, entry: RecordedRequest) -> RecordedRequest:
        with self._lock:
            entry.index = len(self.requests)
            self.requests.append(entry)
        return entry

    def _take_failure(self, endpoint: str) -> GraphError | None:
        with self._lock:
            for failure in self._failures:
                if failure.endpoint in (None, endpoint):
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                    return failure.error
        return None

    def _token_ok(self, authorization: str | None) -> GraphError | None:
        if not authorization or not authorization.startswith("Bearer "):
            return GraphError(
                401, 2500, "An active access token must be used to query information about the current user."
            )
        token = authorization.removeprefix("Bearer ").strip()
        with self._lock:
            allowed = not self.tokens or token in self.tokens
        return None if allowed and token else ERRORS["invalid_token"]


def new_wamid(wa_id: str) -> str:
    """A message id shaped like Meta's (``wamid.`` + base64 of the recipient and a random id)."""
    raw = b"\x18\x0b" + wa_id.encode()[:20] + b"\x15\x02\x00\x11\x18\x12" + secrets.token_hex(9).encode()
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def _error_response(error: GraphError) -> JSONResponse:
    headers = {"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'} if error.code == 190 else {}
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def _bad_parameter(message: str) -> GraphError:
    return GraphError(400, 100, f"(#100) {message}")


def _not_found(object_id: str, method: str) -> GraphError:
    return GraphError(
        400,
        100,
        f"Unsupported {method.lower()} request. Object with ID '{object_id}' does not exist, cannot be "
        "loaded due to missing permissions, or does not support this operation.",
        error_subcode=33,
        type="GraphMethodException",
    )


def create_fake_graph_app(state: FakeGraphState | None = None) -> Starlette:
    """The fake as an ASGI app; routes live under ``/{version}/`` like ``graph.facebook.com``."""
    state = state or FakeGraphState()

    async def handle(
        request: Request, endpoint: str, answer: Callable[[RecordedRequest], Any], *, auth: bool = True
    ) -> Response:
        entry = RecordedRequest(
            index=0,
            method=request.method,
            path=request.url.path,
            endpoint=endpoint,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data") or content_type.startswith(
            "application/x-www-form-urlencoded"
        ):
            form = await request.form()
            entry.form, entry.files = {}, {}
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    content = await value.read()
                    entry.files[key] = {
                        "filename": value.filename,
                        "content_type": value.content_type,
                        "size": len(content),
                        "content": content,
                    }
                else:
                    entry.form[key] = value
        else:
            raw = await request.body()
            if raw:
                try:
                    entry.json = json.loads(raw)
                except ValueError:
                    entry.json = None
        state._record(entry)
        version = request.path_params.get("version")
        error: GraphError | None = None
        if version is not None and not _VERSION.match(version):
            error = GraphError(400, 2635, f"Unknown API version {version!r}")
        if error is None and auth:
            error = state._token_ok(request.headers.get("authorization"))
        if error is None:
            error = state._take_failure(endpoint)
        if error is not None:
            entry.status = error.status
            return _error_response(error)
        result = answer(entry)
        if isinstance(result, GraphError):
            entry.status = result.status
            return _error_response(result)
        if isinstance(result, Response):
            entry.status = result.status_code
            return result
        entry.status = 200
        return JSONResponse(result)

    async def messages(request: Request) -> Response:
        phone_number_id = request.path_params["phone_number_id"]

        def answer(entry: RecordedRequest) -> Any:
            body = entry.json
            if not isinstance(body, dict):
                return _bad_parameter("The request body must be a JSON object")
            if body.get("messaging_product") != "whatsapp":
                return _bad_parameter("The parameter messaging_product is required.")
            if body.get("status") == "read":
                if not isinstance(body.get("message_id"), str):
                    return _bad_parameter("The parameter message_id is required.")
                return {"success": True}
            to = body.get("to")
            if not isinstance(to, str) or not to.strip():
                return _bad_parameter("The parameter to is required.")
            kind = body.get("type", "text")
            if kind not in body and kind != "text":
                return _bad_parameter(f"The parameter {kind} is required.")
            if kind == "text" and not isinstance((body.get("text") or {}).get("body"), str):
                return _bad_parameter("The parameter text['body'] is required.")
            wa_id = re.sub(r"[^0-9]", "", to)
            wamid = new_wamid(wa_id)
            sent: dict[str, Any] = {"id": wamid}
            if kind == "template":
                sent["message_status"] = "accepted"
            for callback in list(state.on_message):
                callback(phone_number_id, body, wamid)
            return {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": wa_id}],
                "messages": [sent],
            }

        return await handle(request, "messages", answer)

    async def media_upload(request: Request) -> Response:
        def answer(entry: RecordedRequest) -> Any:
            upload = (entry.files or {}).get("file")
            if upload is None:
                return _bad_parameter("The parameter file is required.")
            if (entry.form or {}).get("messaging_product") != "whatsapp":
                return _bad_parameter("The parameter messaging_product is required.")
            mime = (entry.form or {}).get("type") or upload["content_type"] or "application/octet-stream"
            return {"id": state.add_media(upload["content"], mime, upload["filename"])}

        return await handle(request, "media_upload", answer)

    async def get_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]
        media = state.media.get(object_id)
        if media is not None:

            def media_info(entry: RecordedRequest) -> Any:
                url = str(request.url_for("fake_graph_download", media_id=media.id))
                return {
                    "messaging_product": "whatsapp",
                    "url": f"{url}?ext={int(time.time())}&hash={media.sha256[:16]}",
                    "mime_type": media.mime_type,
                    "sha256": media.sha256,
                    "file_size": len(media.content),
                    "id": media.id,
                }

            return await handle(request, "media_info", media_info)

        def phone_number(entry: RecordedRequest) -> Any:
            if not _NUMERIC.match(object_id) or object_id in state._deleted_media:
                return _not_found(object_id, "GET")
            details = state.phone_numbers.get(object_id) or {
                "verified_name": "WhatWut Test",
                "code_verification_status": "VERIFIED",
                "display_phone_number": "+1 555-010-" + object_id[-4:].rjust(4, "0"),
                "quality_rating": "GREEN",
                "platform_type": "CLOUD_API",
                "throughput": {"level": "STANDARD"},
                "id": object_id,
            }
            wanted = entry.query.get("fields")
            if wanted:
                names = {name.strip() for name in wanted.split(",")} | {"id"}
                details = {k: v for k, v in details.items() if k in names}
            return details

        return await handle(request, "phone_number", phone_number)

    async def delete_object(request: Request) -> Response:
        object_id = request.path_params["object_id"]

        def answer(entry: RecordedRequest) -> Any:
            with state._lock:
                found = state.media.pop(object_id, None)
                if found:
                    state._deleted_media.add(object_id)
            return {"success": True} if found else _not_found(object_id, "DELETE")

        return await handle(request, "media_delete", answer)

    async def download(request: Request) -> Response:
        media_id = request.path_params["media_id"]

        def answer(entry: RecordedRequest) -> Any:
            media = state.media.get(media_id)
            if media is None:
                return Response(status_code=404)
            return Response(media.content, media_type=media.mime_type)

        return await handle(request, "media_download", answer)

    async def templates(request: Request) -> Response:
        business_account_id = request.path_params["business_account_id"]

        def answer(entry: RecordedRequest) -> Any:
            everything = list(state.templates.get(business_account_id, []))
            status = entry.query.get("status")
            if status:
                everything = [t for t in everything if t["status"] == status.upper()]
            try:
                limit = max(1, min(int(entry.query.get("limit", "25")), 100))
                start = int(base64.b64decode(entry.query["after"]).decode()) if "after" in entry.query else 0
            except (ValueError, TypeError):
                return _bad_parameter("Invalid parameter limit or after")
            page = everything[start : start + limit]
            payload: dict[str, Any] = {"data": page}
            if page:
                cursors = {
                    "before": base64.b64encode(str(start).encode()).decode(),
                    "after": base64.b64encode(str(start + len(page)).encode()).decode(),
                }
                payload["paging"] = {"cursors": cursors}
                if start + len(page) < len(everything):
                    payload["paging"]["next"] = str(
                        request.url.include_query_params(after=cursors["after"], limit=limit)
                    )
            return payload

        return await handle(request, "templates", answer)

    # --- control endpoints (another process drives the fake through these) -------------------

    async def control_fail(request: Request) -> Response:
        try:
            body = await request.json()
            state.fail_next(
                str(body["error"]), times=int(body.get("times", 1)), endpoint=body.get("endpoint")
            )
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            return JSONResponse({"detail": f"bad failure request: {exc}"}, status_code=400)
        return JSONResponse({"ok": True})

    async def control_requests(request: Request) -> Response:
        since = int(request.query_params.get("since", "0"))
        with state._lock:
            found = [r.to_dict() for r in state.requests[since:]]
        for item in found:
            for upload in (item.get("files") or {}).values():
                upload.pop("content", None)
        return JSONResponse({"requests": found})

    async def control_media(request: Request) -> Response:
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            return JSONResponse({"detail": "file is required"}, status_code=400)
        content = await upload.read()
        mime = str(form.get("type") or upload.content_type or "application/octet-stream")
        return JSONResponse({"id": state.add_media(content, mime, upload.filename)})

    async def control_reset(request: Request) -> Response:
        state.reset()
        return JSONResponse({"ok": True})

    app = Starlette(
        routes=[
            Route("/_fake/fail", control_fail, methods=["POST"]),
            Route("/_fake/requests", control_requests, methods=["GET"]),
            Route("/_fake/media", control_media, methods=["POST"]),
            Route("/_fake/reset", control_reset, methods=["POST"]),
            Route("/_media/{media_id}", download, methods=["GET"], name="fake_graph_download"),
            Route("/{version}/{phone_number_id}/messages", messages, methods=["POST"]),
            Route("/{version}/{phone_number_id}/media", media_upload, methods=["POST"]),
            Route("/{version}/{business_account_id}/message_templates", templates, methods=["GET"]),
            Route("/{version}/{object_id}", get_object, methods=["GET"]),
            Route("/{version}/{object_id}", delete_object, methods=["DELETE"]),
        ]
    )
    app.state.fake_graph = state
    return app


@dataclass
class FakeGraphServer:
    """A running fake: ``base_url`` is what ``WHATSAPP_GRAPH_URL`` should be set to."""

    state: FakeGraphState
    root_url: str
    version: str = GRAPH_VERSION

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/{self.version}"


@contextmanager
def serve_fake_graph(
    state: FakeGraphState | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> Iterator[FakeGraphServer]:
    """Run the fake with uvicorn in a daemon thread for the duration of the block."""
    state = state or FakeGraphState()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        create_fake_graph_app(state), log_level="warning", lifespan="off", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"fake-graph-{bound_port}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the fake Graph API did not start")
        time.sleep(0.01)
    try:
        yield FakeGraphServer(state=state, root_url=f"http://{host}:{bound_port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
