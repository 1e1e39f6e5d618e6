"""Sentence vectors stored at ingestion, so an answer reads them instead of embedding them.

Keyed by the answerer's embedding model and the SHA-256 of the exact text it embeds (a passage's
last two headings, a newline, one of its sentences); shared by every knowledge base and account
(the same text has the same vector). The vector is untyped like ``document_embeddings`` (ADR 0009).

Revision ID: w0004
Revises: w0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from pgvector.sqlalchemy import Vector

revision = "w0004"
down_revision = "w0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sentence_vectors",
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(), nullable=False),
        sa.Column("embedding", Vector(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("model", "text_hash", name=op.f("pk_sentence_vectors")),
        schema="wacanda",
    )


def downgrade() -> None:
    op.drop_table("sentence_vectors", schema="wacanda")
