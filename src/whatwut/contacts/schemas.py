"""API shapes of contacts and their identities on channels.

Contact fields are normalised at the edge: phone numbers to E.164, emails to lower case, and
empty strings to "not set", so what is stored is the one form duplicates are checked in.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Annotated, Any, Literal

from email_validator import EmailNotValidError, validate_email
from pydantic import BeforeValidator, Field, field_validator

from whatwut.kit.phone import to_e164
from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText, storable_text

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_KEY = 64
MAX_ATTRIBUTE_STRING = 1024
MAX_ATTRIBUTES_BYTES = 16 * 1024
#: Integers beyond this lose precision in JavaScript clients; refuse rather than corrupt them.
MAX_SAFE_INTEGER = 2**53 - 1

ContactSort = Literal["last_activity", "name"]


def _blank_to_none(value: object) -> object:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def normalise_email(value: str) -> str:
    """A syntactically valid address in lower case; ``ValueError`` otherwise (no DNS lookups)."""
    storable_text(value)
    value = value.strip()
    if len(value) > 320:
        raise ValueError("must be at most 320 characters")
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"is not a valid email address ({exc})") from None
    return checked.normalized.lower()


def check_custom_attributes(value: dict[str, Any]) -> dict[str, Any]:
    """A flat JSON object of at most 50 scalar values, with short keys and short strings."""
    if len(value) > MAX_ATTRIBUTES:
        raise ValueError(f"may hold at most {MAX_ATTRIBUTES} keys")
    for key, item in value.items():
        storable_text(key)
        if not key.strip() or len(key) > MAX_ATTRIBUTE_KEY:
            raise ValueError(f"keys must be 1-{MAX_ATTRIBUTE_KEY} characters (got {len(key)})")
        if item is None or isinstance(item, bool):
            continue
        if isinstance(item, int):
            if abs(item) > MAX_SAFE_INTEGER:
                raise ValueError(f"{key!r}: integers must be within ±{MAX_SAFE_INTEGER}")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueError(f"{key!r}: numbers must be finite")
        elif isinstance(item, str):
            storable_text(item)
            if len(item) > MAX_ATTRIBUTE_STRING:
                raise ValueError(f"{key!r}: strings must be at most {MAX_ATTRIBUTE_STRING} characters")
        else:
            raise ValueError(f"{key!r}: values must be strings, numbers, booleans or null")
    if len(json.dumps(value, ensure_ascii=False).encode()) > MAX_ATTRIBUTES_BYTES:
        raise ValueError(f"must be at most {MAX_ATTRIBUTES_BYTES} bytes as JSON")
    return value


Name = Annotated[PlainText, Field(max_length=255)]
Identifier = Annotated[Annotated[PlainText, Field(max_length=255)] | None, BeforeValidator(_blank_to_none)]
Email = Annotated[str | None, BeforeValidator(_blank_to_none)]
Phone = Annotated[str | None, BeforeValidator(_blank_to_none)]
CustomAttributes = dict[str, Any]


class _ContactFields(Input):
    @field_validator("email", check_fields=False)
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)

    @field_validator("phone_number", check_fields=False)
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else to_e164(value)

    @field_validator("custom_attributes", check_fields=False)
    @classmethod
    def _attributes(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_custom_attributes(value)


class ContactCreate(_ContactFields):
    name: Name = ""
    email: Email = Field(default=None, description="Stored in lower case; unique in the account")
    phone_number: Phone = Field(
        default=None, description="International format; stored in E.164 and unique in the account"
    )
    identifier: Identifier = None
    custom_attributes: CustomAttributes = Field(
        default_factory=dict,
        description="At most 50 keys of ≤ 64 characters; values are strings (≤ 1024), numbers, "
        "booleans or null",
    )


class ContactUpdate(_ContactFields):
    """Only the fields sent change; ``null`` or ``""`` clears email, phone and identifier.

    ``custom_attributes`` replaces the whole object.
    """

    name: Name | None = None
    email: Email = None
    phone_number: Phone = None
    identifier: Identifier = None
    custom_attributes: CustomAttributes | None = None


class ContactOut(Output):
    id: int
    account_id: int
    name: str
    email: str | None
    phone_number: str | None
    identifier: str | None
    custom_attributes: dict[str, Any]
    last_activity_at: datetime | None
    created_at: datetime
    updated_at: datetime


class ContactMerge(Input):
    other_contact_id: Annotated[int, Field(ge=1, le=2**63 - 1)]


class ContactInboxCreate(Input):
    inbox_id: Annotated[int, Field(ge=1, le=2**63 - 1)]
    source_id: Annotated[PlainText, Field(min_length=1, max_length=255)]


class ContactInboxOut(Output):
    id: int
    contact_id: int
    inbox_id: int
    source_id: str
    created_at: datetime
