"""Canned responses: a short code an agent types to insert a saved reply."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin


class CannedResponse(IdMixin, TimestampMixin, Base):
    __tablename__ = "canned_responses"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    short_code: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)

    __table_args__ = (UniqueConstraint("account_id", "short_code"),)
