"""Wacanda's answering records: chat sessions, messages, RAG contexts, agent configurations.

Revision ID: w0002
Revises: w0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "w0002"
down_revision = "w0001"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "chat_sessions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("memory", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_sessions")),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_chat_sessions_account_id"), "chat_sessions", ["account_id"], unique=False, schema="wacanda"
    )
    op.create_index(
        "uq_chat_sessions_account_external",
        "chat_sessions",
        ["account_id", "external_id"],
        unique=True,
        schema="wacanda",
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("session_id", sa.BigInteger(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("tokens_used", sa.Integer(), nullable=False),
        sa.Column("model_used", sa.String(length=200), nullable=True),
        sa.Column("confidence_score", sa.Float(), nullable=True),
        sa.Column("sentiment", sa.Float(), nullable=True),
        sa.Column("handoff_needed", sa.Boolean(), nullable=False),
        sa.Column("handoff_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.CheckConstraint("role IN ('user', 'assistant')", name=op.f("ck_chat_messages_role")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["wacanda.chat_sessions.id"],
            name=op.f("fk_chat_messages_session_id_chat_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_chat_messages_session_id"), "chat_messages", ["session_id"], unique=False, schema="wacanda"
    )
    op.create_table(
        "rag_contexts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("source_documents", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("similarity_scores", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("context_used", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["wacanda.chat_messages.id"],
            name=op.f("fk_rag_contexts_message_id_chat_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rag_contexts")),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_rag_contexts_message_id"), "rag_contexts", ["message_id"], unique=False, schema="wacanda"
    )
    op.create_table(
        "agent_configs",
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_agent_configs")),
        schema="wacanda",
    )


def downgrade() -> None:
    op.drop_table("agent_configs", schema="wacanda")
    op.drop_table("rag_contexts", schema="wacanda")
    op.drop_table("chat_messages", schema="wacanda")
    op.drop_table("chat_sessions", schema="wacanda")
