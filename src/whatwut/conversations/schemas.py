"""API shapes of conversations and messages, and the per-content-type rules for messages.

Everything a client sends is checked here before a row is written: strings PostgreSQL cannot
store (NUL, lone surrogates) are refused with the field named, so bad input never reaches the
database as a 500.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from whatwut.kit.errors import InvalidInput
from whatwut.kit.schemas import Input, Output
from whatwut.kit.text import storable_text

MAX_ID = 2**63 - 1
MAX_CONTENT = 4096
MAX_LABELS = 50
MAX_JSON_DEPTH = 8
MAX_JSON_ITEMS = 200

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Status = Literal["open", "pending", "resolved", "snoozed"]
StatusFilter = Literal["open", "pending", "resolved", "snoozed", "all"]
AssigneeType = Literal["me", "unassigned", "all"]
Priority = Literal["none", "low", "medium", "high", "urgent"]
#: What an agent (or bot) may send; media types need at least one attachment.
OutgoingContentType = Literal[
    "text",
    "image",
    "audio",
    "video",
    "file",
    "sticker",
    "location",
    "contact_card",
    "interactive",
    "template",
    "reaction",
]
MEDIA_CONTENT_TYPES = frozenset({"image", "audio", "video", "file", "sticker"})

_LABEL = re.compile(r"^[\w-]{1,64}$")


def storable_json(value: Any, depth: int = 0) -> Any:
    """Free-form JSON that JSONB accepts, and not absurdly deep or wide."""
    if depth > MAX_JSON_DEPTH:
        raise ValueError(f"must not nest deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise ValueError("numbers must be finite")
    if isinstance(value, dict):
        if len(value) > MAX_JSON_ITEMS:
            raise ValueError(f"must have at most {MAX_JSON_ITEMS} keys")
        for key, item in value.items():
            storable_text(str(key))
            storable_json(item, depth + 1)
    elif isinstance(value, list):
        if len(value) > MAX_JSON_ITEMS:
            raise ValueError(f"must have at most {MAX_JSON_ITEMS} items")
        for item in value:
            storable_json(item, depth + 1)
    return value


def sanitize_text(value: str) -> str:
    """For what channels receive (never refused): drop NUL, replace unpaired surrogates."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def sanitize_json(value: Any) -> Any:
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, dict):
        return {sanitize_text(str(k)): sanitize_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [sanitize_json(v) for v in value]
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def clean_label(value: str) -> str:
    value = storable_text(value).strip().lower()
    if not _LABEL.match(value):
        raise ValueError("labels are 1-64 letters, digits, '-' or '_'")
    return value


SafeStr = Annotated[str, AfterValidator(storable_text)]
LabelTitle = Annotated[str, AfterValidator(clean_label)]
JsonObject = Annotated[dict[str, Any], AfterValidator(storable_json)]


def _unique_labels(labels: list[str]) -> list[str]:
    return list(dict.fromkeys(labels))


Labels = Annotated[list[LabelTitle], Field(max_length=MAX_LABELS), AfterValidator(_unique_labels)]


# --- requests ----------------------------------------------------------------------------------


class InitialMessage(Input):
    content: Annotated[SafeStr, Field(min_length=1, max_length=MAX_CONTENT)]


class CreateConversation(Input):
    inbox_id: Id
    contact_id: Id
    status: Literal["open", "pending", "resolved"] = "open"
    assignee_id: Id | None = None
    team_id: Id | None = None
    priority: Priority = "none"
    labels: Labels = Field(default_factory=list)
    additional_attributes: JsonObject = Field(default_factory=dict)
    message: InitialMessage | None = None


class UpdateConversation(Input):
    """Only the fields sent change; ``team_id: null`` removes the team."""

    priority: Priority | None = None
    labels: Labels | None = None
    team_id: Id | None = None
    additional_attributes: JsonObject | None = None


class ToggleStatus(Input):
    """Without ``status`` it toggles between open and resolved, as Chatwoot's button does."""

    status: Status | None = None
    snoozed_until: datetime | None = None

    @field_validator("snoozed_until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a time zone (e.g. 2030-01-01T09:00:00Z)")
        return value

    @model_validator(mode="after")
    def _snooze_needs_time(self) -> ToggleStatus:
        if self.status == "snoozed" and self.snoozed_until is None:
            raise InvalidInput("snoozing needs `snoozed_until`", field="snoozed_until")
        if self.status != "snoozed" and self.snoozed_until is not None:
            raise InvalidInput("`snoozed_until` only goes with status `snoozed`", field="snoozed_until")
        return self


class AssignConversation(Input):
    """``assignee_id: null`` unassigns; ``team_id`` (optional) sets or clears the team too."""

    assignee_id: Id | None = None
    team_id: Id | None = None

    @model_validator(mode="after")
    def _something(self) -> AssignConversation:
        if not self.model_fields_set:
            raise InvalidInput(
                "send `assignee_id` (or null to unassign) and/or `team_id`", field="assignee_id"
            )
        return self


class SetLabels(Input):
    labels: Labels


class CreateMessage(BaseModel):
    """A message from an agent: a reply, or a private note. Text is kept exactly as sent."""

    model_config = ConfigDict(extra="forbid")

    content: Annotated[SafeStr, Field(max_length=MAX_CONTENT)] | None = None
    private: bool = False
    content_type: OutgoingContentType = "text"
    content_attributes: dict[str, Any] = Field(default_factory=dict)


# --- content rules per content_type ------------------------------------------------------------


class _Attrs(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TextAttributes(_Attrs):
    in_reply_to: Id | None = None
    #: WhatsApp shows a preview of the first link in the text.
    preview_url: bool | None = None


class ReactionAttributes(_Attrs):
    """A reaction (the ``content`` is the emoji; empty removes it) to the message ``in_reply_to``."""

    in_reply_to: Id


class MediaAttributes(_Attrs):
    in_reply_to: Id | None = None


class LocationAttributes(_Attrs):
    latitude: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    longitude: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    name: Annotated[SafeStr, Field(max_length=256)] | None = None
    address: Annotated[SafeStr, Field(max_length=512)] | None = None


class CardContact(_Attrs):
    name: Annotated[SafeStr, Field(min_length=1, max_length=256)]
    phone_number: Annotated[SafeStr, Field(pattern=r"^\+?[0-9 ()\-]{3,32}$")] | None = None
    email: Annotated[SafeStr, Field(max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")] | None = None


class ContactCardAttributes(_Attrs):
    contacts: Annotated[list[CardContact], Field(min_length=1, max_length=10)]


class InteractiveButton(_Attrs):
    id: Annotated[SafeStr, Field(min_length=1, max_length=256)]
    title: Annotated[SafeStr, Field(min_length=1, max_length=24)]
    #: A list row's second line (lists only).
    description: Annotated[SafeStr, Field(max_length=72)] | None = None


class InteractiveAttributes(_Attrs):
    """WhatsApp's reply buttons (up to 3) or a list message (up to 10 rows)."""

    type: Literal["button", "list"]
    buttons: Annotated[list[InteractiveButton], Field(min_length=1, max_length=10)]
    header: Annotated[SafeStr, Field(max_length=60)] | None = None
    footer: Annotated[SafeStr, Field(max_length=60)] | None = None
    button_text: Annotated[SafeStr, Field(min_length=1, max_length=20)] | None = None
    section_title: Annotated[SafeStr, Field(max_length=24)] | None = None
    in_reply_to: Id | None = None

    @model_validator(mode="after")
    def _shape(self) -> InteractiveAttributes:
        if self.type == "button" and len(self.buttons) > 3:
            raise ValueError("reply-button messages have at most 3 buttons")
        if self.type == "list" and self.button_text is None:
            raise ValueError("list messages need `button_text`")
        if len({b.id for b in self.buttons}) != len(self.buttons):
            raise ValueError("button ids must be unique")
        return self


TemplateText = Annotated[SafeStr, Field(min_length=1, max_length=1024)]


class TemplateHeaderMedia(_Attrs):
    """The media of a template whose header is an image, video or document."""

    type: Literal["image", "video", "document"]
    link: Annotated[SafeStr, Field(max_length=2048, pattern=r"^https://\S+$")] | None = None
    id: Annotated[SafeStr, Field(max_length=128)] | None = None
    filename: Annotated[SafeStr, Field(max_length=240)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TemplateHeaderMedia:
        if (self.link is None) == (self.id is None):
            raise ValueError("give exactly one of `link` or `id`")
        return self


class TemplateButtonParameter(_Attrs):
    """The variable part of a template button: a URL suffix, or a quick-reply payload."""

    index: Annotated[int, Field(ge=0, le=9)]
    sub_type: Literal["url", "quick_reply", "copy_code"] = "url"
    text: TemplateText


class TemplateSpec(_Attrs):
    """An approved WhatsApp template and the values of its variables.

    ``parameters`` fills the body's ``{{1}}``, ``{{2}}``, ... in order (a list), or its named
    variables (an object); ``header_parameters`` a text header's; ``components`` is sent to
    Meta as given, for shapes the other fields do not cover.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,512}$")]
    language: Annotated[str, Field(pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$")]
    parameters: (
        Annotated[list[TemplateText], Field(max_length=100)]
        | Annotated[
            dict[Annotated[str, Field(pattern=r"^[a-z0-9_]{1,64}$")], TemplateText], Field(max_length=100)
        ]
    ) = Field(default_factory=list)
    header_parameters: Annotated[list[TemplateText], Field(max_length=1)] = Field(default_factory=list)
    header_media: TemplateHeaderMedia | None = None
    button_parameters: Annotated[list[TemplateButtonParameter], Field(max_length=10)] = Field(
        default_factory=list
    )
    components: Annotated[list[JsonObject], Field(max_length=20)] = Field(default_factory=list)


class TemplateAttributes(_Attrs):
    template: TemplateSpec


ATTRIBUTE_RULES: dict[str, type[_Attrs]] = {
    "text": TextAttributes,
    "image": MediaAttributes,
    "audio": MediaAttributes,
    "video": MediaAttributes,
    "file": MediaAttributes,
    "location": LocationAttributes,
    "contact_card": ContactCardAttributes,
    "interactive": InteractiveAttributes,
    "template": TemplateAttributes,
    "sticker": MediaAttributes,
    "reaction": ReactionAttributes,
}
#: Content types whose ``content`` (the visible text) may be left out.
CONTENT_OPTIONAL = frozenset(
    {"image", "audio", "video", "file", "sticker", "location", "contact_card", "template", "reaction"}
)


def checked_message(body: CreateMessage, *, attachment_count: int) -> tuple[str | None, dict[str, Any]]:
    """The content and normalised content_attributes, or InvalidInput naming the field."""
    if body.private and body.content_type not in ("text", *(MEDIA_CONTENT_TYPES - {"sticker"})):
        raise InvalidInput("private notes are text (with optional attachments)", field="content_type")
    rules = ATTRIBUTE_RULES[body.content_type]
    try:
        attributes = rules.model_validate(body.content_attributes).model_dump(
            exclude_none=True, exclude_defaults=True
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        field = f"content_attributes.{where}" if where else "content_attributes"
        raise InvalidInput(f"{field}: {first.get('msg', 'invalid')}", field=field) from None
    content = body.content
    if content is not None and not content.strip():
        content = None
    if body.content_type in MEDIA_CONTENT_TYPES and attachment_count == 0:
        raise InvalidInput(f"a {body.content_type} message needs an attachment", field="attachments")
    if content is None and attachment_count == 0 and body.content_type not in CONTENT_OPTIONAL:
        raise InvalidInput("content must not be empty", field="content")
    return content, attributes


# --- responses ---------------------------------------------------------------------------------


class ContactBrief(Output):
    id: int
    name: str
    phone_number: str | None


class AssigneeBrief(Output):
    id: int
    name: str


class MessagePreview(Output):
    id: int
    content: str | None
    message_type: str
    content_type: str
    private: bool
    created_at: datetime


class ServiceWindow(Output):
    """WhatsApp's 24-hour customer-service window: free-form replies only while it is open."""

    open: bool
    expires_at: datetime | None = Field(description="24 hours after the customer's last message")


class ConversationOut(Output):
    id: int
    display_id: int
    inbox_id: int
    status: str
    priority: str
    assignee: AssigneeBrief | None
    team_id: int | None
    labels: list[str]
    contact: ContactBrief
    contact_inbox_id: int | None
    additional_attributes: dict[str, Any]
    last_activity_at: datetime
    last_incoming_at: datetime | None
    service_window: ServiceWindow
    snoozed_until: datetime | None
    unread_count: int
    last_message: MessagePreview | None
    created_at: datetime
    #: The AI agent handling the conversation (None when people do).
    ai_agent_id: int | None = None


class ConversationCounts(Output):
    """Chatwoot's tab counts for the current filters."""

    mine_count: int
    unassigned_count: int
    assigned_count: int
    all_count: int


class ReadState(Output):
    conversation_id: int
    last_read_message_id: int
    unread_count: int


class LabelsOut(Output):
    labels: list[str]


class Sender(Output):
    type: str
    id: int | None
    name: str | None


class AttachmentOut(Output):
    id: int
    file_type: str
    mime_type: str
    file_name: str
    byte_size: int
    data_url: str | None
    external_url: str | None


class MessageOut(Output):
    id: int
    conversation_id: int
    inbox_id: int
    message_type: str
    content: str | None
    content_type: str
    content_attributes: dict[str, Any]
    source_id: str | None
    status: str
    external_error: str | None
    sender: Sender | None
    private: bool
    attachments: list[AttachmentOut]
    created_at: datetime


class SearchHit(Output):
    """A message that matched, with enough of its conversation to open it."""

    id: int
    conversation_id: int
    display_id: int
    inbox_id: int
    message_type: str
    content: str | None
    private: bool
    created_at: datetime
