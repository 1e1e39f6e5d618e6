"""API shapes for sign-in and accounts."""

from __future__ import annotations

from pydantic import EmailStr, Field

from whatwut.kit.schemas import Input, Output


class LoginRequest(Input):
    email: EmailStr
    password: str = Field(min_length=1, max_length=1024)


class AccountSummary(Output):
    id: int
    name: str
    role: str


class LoginResponse(Output):
    access_token: str
    token_type: str = "bearer"
    expires_at: str | None = None
    accounts: list[AccountSummary]
