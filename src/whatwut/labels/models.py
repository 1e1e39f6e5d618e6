"""Labels an account defines and puts on conversations."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin


class Label(IdMixin, TimestampMixin, Base):
    __tablename__ = "labels"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(Text, default="")
    color: Mapped[str] = mapped_column(String(16), default="#1f93ff")

    __table_args__ = (UniqueConstraint("account_id", "title"),)
