"""Liveness and readiness: is the database answering, and at which schema revision."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from whatwut import __version__
from whatwut.kit.deps import Context

router = APIRouter(tags=["health"])


@router.get("/health", summary="Service and database state")
async def health(context: Context) -> JSONResponse:
    body: dict[str, Any] = {"status": "ok", "version": __version__, "database": "ok"}
    try:
        async with context.engine.connect() as connection:
            body["schema_revision"] = (
                await connection.execute(text("SELECT version_num FROM alembic_version"))
            ).scalar_one_or_none()
            body["database_version"] = (await connection.execute(text("SHOW server_version"))).scalar_one()
    except Exception as exc:  # the point of this endpoint is to report, not to raise
        body.update(status="degraded", database="unavailable", database_error=type(exc).__name__)
        return JSONResponse(body, status_code=503)
    return JSONResponse(body)
