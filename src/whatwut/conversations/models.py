"""Conversations, their messages and attachments, labels and canned responses."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin

STATUSES = ("open", "pending", "resolved", "snoozed")
PRIORITIES = ("none", "low", "medium", "high", "urgent")
MESSAGE_TYPES = ("incoming", "outgoing", "activity")
CONTENT_TYPES = (
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
    "unsupported",
)
DELIVERY_STATUSES = ("pending", "sent", "delivered", "read", "failed")
SENDER_TYPES = ("contact", "user", "bot", "system")


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    #: The number agents see (``#42``), sequential per account as in Chatwoot.
    display_id: Mapped[int] = mapped_column(Integer)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    contact_inbox_id: Mapped[int | None] = mapped_column(
        ForeignKey("contact_inboxes.id", ondelete="SET NULL")
    )
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    priority: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id", ondelete="SET NULL"))
    labels: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list, server_default="{}")
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    #: When the customer last wrote; WhatsApp's 24-hour service window counts from here.
    last_incoming_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    #: The AI agent currently handling the conversation, if any (None once a human takes over).
    ai_agent_id: Mapped[int | None] = mapped_column(BigInteger)
    additional_attributes: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        UniqueConstraint("account_id", "display_id"),
        CheckConstraint(f"status IN {STATUSES}", name="status"),
        CheckConstraint(f"priority IN {PRIORITIES}", name="priority"),
        Index(
            "ix_conversations_list", "account_id", "status", text("last_activity_at DESC"), text("id DESC")
        ),
        Index(
            "ix_conversations_assignee",
            "account_id",
            "assignee_id",
            "status",
            text("last_activity_at DESC"),
            text("id DESC"),
        ),
        Index("ix_conversations_inbox", "inbox_id", "status", text("last_activity_at DESC"), text("id DESC")),
        Index("ix_conversations_team", "team_id", "status", text("last_activity_at DESC"), text("id DESC")),
        # ``status=all`` orders the whole account by activity: without this it sorts every row.
        Index("ix_conversations_recent", "account_id", text("last_activity_at DESC"), text("id DESC")),
        Index("ix_conversations_labels", "labels", postgresql_using="gin"),
        Index("ix_conversations_snoozed", "snoozed_until", postgresql_where=text("status = 'snoozed'")),
    )


class ConversationRead(Base):
    """How far each agent has read a conversation; unread counts derive from it."""

    __tablename__ = "conversation_reads"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    last_read_message_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_read_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class Message(IdMixin, TimestampMixin, Base):
    __tablename__ = "messages"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(BigInteger)
    message_type: Mapped[str] = mapped_column(String(16))
    content: Mapped[str | None] = mapped_column(Text)
    content_type: Mapped[str] = mapped_column(String(16), default="text", server_default="text")
    content_attributes: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")
    private: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status: Mapped[str] = mapped_column(String(16), default="sent", server_default="sent")
    #: The channel's id for this message (a WhatsApp ``wamid``); unique per inbox.
    source_id: Mapped[str | None] = mapped_column(String(255))
    sender_type: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[int | None] = mapped_column(BigInteger)
    external_error: Mapped[str | None] = mapped_column(Text)
    content_tsv: Mapped[str] = mapped_column(
        TSVECTOR, Computed("to_tsvector('simple', coalesce(content, ''))", persisted=True)
    )

    __table_args__ = (
        CheckConstraint(f"message_type IN {MESSAGE_TYPES}", name="message_type"),
        CheckConstraint(f"content_type IN {CONTENT_TYPES}", name="content_type"),
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status"),
        CheckConstraint(f"sender_type IN {SENDER_TYPES}", name="sender_type"),
        Index("ix_messages_conversation", "conversation_id", text("id DESC")),
        Index(
            "uq_messages_inbox_source",
            "inbox_id",
            "source_id",
            unique=True,
            postgresql_where=text("source_id IS NOT NULL"),
        ),
        Index("ix_messages_content_tsv", "content_tsv", postgresql_using="gin"),
        # Unread counts (incoming after the reader's mark) as index-only scans, not heap visits.
        Index(
            "ix_messages_incoming",
            "conversation_id",
            "id",
            postgresql_where=text("message_type = 'incoming'"),
        ),
        Index("ix_messages_account_id", "account_id", text("id DESC")),
    )


class Attachment(IdMixin, TimestampMixin, Base):
    __tablename__ = "attachments"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    file_type: Mapped[str] = mapped_column(String(16))
    mime_type: Mapped[str] = mapped_column(String(255))
    file_name: Mapped[str] = mapped_column(String(255))
    byte_size: Mapped[int] = mapped_column(BigInteger)
    storage_key: Mapped[str | None] = mapped_column(String(512))
    external_url: Mapped[str | None] = mapped_column(Text)
    sha256: Mapped[str | None] = mapped_column(String(64))
