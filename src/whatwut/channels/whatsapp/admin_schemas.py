"""API shapes of the WhatsApp Cloud API admin actions (check connection, templates)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from whatwut.kit.schemas import Output


class ConnectionCheckOut(Output):
    """``ok: false`` is an answer, not an error: ``error`` says what Meta refused and why."""

    ok: bool
    status: str = Field(description="the WhatsApp instance's status now: `connected` or `error`")
    phone: dict[str, Any] = Field(
        description="Meta's phone number details (display_phone_number, verified_name, quality_rating, ...)"
    )
    error: str | None
    code: int | None = Field(description="Meta's error code (190: bad or expired access token)")
    retryable: bool = Field(description="true when Meta was unavailable or throttled: try again later")


class TemplateSyncOut(Output):
    synced: int
    approved: int
    removed: int


class TemplateOut(Output):
    id: int
    inbox_id: int
    name: str
    language: str
    status: str
    category: str | None
    parameter_format: str
    body_parameter_count: int
    components: list[dict[str, Any]]
    synced_at: datetime
