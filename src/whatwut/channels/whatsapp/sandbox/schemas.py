"""API shapes of the sandbox: a customer's message in, a phone's chat out."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from whatwut.kit.schemas import Input


class SandboxMessageIn(Input):
    """What a sandbox customer sends: ``from`` is their phone number with its country code."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        populate_by_name=True,
        json_schema_extra={
            "examples": [{"from": "+15550001", "name": "Ana", "text": "Hi! Where is my order?"}]
        },
    )

    phone: Annotated[str, Field(alias="from", min_length=1, max_length=32)]
    name: Annotated[str, Field(max_length=100)] | None = None
    text: Annotated[str, Field(min_length=1, max_length=4096)]
    reply_to: Annotated[str, Field(max_length=255)] | None = None


class PhoneMessageOut(BaseModel):
    """One bubble of a phone's chat. ``status``: for ``from_phone``, ``pending`` → ``delivered`` (the
    webhook got 200) → ``read`` (the business marked it read), or ``failed``; for ``to_phone``, the
    receipt the phone reported back (``pending`` → ``sent`` → ``delivered`` → ``read``)."""

    wamid: str
    direction: Literal["from_phone", "to_phone"]
    type: str
    text: str | None
    caption: str | None
    media_url: str | None
    reply_to: str | None
    options: list[str]
    reactions: list[str]
    status: str
    error: str | None
    at: float


class SandboxMessageOut(BaseModel):
    """What happened to a sandbox message: the webhook's answer from the real endpoint."""

    phone: str
    name: str
    message: PhoneMessageOut
    webhook_status: int
    inbox_id: int
    chat_url: str


class PhoneChatOut(BaseModel):
    phone: str
    name: str
    data: list[PhoneMessageOut]
