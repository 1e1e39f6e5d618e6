"""Tables of the outbound side of WhatsApp: synced message templates, and read receipts sent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin


class WhatsAppTemplate(IdMixin, TimestampMixin, Base):
    """A message template of the inbox's WhatsApp Business Account, as Meta last listed it."""

    __tablename__ = "whatsapp_templates"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    #: Meta's id of the template (one per name and language).
    meta_id: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(512))
    language: Mapped[str] = mapped_column(String(16))
    #: ``APPROVED``, ``PENDING``, ``REJECTED``, ``PAUSED``, ``DISABLED``, ... (only approved ones send).
    status: Mapped[str] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(32))
    #: ``POSITIONAL`` (``{{1}}``) or ``NAMED`` (``{{first_name}}``) variables.
    parameter_format: Mapped[str] = mapped_column(
        String(16), default="POSITIONAL", server_default="POSITIONAL"
    )
    components: Mapped[list[dict[str, object]]] = mapped_column(JSONB, default=list, server_default="[]")
    #: How many variables the body has (positional) — what a send is checked against.
    body_parameter_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    synced_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        UniqueConstraint("inbox_id", "name", "language"),
        Index("ix_whatsapp_templates_account", "account_id", "inbox_id", "status"),
    )


class WhatsAppReadReceipt(Base):
    """An incoming message WhatWut told WhatsApp was read (blue ticks), so it is told only once."""

    __tablename__ = "whatsapp_read_receipts"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigInteger, index=True)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
