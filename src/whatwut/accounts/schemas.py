"""API shapes for sign-in, the profile, credentials, account members and the account itself."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import EmailStr, Field

from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText

Role = Literal["administrator", "agent"]
Availability = Literal["online", "busy", "offline"]
#: BCP 47-ish: ``en``, ``pt_BR``, ``pt-BR``, ``zh-Hant``.
LOCALE_PATTERN = r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,4})?$"


class LoginRequest(Input):
    email: EmailStr
    password: PlainText = Field(min_length=1, max_length=1024)


class AccountSummary(Output):
    id: int
    name: str
    role: str


class LoginResponse(Output):
    access_token: str
    token_type: str = "bearer"
    expires_at: str | None = None
    accounts: list[AccountSummary]


class SessionResponse(Output):
    """Cookie sign-in: the cookie carries the session; the page sends this CSRF token back."""

    csrf_token: str
    expires_at: datetime | None
    user_id: int
    accounts: list[AccountSummary]


class ProfileAccount(Output):
    id: int
    name: str
    role: str
    availability: str


class Profile(Output):
    id: int
    name: str
    email: str
    is_bot: bool
    accounts: list[ProfileAccount]
    #: Present when signed in with the session cookie, so a reloaded page can find it again.
    csrf_token: str | None = None


class AvailabilityUpdate(Input):
    availability: Availability


class AccessTokenCreate(Input):
    name: PlainText = Field(min_length=1, max_length=255)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class AccessTokenOut(Output):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class AccessTokenCreated(AccessTokenOut):
    """The only answer that carries the token itself; it is stored hashed."""

    token: str


class ApiKeyCreate(Input):
    name: PlainText = Field(min_length=1, max_length=255)
    role: Role = "agent"
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class ApiKeyOut(AccessTokenOut):
    user_id: int
    #: The bot's role in the account; ``None`` once the key is revoked.
    role: str | None
    created_by_id: int | None


class ApiKeyCreated(ApiKeyOut):
    token: str


class AgentOut(Output):
    id: int
    name: str
    email: str
    role: str
    availability: str


class AgentCreate(Input):
    email: EmailStr
    name: PlainText = Field(min_length=1, max_length=255)
    role: Role = "agent"
    password: PlainText | None = Field(default=None, min_length=8, max_length=1024)


class AgentCreated(AgentOut):
    #: Only when WhatWut generated it; shown once.
    password: str | None = None


class AgentUpdate(Input):
    role: Role


class AccountOut(Output):
    id: int
    name: str
    locale: str
    created_at: datetime


class AccountUpdate(Input):
    name: PlainText | None = Field(default=None, min_length=1, max_length=255)
    locale: str | None = Field(default=None, pattern=LOCALE_PATTERN)
