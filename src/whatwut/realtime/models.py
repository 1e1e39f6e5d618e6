"""The event log behind SSE: NOTIFY carries the id, the row carries the payload.

Keeping events as rows lets a browser reconnecting with ``Last-Event-ID`` replay what it
missed, and keeps NOTIFY payloads far below PostgreSQL's 8,000-byte limit.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin


class Event(IdMixin, TimestampMixin, Base):
    __tablename__ = "events"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    #: Who may see it: ``None`` for every member, else the inbox it belongs to.
    inbox_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_events_account_id_id", "account_id", "id"),)
