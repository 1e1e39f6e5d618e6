"""What the templates show, shaped from the services' results.

Templates read these small dataclasses, never ORM rows: the pages stay stable while the domains
evolve, and nothing lazy-loads from a template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

#: What each delivery status looks like next to an outgoing message.
TICKS = {
    "pending": ("⏱", "Sending"),
    "sent": ("✓", "Sent"),
    "delivered": ("✓✓", "Delivered"),
    "read": ("✓✓", "Read"),
    "failed": ("⚠", "Failed"),
}

CHANNEL_NAMES = {
    "whatsapp_cloud": "WhatsApp",
    "whatsapp_web": "WhatsApp Web",
    "whatsapp_sandbox": "WhatsApp sandbox",
    "api": "API",
}

STATUS_FILTERS = (
    ("open", "Open"),
    ("pending", "Pending"),
    ("snoozed", "Snoozed"),
    ("resolved", "Resolved"),
    ("all", "All"),
)
ASSIGNEE_TABS = (("me", "Mine"), ("unassigned", "Unassigned"), ("all", "All"))


@dataclass(frozen=True)
class InboxView:
    id: int
    name: str
    channel_type: str

    @property
    def channel_name(self) -> str:
        return CHANNEL_NAMES.get(self.channel_type, self.channel_type)


@dataclass(frozen=True)
class LabelView:
    title: str
    color: str = "#6b7280"


@dataclass(frozen=True)
class AgentView:
    id: int
    name: str
    email: str = ""
    availability: str = "offline"


@dataclass(frozen=True)
class ConversationRow:
    """One line of the conversation list."""

    id: int
    display_id: int
    status: str
    contact_name: str
    contact_phone: str | None
    inbox_name: str
    last_activity_at: datetime | None
    preview: str = ""
    preview_outgoing: bool = False
    unread: int = 0
    labels: tuple[str, ...] = ()
    assignee_name: str | None = None
    priority: str = "none"
    #: An AI agent handles the conversation (a "bot" chip), and the customer's latest mood.
    bot_handled: bool = False
    mood: SentimentView | None = None


@dataclass(frozen=True)
class SentimentView:
    """A customer message's sentiment as a badge: its label, with the score in the tooltip."""

    label: str
    score: float

    @property
    def emoji(self) -> str:
        return {"negative": "☹", "positive": "☺"}.get(self.label, "😐")


@dataclass(frozen=True)
class SourceView:
    """A document an AI agent's answer was built from."""

    number: int | None
    document: str
    heading: str = ""


@dataclass(frozen=True)
class MessageView:
    id: int
    message_type: str
    content: str | None
    created_at: datetime | None
    content_type: str = "text"
    private: bool = False
    status: str = "sent"
    error: str | None = None
    sender_name: str | None = None
    attachments: tuple[AttachmentView, ...] = ()
    sender_type: str | None = None
    sources: tuple[SourceView, ...] = ()
    confidence: float | None = None
    sentiment: SentimentView | None = None

    @property
    def kind(self) -> str:
        """The bubble style: ``incoming``, ``outgoing``, ``note`` or ``activity``."""
        if self.message_type == "activity":
            return "activity"
        if self.private:
            return "note"
        return self.message_type

    @property
    def tick(self) -> tuple[str, str]:
        return TICKS.get(self.status, ("", self.status))


@dataclass(frozen=True)
class AttachmentView:
    file_type: str
    file_name: str
    url: str | None = None


@dataclass
class ConversationView:
    """The open conversation: header, details and its latest messages (oldest first)."""

    id: int
    display_id: int
    status: str
    contact_name: str
    contact_phone: str | None
    contact_email: str | None
    inbox: InboxView
    assignee_id: int | None
    assignee_name: str | None
    labels: tuple[str, ...] = ()
    priority: str = "none"
    snoozed_until: datetime | None = None
    created_at: datetime | None = None
    messages: list[MessageView] = field(default_factory=list)
    older_cursor: str | None = None
    #: WhatsApp's 24-hour window (``None`` for channels without one): free text only while open.
    window_open: bool | None = None
    window_expires_at: datetime | None = None
