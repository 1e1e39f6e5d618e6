"""Domain errors and their ``application/problem+json`` rendering (RFC 9457).

Services raise these; one handler turns them into responses. A service never builds HTTP.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"


class WhatWutError(Exception):
    """Base of every error a client can cause; carries its HTTP status."""

    status_code = 400
    title = "Bad request"
    type_slug = "bad-request"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(WhatWutError):
    status_code = 404
    title = "Not found"
    type_slug = "not-found"


class NotAuthenticated(WhatWutError):
    status_code = 401
    title = "Not authenticated"
    type_slug = "not-authenticated"


class NotPermitted(WhatWutError):
    status_code = 403
    title = "Forbidden"
    type_slug = "forbidden"


class Conflict(WhatWutError):
    status_code = 409
    title = "Conflict"
    type_slug = "conflict"


class InvalidInput(WhatWutError):
    status_code = 422
    title = "Invalid input"
    type_slug = "invalid-input"


class PayloadTooLarge(WhatWutError):
    status_code = 413
    title = "Payload too large"
    type_slug = "payload-too-large"


class TooManyRequests(WhatWutError):
    status_code = 429
    title = "Too many requests"
    type_slug = "too-many-requests"


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
    """Every error leaves as problem+json with a ``detail`` a person can act on."""

    @app.exception_handler(WhatWutError)
    async def _domain(request: Request, exc: WhatWutError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
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
        detail = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            detail += f" (and {len(errors) - 1} more)"
        return problem_response(
            422,
            "Invalid input",
            detail,
            type_slug="invalid-input",
            instance=request.url.path,
            field=first["field"],
            errors=errors,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Not authenticated"}
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"No route matches {request.method} {request.url.path}"
        return problem_response(
            exc.status_code,
            titles.get(exc.status_code, "Error"),
            detail,
            type_slug=f"http-{exc.status_code}",
            instance=request.url.path,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        import structlog

        structlog.get_logger(__name__).exception("request.unhandled_error", path=request.url.path)
        return problem_response(
            500,
            "Internal server error",
            "Something went wrong on our side; the error was logged.",
            type_slug="internal",
            instance=request.url.path,
        )
