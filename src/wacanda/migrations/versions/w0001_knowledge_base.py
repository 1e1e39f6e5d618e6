"""Wacanda's knowledge base: its schema, its job queue, knowledge bases, documents and chunks.

Revision ID: w0001
Revises:
"""

from __future__ import annotations

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from procrastinate.schema import SchemaManager
from sqlalchemy.dialects import postgresql

from wacanda.knowledge import fulltext

revision = "w0001"
down_revision = None
branch_labels = None
depends_on = None


def _procrastinate_schema() -> None:
    """procrastinate's tables and functions inside the ``wacanda`` schema (ADR 0006): WhatWut's
    workers, which fetch every queue of ``public.procrastinate_jobs``, never see Wacanda's jobs."""
    bind = op.get_bind()
    exists = bind.execute(sa.text("SELECT to_regclass('wacanda.procrastinate_jobs')")).scalar()
    if exists is not None:
        return
    driver = bind.connection.driver_connection
    assert driver is not None
    driver.execute("SET LOCAL search_path = wacanda, public")
    driver.execute(SchemaManager.get_schema())
    # Pin the functions' own lookups to this schema, whatever the caller's search_path.
    driver.execute(
        """
        DO $$
        DECLARE f regprocedure;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                      WHERE n.nspname = 'wacanda' AND p.proname LIKE 'procrastinate%'
            LOOP
                EXECUTE format('ALTER FUNCTION %s SET search_path = wacanda, pg_catalog', f);
            END LOOP;
        END $$
        """
    )
    driver.execute("SET LOCAL search_path = wacanda, public")


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector WITH SCHEMA public")
    op.execute("CREATE SCHEMA IF NOT EXISTS wacanda")
    _procrastinate_schema()
    op.execute(fulltext.OR_TSQUERY_FUNCTION.format(schema="wacanda"))
    op.execute(fulltext.OR_TSQUERY_EXCEPT_FUNCTION.format(schema="wacanda"))
    op.create_table(
        "knowledge_bases",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("embedding_model", sa.String(length=200), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("chunk_size", sa.Integer(), nullable=False),
        sa.Column("chunk_overlap", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_bases")),
        sa.UniqueConstraint("account_id", "name", name=op.f("uq_knowledge_bases_account_id_name")),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_knowledge_bases_account_id"),
        "knowledge_bases",
        ["account_id"],
        unique=False,
        schema="wacanda",
    )
    op.create_table(
        "documents",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("knowledge_base_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.BigInteger(), nullable=False),
        sa.Column("name", sa.String(length=500), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("format", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error_reason", sa.String(length=40), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("chunks_embedded", sa.Integer(), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["wacanda.knowledge_bases.id"],
            name=op.f("fk_documents_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_documents")),
        sa.UniqueConstraint(
            "knowledge_base_id", "name", "version", name=op.f("uq_documents_knowledge_base_id_name_version")
        ),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_documents_knowledge_base_id"),
        "documents",
        ["knowledge_base_id"],
        unique=False,
        schema="wacanda",
    )
    op.create_index(
        "uq_documents_current_name",
        "documents",
        ["knowledge_base_id", "name"],
        unique=True,
        schema="wacanda",
        postgresql_where=sa.text("is_current"),
    )
    op.create_table(
        "language_centroids",
        sa.Column("knowledge_base_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("centroid", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=False),
        sa.Column("chunk_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["wacanda.knowledge_bases.id"],
            name=op.f("fk_language_centroids_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("knowledge_base_id", "language", name=op.f("pk_language_centroids")),
        schema="wacanda",
    )
    op.create_table(
        "lexeme_frequencies",
        sa.Column("knowledge_base_id", sa.BigInteger(), nullable=False),
        sa.Column("lexeme", sa.Text(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["wacanda.knowledge_bases.id"],
            name=op.f("fk_lexeme_frequencies_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("knowledge_base_id", "lexeme", name=op.f("pk_lexeme_frequencies")),
        schema="wacanda",
    )
    op.create_table(
        "document_embeddings",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("document_id", sa.BigInteger(), nullable=False),
        sa.Column("knowledge_base_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk_index", sa.Integer(), nullable=False),
        sa.Column("chunk_text", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("heading_path", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("config", postgresql.REGCONFIG(), nullable=False),
        sa.Column(
            "tsv",
            postgresql.TSVECTOR(),
            sa.Computed(
                "setweight(to_tsvector(config, context), 'A')"
                " || setweight(to_tsvector(config, chunk_text), 'B')"
                " || setweight(to_tsvector('simple', context || ' ' || chunk_text), 'D')",
                persisted=True,
            ),
            nullable=False,
        ),
        sa.Column("embedding", pgvector.sqlalchemy.vector.VECTOR(dim=384), nullable=False),
        sa.Column("token_count", sa.Integer(), nullable=False),
        sa.Column("is_live", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["document_id"],
            ["wacanda.documents.id"],
            name=op.f("fk_document_embeddings_document_id_documents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["knowledge_base_id"],
            ["wacanda.knowledge_bases.id"],
            name=op.f("fk_document_embeddings_knowledge_base_id_knowledge_bases"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_document_embeddings")),
        sa.UniqueConstraint(
            "document_id", "chunk_index", name=op.f("uq_document_embeddings_document_id_chunk_index")
        ),
        schema="wacanda",
    )
    op.create_index(
        op.f("ix_document_embeddings_document_id"),
        "document_embeddings",
        ["document_id"],
        unique=False,
        schema="wacanda",
    )
    op.create_index(
        "ix_document_embeddings_embedding_hnsw",
        "document_embeddings",
        ["embedding"],
        unique=False,
        schema="wacanda",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_where=sa.text("is_live"),
    )
    op.create_index(
        "ix_document_embeddings_kb_live",
        "document_embeddings",
        ["knowledge_base_id"],
        unique=False,
        schema="wacanda",
        postgresql_where=sa.text("is_live"),
    )
    op.create_index(
        "ix_document_embeddings_tsv",
        "document_embeddings",
        ["tsv"],
        unique=False,
        schema="wacanda",
        postgresql_using="gin",
        postgresql_where=sa.text("is_live"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_document_embeddings_tsv",
        table_name="document_embeddings",
        schema="wacanda",
        postgresql_using="gin",
        postgresql_where=sa.text("is_live"),
    )
    op.drop_index(
        "ix_document_embeddings_kb_live",
        table_name="document_embeddings",
        schema="wacanda",
        postgresql_where=sa.text("is_live"),
    )
    op.drop_index(
        "ix_document_embeddings_embedding_hnsw",
        table_name="document_embeddings",
        schema="wacanda",
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
        postgresql_where=sa.text("is_live"),
    )
    op.drop_index(
        op.f("ix_document_embeddings_document_id"), table_name="document_embeddings", schema="wacanda"
    )
    op.drop_table("document_embeddings", schema="wacanda")
    op.drop_table("lexeme_frequencies", schema="wacanda")
    op.drop_table("language_centroids", schema="wacanda")
    op.drop_index(
        "uq_documents_current_name",
        table_name="documents",
        schema="wacanda",
        postgresql_where=sa.text("is_current"),
    )
    op.drop_index(op.f("ix_documents_knowledge_base_id"), table_name="documents", schema="wacanda")
    op.drop_table("documents", schema="wacanda")
    op.drop_index(op.f("ix_knowledge_bases_account_id"), table_name="knowledge_bases", schema="wacanda")
    op.drop_table("knowledge_bases", schema="wacanda")
    op.execute("DROP SCHEMA wacanda CASCADE")
