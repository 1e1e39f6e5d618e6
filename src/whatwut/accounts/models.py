"""Accounts, the people in them, and the credentials they sign in with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from whatwut.db.base import Base, IdMixin, TimestampMixin

ROLES = ("administrator", "agent")
AVAILABILITY = ("online", "busy", "offline")


class Account(IdMixin, TimestampMixin, Base):
    __tablename__ = "accounts"

    name: Mapped[str] = mapped_column(String(255), unique=True)
    locale: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    settings: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")


class User(IdMixin, TimestampMixin, Base):
    __tablename__ = "users"

    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")

    __table_args__ = (Index("uq_users_email_lower", func.lower(email), unique=True),)


class AccountUser(IdMixin, TimestampMixin, Base):
    """Membership of a user in an account, with the role and live presence there."""

    __tablename__ = "account_users"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16), default="agent")
    availability: Mapped[str] = mapped_column(String(16), default="offline", server_default="offline")
    availability_changed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("account_id", "user_id"),
        CheckConstraint(f"role IN {ROLES}", name="role"),
        CheckConstraint(f"availability IN {AVAILABILITY}", name="availability"),
    )


class AccessToken(IdMixin, TimestampMixin, Base):
    """A bearer credential, stored only as a hash.

    ``kind`` is ``session`` (issued by login), ``personal`` (a user's personal access token)
    or ``api_key`` (an account-level key acting as its bot user).
    """

    __tablename__ = "access_tokens"

    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    scopes: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    created_by_id: Mapped[int | None] = mapped_column(BigInteger)

    __table_args__ = (CheckConstraint("kind IN ('session', 'personal', 'api_key')", name="kind"),)
