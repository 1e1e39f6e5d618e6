"""API shapes of inboxes, their channels and their members."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from whatwut.kit.phone import to_e164
from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import PlainText

ChannelType = Literal["api", "whatsapp_cloud", "whatsapp_web", "whatsapp_sandbox"]

#: What ``POST /inboxes`` can make today; the others come with their channel's issue.
CREATABLE_CHANNEL_TYPES = ("api", "whatsapp_cloud")

InboxName = Annotated[PlainText, Field(min_length=1, max_length=255)]
MetaId = Annotated[str, Field(pattern=r"^[0-9]{1,32}$", description="A numeric id from Meta's dashboard")]
Secret = Annotated[PlainText, Field(min_length=1, max_length=4096)]


class ChannelSpec(BaseModel):
    """The inbox's channel. ``api``: optional ``webhook_url``. ``whatsapp_cloud``: ``phone_number``
    (international format), ``phone_number_id``, ``business_account_id``, ``access_token``,
    ``app_secret``, ``verify_token`` (the last three are stored encrypted and never returned).
    """

    # Parsed in two steps (here the type, then the type's own model in the service) so that an
    # unknown ``type`` is reported as ``channel.type`` and a bad field as ``channel.<field>``.
    model_config = ConfigDict(
        extra="allow",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"type": "api"},
                {
                    "type": "whatsapp_cloud",
                    "phone_number": "+55 11 98765-4321",
                    "phone_number_id": "106540352242922",
                    "business_account_id": "102290129340398",
                    "access_token": "EAAG...",
                    "app_secret": "...",
                    "verify_token": "...",
                },
            ]
        },
    )

    type: ChannelType


class ChannelPatch(BaseModel):
    """The ``channel`` object of a PATCH: only the fields that change; the type cannot."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    type: ChannelType | None = None


class ApiChannel(Input):
    """An API channel: messages arrive and leave through WhatWut's own API."""

    type: Literal["api"] = "api"
    webhook_url: Annotated[PlainText, Field(max_length=2048, pattern=r"^https?://\S+$")] | None = None


class ApiChannelPatch(Input):
    type: Literal["api"] | None = None
    webhook_url: Annotated[PlainText, Field(max_length=2048, pattern=r"^https?://\S+$")] | None = None


class WhatsAppCloudChannel(Input):
    """The official WhatsApp Business Cloud API (the shape DESIGN.md fixes)."""

    type: Literal["whatsapp_cloud"] = "whatsapp_cloud"
    phone_number: Annotated[PlainText, Field(max_length=64)]
    phone_number_id: MetaId
    business_account_id: MetaId
    access_token: Secret
    app_secret: Secret
    verify_token: Secret

    @field_validator("phone_number")
    @classmethod
    def _phone(cls, value: str) -> str:
        return to_e164(value)


class WhatsAppCloudChannelPatch(Input):
    type: Literal["whatsapp_cloud"] | None = None
    phone_number: Annotated[PlainText, Field(max_length=64)] | None = None
    phone_number_id: MetaId | None = None
    business_account_id: MetaId | None = None
    access_token: Secret | None = None
    app_secret: Secret | None = None
    verify_token: Secret | None = None

    @field_validator("phone_number")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else to_e164(value)


#: Which channel fields are secrets: sealed in ``secrets_encrypted``, shown only as ``<name>_set``.
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "api": (),
    "whatsapp_cloud": ("access_token", "app_secret", "verify_token"),
    "whatsapp_web": (),
    "whatsapp_sandbox": (),
}
CHANNEL_MODELS: dict[str, type[Input]] = {"api": ApiChannel, "whatsapp_cloud": WhatsAppCloudChannel}
CHANNEL_PATCH_MODELS: dict[str, type[Input]] = {
    "api": ApiChannelPatch,
    "whatsapp_cloud": WhatsAppCloudChannelPatch,
}


class InboxCreate(Input):
    name: InboxName
    channel: ChannelSpec
    enable_auto_assignment: bool = True
    max_open_per_agent: Annotated[int, Field(ge=1, le=10_000)] | None = None
    resolved_policy: Literal["reopen", "new"] = "reopen"


class InboxUpdate(Input):
    name: InboxName | None = None
    channel: ChannelPatch | None = None
    enable_auto_assignment: bool | None = None
    max_open_per_agent: Annotated[int, Field(ge=1, le=10_000)] | None = None
    resolved_policy: Literal["reopen", "new"] | None = None


class InboxOut(Output):
    id: int
    account_id: int
    name: str
    channel_type: str
    channel: dict[str, Any] = Field(
        description="The channel's settings; secrets appear only as `<name>_set: true`"
    )
    enable_auto_assignment: bool
    max_open_per_agent: int | None
    resolved_policy: str
    created_at: datetime
    updated_at: datetime


class InboxMembersUpdate(Input):
    user_ids: Annotated[list[Annotated[int, Field(ge=1, le=2**63 - 1)]], Field(max_length=500)]


class InboxMemberOut(Output):
    id: int
    name: str
    email: str
    role: str
    availability: str
