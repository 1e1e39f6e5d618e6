"""Wacanda's client errors and their ``application/problem+json`` rendering (RFC 9457).

Services raise these; the app's handlers render them; the CLI prints their ``detail``.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


class WacandaError(Exception):
    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(WacandaError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class NotAuthenticated(WacandaError):
    status_code = 401
    title = "Not authenticated"
    type_slug = "not-authenticated"


class InvalidInput(WacandaError):
    status_code = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class Conflict(WacandaError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class UpstreamUnavailable(WacandaError):
    status_code = 503
    title = "Upstream unavailable"
    type_slug = "upstream-unavailable"


class PayloadTooLarge(WacandaError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    type_slug: str,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://whatwut.dev/problems/{type_slug}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    body.update({k: v for k, v in extra.items() if v is not None})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WacandaError)
    async def _domain(request: Request, exc: WacandaError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return problem_response(
            exc.status_code,
            exc.title,
            exc.detail,
            type_slug=exc.type_slug,
            instance=request.url.path,
            headers=headers,
            field=exc.field,
            **exc.extra,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": _location(e.get("loc", ())), "message": str(e.get("msg", "")), "type": e.get("type")}
            for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "body", "message": "invalid"}
        return problem_response(
            422,
            "Invalid input",
            f"{first['field']}: {first['message']}",
            type_slug="invalid-input",
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}"
        return problem_response(
            exc.status_code,
            "Error",
            detail,
            type_slug=f"http-{exc.status_code}",
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("wacanda.unhandled_error", path=request.url.path)
        return problem_response(
            500,
            "Internal error",
            "something went wrong on our side; it has been logged",
            type_slug="internal",
            instance=request.url.path,
        )
