"""WhatsApp tables: the instance behind each WhatsApp inbox, customers' WhatsApp identities, the
WhatsApp side of messages, and the raw inbound events the Cloud API webhook accepted."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
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
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin

CONNECTION_TYPES = ("cloud_api", "web", "sandbox")
INSTANCE_STATUSES = ("pending", "connected", "disconnected", "error")
EVENT_KINDS = ("message", "status")


class WhatsAppInstance(IdMixin, TimestampMixin, Base):
    """One WhatsApp number connected to an inbox (Cloud API, WhatsApp Web or the sandbox)."""

    __tablename__ = "whatsapp_instances"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    #: A stable opaque key for the instance (logs, WhatsApp Web session files).
    instance_key: Mapped[str] = mapped_column(String(64), unique=True)
    connection_type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    phone_number: Mapped[str | None] = mapped_column(String(32))
    #: WhatsApp Web pairing only.
    qr_code: Mapped[str | None] = mapped_column(Text)
    #: Non-secret details (e.g. the Cloud API's ``phone_number_id``, last check result).
    settings: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        CheckConstraint(f"connection_type IN {CONNECTION_TYPES}", name="connection_type"),
        CheckConstraint(f"status IN {INSTANCE_STATUSES}", name="status"),
    )


class WhatsAppContact(IdMixin, TimestampMixin, Base):
    """A customer's identity on one WhatsApp number: ``wa_id``, profile name, business-scoped id."""

    __tablename__ = "whatsapp_contacts"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    whatsapp_instance_id: Mapped[int] = mapped_column(ForeignKey("whatsapp_instances.id", ondelete="CASCADE"))
    whatsapp_id: Mapped[str] = mapped_column(String(64))
    #: Meta's business-scoped user id (``user_id``), sent alongside or instead of the phone number.
    business_user_id: Mapped[str | None] = mapped_column(String(128))
    profile_name: Mapped[str | None] = mapped_column(String(255))
    profile_picture_url: Mapped[str | None] = mapped_column(Text)
    is_business: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    __table_args__ = (UniqueConstraint("whatsapp_instance_id", "whatsapp_id"),)


class WhatsAppMessage(IdMixin, TimestampMixin, Base):
    """The WhatsApp side of a message: its ``wamid``, media and structured payloads."""

    __tablename__ = "whatsapp_messages"

    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), unique=True)
    whatsapp_instance_id: Mapped[int] = mapped_column(ForeignKey("whatsapp_instances.id", ondelete="CASCADE"))
    whatsapp_message_id: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str | None] = mapped_column(String(16))
    #: Meta's media id (inbound); the download job resolves it to a short-lived URL.
    media_id: Mapped[str | None] = mapped_column(String(64))
    #: The URL the media was downloaded from (short-lived on Meta's side; kept for the record).
    media_url: Mapped[str | None] = mapped_column(Text)
    media_mime_type: Mapped[str | None] = mapped_column(String(255))
    media_sha256: Mapped[str | None] = mapped_column(String(128))
    #: ``pending`` until the media job stored it, then ``stored`` (or ``failed``).
    media_status: Mapped[str | None] = mapped_column(String(16))
    location_data: Mapped[dict[str, object] | None] = mapped_column(JSONB)
    contact_vcard: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("whatsapp_instance_id", "whatsapp_message_id"),
        Index("ix_whatsapp_messages_wamid", "whatsapp_message_id"),
    )


class WhatsAppInboundEvent(Base):
    """A message or status a Cloud API webhook delivered, stored raw before the 200.

    The webhook writes these rows and one processing job in a single transaction (nothing
    accepted is lost); the unique key makes Meta's retries of the same ``wamid`` no-ops. The job
    turns them into contacts, conversations and messages and sets ``processed_at``.
    """

    __tablename__ = "whatsapp_inbound_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    #: ``wamid`` for a message; ``wamid:status`` for a status (each step is its own event).
    event_key: Mapped[str] = mapped_column(String(320))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: What processing did: ``stored``, ``duplicate``, ``applied``, ``ignored: <why>``.
    outcome: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("inbox_id", "kind", "event_key"),
        CheckConstraint(f"kind IN {EVENT_KINDS}", name="kind"),
        Index("ix_whatsapp_inbound_events_pending", "id", postgresql_where=text("processed_at IS NULL")),
    )
