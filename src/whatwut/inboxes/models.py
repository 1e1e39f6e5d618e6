"""Inboxes: one per channel (a WhatsApp number, the sandbox, an API channel)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin

CHANNEL_TYPES = ("api", "whatsapp_cloud", "whatsapp_web", "whatsapp_sandbox")
RESOLVED_POLICIES = ("reopen", "new")


class Inbox(IdMixin, TimestampMixin, Base):
    __tablename__ = "inboxes"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    channel_type: Mapped[str] = mapped_column(String(32))
    #: Non-secret channel settings (phone number, ids, greeting, ...).
    settings: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")
    #: Channel secrets (tokens, app secrets), encrypted with the instance key; never returned.
    secrets_encrypted: Mapped[str | None] = mapped_column(Text)
    enable_auto_assignment: Mapped[bool] = mapped_column(Boolean, default=True)
    max_open_per_agent: Mapped[int | None] = mapped_column(Integer)
    #: ``reopen`` resolved conversations on a new customer message, or ``new`` to start another.
    resolved_policy: Mapped[str] = mapped_column(String(16), default="reopen", server_default="reopen")
    #: The last agent auto-assignment chose, for round robin.
    last_assigned_user_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint(f"channel_type IN {CHANNEL_TYPES}", name="channel_type"),
        CheckConstraint("resolved_policy IN ('reopen', 'new')", name="resolved_policy"),
        UniqueConstraint("account_id", "name"),
        # Meta routes every webhook by ``metadata.phone_number_id``: one inbox per number, across
        # all accounts, or a customer's message could land in someone else's account.
        Index(
            "uq_inboxes_cloud_phone_number_id",
            text("(settings ->> 'phone_number_id')"),
            unique=True,
            postgresql_where=text("channel_type = 'whatsapp_cloud'"),
        ),
    )


class InboxMember(IdMixin, TimestampMixin, Base):
    __tablename__ = "inbox_members"

    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)

    __table_args__ = (UniqueConstraint("inbox_id", "user_id"),)
