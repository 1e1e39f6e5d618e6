"""Base API shapes: strict input (unknown fields are an error), the list envelope."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict

T = TypeVar("T")


class Input(BaseModel):
    """Request bodies: unknown fields are rejected, strings trimmed."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class PageMeta(BaseModel):
    next_cursor: str | None = None


class Page(BaseModel, Generic[T]):
    """Every list answers ``{"data": [...], "meta": {"next_cursor": ...}}``."""

    data: list[T]
    meta: PageMeta
