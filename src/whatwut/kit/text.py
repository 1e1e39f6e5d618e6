"""Text that PostgreSQL can store: JSON allows NUL and lone surrogates, ``text`` columns do not.

Without this, ``{"name": "\\u0000"}`` passes validation and fails in the database as a 500.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def storable_text(value: str) -> str:
    """The value unchanged, or a ``ValueError`` naming why PostgreSQL would refuse it."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from exc
    return value


#: A ``str`` field whose value can be stored in a ``text``/``varchar``/``jsonb`` column.
PlainText = Annotated[str, AfterValidator(storable_text)]
