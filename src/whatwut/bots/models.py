"""AI agents (bots) of an account, the inboxes they answer, and the spans of conversations they handle.

Modelled on Chatwoot's ``AgentBot`` / ``AgentBotInbox``: a bot is reached by signed outbound
webhooks and acts through the Agent API with its own credential; it handles a conversation until
it hands off or a human takes over (an ``agent_conversations`` row per such span).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
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

AGENT_TYPES = ("wacanda", "webhook")
AGENT_STATUSES = ("active", "disabled")
DELIVERY_STATUSES = ("pending", "delivered", "failed")


class AiAgent(IdMixin, TimestampMixin, Base):
    __tablename__ = "ai_agents"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32), default="wacanda")
    #: Non-secret settings: ``webhook_url``, ``description``.
    configuration: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")
    #: ``{"webhook_secret"}`` sealed with the app's secret box (never stored in clear).
    secrets_encrypted: Mapped[str] = mapped_column(Text)
    #: The bot's API key, stored as a SHA-256 hash; exchanged at ``POST /api/agents/auth``.
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    api_key_prefix: Mapped[str] = mapped_column(String(16))
    #: The bot's author identity (a ``users`` row with ``is_bot``, not a member of the account).
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    performance_metrics: Mapped[dict[str, object]] = mapped_column(JSONB, default=dict, server_default="{}")

    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        CheckConstraint(f"type IN {AGENT_TYPES}", name="type"),
        CheckConstraint(f"status IN {AGENT_STATUSES}", name="status"),
        Index("ix_ai_agents_user", "user_id"),
    )


class AiAgentInbox(TimestampMixin, Base):
    """The bot that answers an inbox first (at most one per inbox, as Chatwoot's AgentBotInbox)."""

    __tablename__ = "ai_agent_inboxes"

    inbox_id: Mapped[int] = mapped_column(ForeignKey("inboxes.id", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    ai_agent_id: Mapped[int] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"), index=True)


class AgentConversation(IdMixin, Base):
    """One span during which a bot handled a conversation; ended by a handoff or a takeover."""

    __tablename__ = "agent_conversations"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"), index=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    handoff_reason: Mapped[str | None] = mapped_column(String(255))
    satisfaction_score: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index(
            "uq_agent_conversations_open",
            "conversation_id",
            unique=True,
            postgresql_where=text("ended_at IS NULL"),
        ),
    )


class AiAgentDelivery(IdMixin, TimestampMixin, Base):
    """One outbound webhook to a bot: its event id, attempts and outcome (failures stay visible)."""

    __tablename__ = "ai_agent_deliveries"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    agent_id: Mapped[int] = mapped_column(ForeignKey("ai_agents.id", ondelete="CASCADE"))
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    response_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint(f"status IN {DELIVERY_STATUSES}", name="status"),
        Index("ix_ai_agent_deliveries_agent", "agent_id", text("id DESC")),
    )
