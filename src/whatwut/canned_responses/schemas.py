"""API shapes of canned responses."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from pydantic import BeforeValidator, Field

from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText

SHORT_CODE_PATTERN = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_CONTENT = 10_000


def _lower(value: object) -> object:
    """Agents type ``/Hello`` or ``/hello`` alike: short codes are stored in lower case."""
    return value.strip().lower() if isinstance(value, str) else value


ShortCode = Annotated[
    str,
    BeforeValidator(_lower),
    Field(
        pattern=SHORT_CODE_PATTERN.pattern, description="1-64 of a-z, 0-9, `-`, `_`; unique in the account"
    ),
]
Content = Annotated[PlainText, Field(min_length=1, max_length=MAX_CONTENT)]


class CannedResponseCreate(Input):
    short_code: ShortCode
    content: Content


class CannedResponseUpdate(Input):
    short_code: ShortCode | None = None
    content: Content | None = None


class CannedResponseOut(Output):
    id: int
    short_code: str
    content: str
    created_at: datetime
    updated_at: datetime
