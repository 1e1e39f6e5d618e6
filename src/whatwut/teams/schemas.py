"""API shapes of teams and their members."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText


class TeamCreate(Input):
    name: PlainText = Field(min_length=1, max_length=255)
    description: PlainText = Field(default="", max_length=10_000)
    allow_auto_assign: bool = True


class TeamUpdate(Input):
    name: PlainText | None = Field(default=None, min_length=1, max_length=255)
    description: PlainText | None = Field(default=None, max_length=10_000)
    allow_auto_assign: bool | None = None


class TeamOut(Output):
    id: int
    account_id: int
    name: str
    description: str
    allow_auto_assign: bool
    created_at: datetime


class TeamMembersChange(Input):
    user_ids: list[int] = Field(min_length=1, max_length=100)


class TeamMemberOut(Output):
    id: int
    name: str
    email: str
    role: str
    availability: str
