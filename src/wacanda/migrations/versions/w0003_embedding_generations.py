"""Per-knowledge-base embedding models of any dimension, and re-embedding into a new generation.

``document_embeddings.embedding`` becomes an untyped ``vector`` with its dimension in ``dims``;
each dimension in use gets its own partial HNSW index over ``embedding::vector(N)`` (ADR 0009).
A chunk's vectors of a re-embedding are rows of the next ``generation``, not live until the
knowledge base switches to it.

Revision ID: w0003
Revises: w0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "w0003"
down_revision = "w0002"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.execute("DROP INDEX IF EXISTS wacanda.ix_document_embeddings_embedding_hnsw")
    op.execute("ALTER TABLE wacanda.document_embeddings ALTER COLUMN embedding TYPE vector")
    op.execute(
        "ALTER TABLE wacanda.document_embeddings"
        " ADD COLUMN dims integer GENERATED ALWAYS AS (vector_dims(embedding)) STORED NOT NULL"
    )
    op.add_column(
        "document_embeddings",
        sa.Column("generation", sa.BigInteger(), server_default="0", nullable=False),
        schema="wacanda",
    )
    op.drop_constraint(
        "uq_document_embeddings_document_id_chunk_index", "document_embeddings", schema="wacanda"
    )
    op.create_unique_constraint(
        "uq_document_embeddings_document_id_chunk_index_generation",
        "document_embeddings",
        ["document_id", "chunk_index", "generation"],
        schema="wacanda",
    )
    op.execute(
        "CREATE INDEX ix_document_embeddings_hnsw_384 ON wacanda.document_embeddings"
        " USING hnsw ((embedding::vector(384)) vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        " WHERE is_live AND dims = 384"
    )
    op.execute("ALTER TABLE wacanda.language_centroids ALTER COLUMN centroid TYPE vector")
    op.add_column(
        "knowledge_bases",
        sa.Column("embedding_generation", sa.BigInteger(), server_default="0", nullable=False),
        schema="wacanda",
    )
    op.create_table(
        "reembeddings",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("knowledge_base_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("from_model", sa.String(length=200), nullable=False),
        sa.Column("from_dim", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("dimension", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chunks_total", sa.Integer(), nullable=False),
        sa.Column("chunks_done", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=NOW, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["wacanda.knowledge_bases.id"],
            name=op.f("fk_reembeddings_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reembeddings")),
        schema="wacanda",
    )
    op.create_index(
        "ix_reembeddings_knowledge_base_id", "reembeddings", ["knowledge_base_id"], schema="wacanda"
    )
    op.create_index(
        "uq_reembeddings_running",
        "reembeddings",
        ["knowledge_base_id"],
        unique=True,
        schema="wacanda",
        postgresql_where=sa.text("status = 'running'"),
    )


def downgrade() -> None:
    # Only 384-dimension vectors fit the previous schema; others are removed with their generation.
    op.drop_index("uq_reembeddings_running", table_name="reembeddings", schema="wacanda")
    op.drop_index("ix_reembeddings_knowledge_base_id", table_name="reembeddings", schema="wacanda")
    op.drop_table("reembeddings", schema="wacanda")
    op.drop_column("knowledge_bases", "embedding_generation", schema="wacanda")
    op.execute("DELETE FROM wacanda.language_centroids WHERE vector_dims(centroid) <> 384")
    op.execute("ALTER TABLE wacanda.language_centroids ALTER COLUMN centroid TYPE vector(384)")
    op.execute(
        "DO $$ DECLARE i text; BEGIN FOR i IN SELECT indexname FROM pg_indexes WHERE schemaname = 'wacanda'"
        " AND indexname LIKE 'ix_document_embeddings_hnsw_%' LOOP EXECUTE format('DROP INDEX wacanda.%I', i);"
        " END LOOP; END $$"
    )
    op.execute(
        "DELETE FROM wacanda.document_embeddings WHERE dims <> 384 OR (NOT is_live AND generation <> 0)"
    )
    op.drop_constraint(
        "uq_document_embeddings_document_id_chunk_index_generation", "document_embeddings", schema="wacanda"
    )
    op.create_unique_constraint(
        "uq_document_embeddings_document_id_chunk_index",
        "document_embeddings",
        ["document_id", "chunk_index"],
        schema="wacanda",
    )
    op.drop_column("document_embeddings", "generation", schema="wacanda")
    op.drop_column("document_embeddings", "dims", schema="wacanda")
    op.execute("ALTER TABLE wacanda.document_embeddings ALTER COLUMN embedding TYPE vector(384)")
    op.execute(
        "CREATE INDEX ix_document_embeddings_embedding_hnsw ON wacanda.document_embeddings"
        " USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64) WHERE is_live"
    )
