"""API shapes of labels."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field

from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText

TITLE_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")


def _lower(value: object) -> object:
    """Titles are case-insensitive, as in Chatwoot: ``Billing`` is stored as ``billing``."""
    return value.strip().lower() if isinstance(value, str) else value


def _lower_hex(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


Title = Annotated[
    str,
    BeforeValidator(_lower),
    Field(pattern=TITLE_PATTERN.pattern, description="1-64 of a-z, 0-9, `-`, `_` (lower-cased)"),
]
Color = Annotated[str, BeforeValidator(_lower_hex), Field(pattern=r"^#[0-9a-f]{6}$", description="`#rrggbb`")]
Description = Annotated[PlainText, Field(max_length=1000)]


class LabelCreate(Input):
    title: Title
    description: Description = ""
    color: Color = "#1f93ff"


class LabelUpdate(Input):
    """A label's title cannot change: conversations carry it by name."""

    description: Description | None = None
    color: Color | None = None


class LabelOut(Output):
    id: int
    title: str
    description: str
    color: str
    created_at: datetime
    updated_at: datetime
