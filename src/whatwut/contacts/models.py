"""Contacts: the customers, and their identity on each channel."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Computed, DateTime, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255), default="")
    phone_number: Mapped[str | None] = mapped_column(String(32))
    email: Mapped[str | None] = mapped_column(String(320))
    identifier: Mapped[str | None] = mapped_column(String(255))
    custom_attributes: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")
    last_activity_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    search_tsv: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            "to_tsvector('simple', coalesce(name, '') || ' ' || coalesce(email, '') || ' ' "
            "|| coalesce(phone_number, '') || ' ' || coalesce(identifier, ''))",
            persisted=True,
        ),
    )

    __table_args__ = (
        Index("ix_contacts_account_id_id", "account_id", "id"),
        Index(
            "uq_contacts_account_phone",
            "account_id",
            "phone_number",
            unique=True,
            postgresql_where=text("phone_number IS NOT NULL"),
        ),
        Index(
            "uq_contacts_account_email",
            "account_id",
            text("lower(email)"),
            unique=True,
            postgresql_where=text("email IS NOT NULL"),
        ),
        Index("ix_contacts_search_tsv", "search_tsv", postgresql_using="gin"),
        # The two list orders (see ``contacts.service.list_contacts``), keyset-paginated.
        Index(
            "ix_contacts_account_activity",
            "account_id",
            text("coalesce(last_activity_at, created_at) DESC"),
            text("id DESC"),
        ),
        Index("ix_contacts_account_name", "account_id", text("lower(name)"), "id"),
    )


class ContactInbox(IdMixin, TimestampMixin, Base):
    """The contact's id on one inbox's channel (for WhatsApp, the ``wa_id``)."""

    __tablename__ = "contact_inboxes"

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"), index=True)
    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"))
    source_id: Mapped[str] = mapped_column(String(255))
    account_id: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (UniqueConstraint("inbox_id", "source_id"),)
