"""Knowledge bases and documents: upload, versioning, ingestion, listing and deletion.

Services flush and never commit: the caller (a request, a job, a CLI command) owns the
transaction. Ingestion spans several transactions on purpose (progress is visible while a
document is embedded); the last one swaps the old version's chunks for the new ones at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

import numpy as np
import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wacanda.db import transaction
from wacanda.errors import InvalidInput, NotFound
from wacanda.knowledge.chunking import Chunk, ChunkingOptions, chunk_document
from wacanda.knowledge.embeddings import Embedder
from wacanda.knowledge.language import detect_language, text_search_config
from wacanda.knowledge.models import EMBEDDING_DIM, Document, DocumentEmbedding, KnowledgeBase
from wacanda.knowledge.parsing import (
    DEFAULT_LIMITS,
    DocumentError,
    ParsedDocument,
    detect_format,
    parse_document,
)

log = structlog.get_logger(__name__)

DEFAULT_KNOWLEDGE_BASE = "default"
EVENTS_CHANNEL = "wacanda_documents"
EMBED_BATCH = 16
MIN_CENTROID_CHUNKS = 8
MAX_TAGS = 20
ProgressCallback = Callable[[int, int], None]


# --- Knowledge bases ---------------------------------------------------------------------------


def clean_kb_name(name: str | None) -> str:
    name = (name or DEFAULT_KNOWLEDGE_BASE).strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise InvalidInput("a knowledge base name is 1 to 200 printable characters", field="knowledge_base")
    return name


async def get_or_create_kb(
    session: AsyncSession, account_id: int, name: str | None, embedder: Embedder
) -> KnowledgeBase:
    """The account's knowledge base of that name, created with the current defaults when new."""
    name = clean_kb_name(name)
    if embedder.dimension != EMBEDDING_DIM:
        raise InvalidInput(
            f"the embedding model {embedder.model_name} has {embedder.dimension} dimensions;"
            f" this index stores {EMBEDDING_DIM}",
            field="knowledge_base",
        )
    options = ChunkingOptions()
    await session.execute(
        insert(KnowledgeBase)
        .values(
            account_id=account_id,
            name=name,
            embedding_model=embedder.model_name,
            embedding_dim=embedder.dimension,
            chunk_size=options.max_tokens,
            chunk_overlap=options.overlap_tokens,
        )
        .on_conflict_do_nothing(index_elements=["account_id", "name"])
    )
    kb = await find_kb(session, account_id, name)
    return kb


async def find_kb(session: AsyncSession, account_id: int, name: str, *, lock: bool = False) -> KnowledgeBase:
    query = select(KnowledgeBase).where(KnowledgeBase.account_id == account_id, KnowledgeBase.name == name)
    if lock:
        query = query.with_for_update()
    kb = (await session.execute(query)).scalar_one_or_none()
    if kb is None:
        raise NotFound(f"knowledge base {name!r} not found", field="knowledge_base")
    return kb


async def list_kbs(session: AsyncSession, account_id: int) -> list[tuple[KnowledgeBase, int]]:
    """The account's knowledge bases, each with its number of current documents."""
    count = (
        select(func.count())
        .where(Document.knowledge_base_id == KnowledgeBase.id, Document.is_current)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(KnowledgeBase, count)
        .where(KnowledgeBase.account_id == account_id)
        .order_by(KnowledgeBase.name)
    )
    return [(kb, int(n)) for kb, n in rows.all()]


# --- Uploads -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    document: Document
    unchanged: bool  # same content as the latest version: nothing to embed again


def clean_document_name(name: str | None) -> str:
    """The file name as uploaded, without any directory a browser or client sent along."""
    raw = (name or "").strip()
    base = PureWindowsPath(PurePosixPath(raw).name).name.strip()
    if not base or len(base) > 500 or not base.isprintable():
        raise InvalidInput("the file needs a name of 1 to 500 printable characters", field="file")
    return base


def clean_tags(tags: Sequence[str] | None) -> list[str]:
    cleaned = sorted({tag.strip() for tag in tags or [] if tag.strip()})
    if len(cleaned) > MAX_TAGS or any(len(tag) > 100 for tag in cleaned):
        raise InvalidInput(f"at most {MAX_TAGS} tags of up to 100 characters", field="tags")
    return cleaned


def check_file(name: str, data: bytes, max_bytes: int = DEFAULT_LIMITS.max_bytes) -> None:
    """Reject at once what can never become a document (empty, too large, unsupported, binary);
    what needs parsing to tell (corrupt, encrypted, no text) ends in the ``error`` status instead."""
    if len(data) > max_bytes:
        raise InvalidInput(
            f"{name}: the file is {len(data):,} bytes; the limit is {max_bytes:,}",
            field="file",
            reason="too_large",
        )
    if not data.strip():
        raise InvalidInput(f"{name}: the file is empty", field="file", reason="empty")
    try:
        detect_format(data, name)
    except DocumentError as exc:
        raise InvalidInput(f"{name}: {exc.message}", field="file", reason=exc.reason) from None


async def register_upload(
    session: AsyncSession, kb: KnowledgeBase, name: str, data: bytes, tags: Sequence[str] | None = None
) -> Upload:
    """Record an upload as the next version of ``name`` (status ``processing``), or recognise it as
    unchanged. The caller queues ``process_document`` (or runs it) after this commits."""
    name = clean_document_name(name)
    tags_list = clean_tags(tags)
    check_file(name, data)
    await session.execute(select(KnowledgeBase.id).where(KnowledgeBase.id == kb.id).with_for_update())
    digest = hashlib.sha256(data).hexdigest()
    latest = (
        await session.execute(
            select(Document)
            .where(Document.knowledge_base_id == kb.id, Document.name == name, Document.deleted_at.is_(None))
            .order_by(Document.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    if latest is not None and latest.content_hash == digest and latest.status in ("processing", "ready"):
        if tags is not None and tags_list != sorted(latest.tags):
            latest.tags = tags_list
        return Upload(latest, unchanged=True)
    last_version = await session.scalar(
        select(func.coalesce(func.max(Document.version), 0)).where(
            Document.knowledge_base_id == kb.id, Document.name == name
        )
    )
    document = Document(
        knowledge_base_id=kb.id,
        account_id=kb.account_id,
        name=name,
        status="processing",
        content_hash=digest,
        version=int(last_version or 0) + 1,
        is_current=False,
        chunk_count=0,
        chunks_embedded=0,
        tags=tags_list if tags is not None else list(latest.tags if latest else []),
        size=len(data),
        content=data,
    )
    session.add(document)
    await session.flush()
    await notify(session, document)
    return Upload(document, unchanged=False)


# --- Ingestion ---------------------------------------------------------------------------------


async def notify(session: AsyncSession, document: Document, **extra: Any) -> None:
    """A progress event, delivered to listeners when the transaction commits."""
    payload = {
        "type": "document.progress" if document.status == "processing" else f"document.{document.status}",
        "document_id": document.id,
        "account_id": document.account_id,
        "knowledge_base_id": document.knowledge_base_id,
        "name": document.name,
        "version": document.version,
        "status": document.status,
        "chunks_embedded": document.chunks_embedded,
        "chunk_count": document.chunk_count,
        "error_reason": document.error_reason,
        **extra,
    }
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": EVENTS_CHANNEL, "p": json.dumps(payload)})


async def _load_for_processing(session: AsyncSession, document_id: int) -> Document | None:
    document = await session.get(Document, document_id, with_for_update=True)
    if document is None or document.deleted_at is not None or document.status != "processing":
        return None
    return document


async def process_document(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    document_id: int,
    on_progress: ProgressCallback | None = None,
) -> Document | None:
    """Parse, chunk and embed one document version, then make it the live one.

    Idempotent (a retry starts over); any failure lands in ``error`` with a reason, never a
    ``processing`` that stays.
    """
    try:
        return await _process(sessionmaker, embedder, document_id, on_progress)
    except Exception as exc:
        log.exception("wacanda.ingest_failed", document_id=document_id)
        return await _fail(sessionmaker, document_id, "internal", f"processing failed: {type(exc).__name__}")


async def _fail(
    sessionmaker: async_sessionmaker[AsyncSession], document_id: int, reason: str, message: str
) -> Document | None:
    async with transaction(sessionmaker) as session:
        document = await session.get(Document, document_id, with_for_update=True)
        if document is None or document.status != "processing":
            return document
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
        document.status, document.error_reason, document.error_message = "error", reason, message
        document.processed_at = datetime.now(UTC)
        await session.flush()
        await notify(session, document)
        return document


async def _process(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    document_id: int,
    on_progress: ProgressCallback | None,
) -> Document | None:
    async with transaction(sessionmaker) as session:
        document = await _load_for_processing(session, document_id)
        if document is None:
            return await session.get(Document, document_id)
        kb = await session.get(KnowledgeBase, document.knowledge_base_id)
        assert kb is not None
        data = await session.scalar(select(Document.content).where(Document.id == document_id))
        name, options = document.name, ChunkingOptions(kb.chunk_size, kb.chunk_overlap)
    try:
        parsed, chunks = await asyncio.to_thread(_parse_and_chunk, data or b"", name, embedder, options)
    except DocumentError as exc:
        return await _fail(sessionmaker, document_id, exc.reason, exc.message)
    if not chunks:
        return await _fail(sessionmaker, document_id, "no_text", "no text could be extracted")
    language = detect_language(parsed.text) or ""
    config = text_search_config(language or None)

    async with transaction(sessionmaker) as session:
        document = await _load_for_processing(session, document_id)
        if document is None:
            return await session.get(Document, document_id)
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
        document.title, document.format, document.language = (
            parsed.title,
            parsed.format.value,
            language or None,
        )
        document.chunk_count, document.chunks_embedded = len(chunks), 0
        await session.flush()
        await notify(session, document)
    if on_progress:
        on_progress(0, len(chunks))

    for first in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[first : first + EMBED_BATCH]
        vectors = await asyncio.to_thread(embedder.embed_passages, [c.embedding_text() for c in batch])
        async with transaction(sessionmaker) as session:
            document = await _load_for_processing(session, document_id)
            if document is None:  # deleted (or failed) meanwhile: stop embedding
                await session.execute(
                    delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id)
                )
                return await session.get(Document, document_id)
            await session.execute(
                insert(DocumentEmbedding),
                [
                    _chunk_row(document, chunk, vector, language, config)
                    for chunk, vector in zip(batch, vectors, strict=True)
                ],
            )
            document.chunks_embedded = first + len(batch)
            await session.flush()
            await notify(session, document)
        if on_progress:
            on_progress(first + len(batch), len(chunks))

    async with transaction(sessionmaker) as session:
        return await _go_live(session, document_id)


def _parse_and_chunk(
    data: bytes, name: str, embedder: Embedder, options: ChunkingOptions
) -> tuple[ParsedDocument, list[Chunk]]:
    parsed = parse_document(data, name)
    return parsed, chunk_document(parsed, embedder.count_tokens, options)


def _chunk_row(document: Document, chunk: Chunk, vector: Any, language: str, config: str) -> dict[str, Any]:
    return {
        "document_id": document.id,
        "knowledge_base_id": document.knowledge_base_id,
        "chunk_index": chunk.index,
        "chunk_text": chunk.text,
        "title": chunk.document_title,
        "heading_path": list(chunk.heading_path),
        "context": " > ".join(chunk.context_path),
        "language": language,
        "config": config,
        "embedding": np.asarray(vector, dtype=np.float32),
        "token_count": chunk.token_count,
        "is_live": False,
    }


async def _go_live(session: AsyncSession, document_id: int) -> Document | None:
    """In one transaction: retire the current version's chunks and make this version's live."""
    document = await session.get(Document, document_id)
    if document is None:
        return None
    await session.execute(
        select(KnowledgeBase.id).where(KnowledgeBase.id == document.knowledge_base_id).with_for_update()
    )
    document = await _load_for_processing(session, document_id)
    if document is None:
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
        return await session.get(Document, document_id)
    current = (
        await session.execute(
            select(Document).where(
                Document.knowledge_base_id == document.knowledge_base_id,
                Document.name == document.name,
                Document.is_current,
            )
        )
    ).scalar_one_or_none()
    document.status, document.processed_at = "ready", datetime.now(UTC)
    if current is not None and current.version > document.version:
        # A newer upload went live first: this version is history, never served.
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
    else:
        if current is not None:
            await session.execute(
                delete(DocumentEmbedding).where(DocumentEmbedding.document_id == current.id)
            )
            current.is_current = False
            await session.flush()
        await session.execute(
            update(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id).values(is_live=True)
        )
        document.is_current = True
    await session.flush()
    await refresh_centroids(session, document.knowledge_base_id)
    await notify(session, document)
    return document


async def refresh_centroids(session: AsyncSession, knowledge_base_id: int) -> None:
    """Per-language mean vectors of the live chunks (``*`` = all of them), for language debiasing,
    and the lexeme frequencies full-text matching uses.

    A language with only a few chunks gets no centroid of its own (its chunks are centred on
    ``*``): the mean of one chunk is that chunk, and subtracting it would cancel its score.
    """
    await session.execute(
        text("DELETE FROM wacanda.language_centroids WHERE knowledge_base_id = :kb;"),
        {"kb": knowledge_base_id},
    )
    await session.execute(
        text(
            """
            INSERT INTO wacanda.language_centroids (knowledge_base_id, language, centroid, chunk_count)
            SELECT :kb, language, avg(embedding), count(*) FROM wacanda.document_embeddings
             WHERE knowledge_base_id = :kb AND is_live AND language <> '' GROUP BY language
            HAVING count(*) >= :minimum
            UNION ALL
            SELECT :kb, '*', avg(embedding), count(*) FROM wacanda.document_embeddings
             WHERE knowledge_base_id = :kb AND is_live HAVING count(*) > 0
            """
        ),
        {"kb": knowledge_base_id, "minimum": MIN_CENTROID_CHUNKS},
    )
    await refresh_lexeme_frequencies(session, knowledge_base_id)


async def refresh_lexeme_frequencies(session: AsyncSession, knowledge_base_id: int) -> None:
    """How many live chunks hold each lexeme (``ts_stat``), for full-text matching (ADR 0007)."""
    await session.execute(
        text("DELETE FROM wacanda.lexeme_frequencies WHERE knowledge_base_id = :kb"),
        {"kb": knowledge_base_id},
    )
    chunks = (  # ts_stat takes a query as text; the id is an int
        f"SELECT tsv FROM wacanda.document_embeddings WHERE knowledge_base_id = {int(knowledge_base_id)}"  # noqa: S608
        " AND is_live"
    )
    await session.execute(
        text(
            "INSERT INTO wacanda.lexeme_frequencies (knowledge_base_id, lexeme, chunks)"
            " SELECT :kb, word, ndoc FROM ts_stat(:chunks)"
        ),
        {"kb": knowledge_base_id, "chunks": chunks},
    )


async def stale_processing(session: AsyncSession) -> list[int]:
    """Documents still ``processing`` with no job left to finish them (a worker died mid-way)."""
    rows = await session.execute(
        text(
            """
            SELECT d.id FROM wacanda.documents d
             WHERE d.status = 'processing' AND d.deleted_at IS NULL
               AND NOT EXISTS (
                   SELECT 1 FROM wacanda.procrastinate_jobs j
                    WHERE j.status IN ('todo', 'doing') AND (j.args->>'document_id')::bigint = d.id)
            """
        )
    )
    return [int(row[0]) for row in rows]


# --- Reading and deleting ----------------------------------------------------------------------


async def get_document(session: AsyncSession, account_id: int, document_id: int) -> Document:
    document = await session.get(Document, document_id)
    if document is None or document.account_id != account_id:
        raise NotFound("document not found", field="document_id")
    return document


async def list_documents(
    session: AsyncSession,
    account_id: int,
    *,
    kb_name: str | None,
    before_id: int | None,
    limit: int,
) -> list[Document]:
    """The latest version of every document not deleted, newest first."""
    latest = (
        select(func.max(Document.id))
        .where(Document.account_id == account_id, Document.deleted_at.is_(None))
        .group_by(Document.knowledge_base_id, Document.name)
    )
    query = select(Document).where(Document.id.in_(latest))
    if kb_name is not None:
        kb = await find_kb(session, account_id, clean_kb_name(kb_name))
        query = query.where(Document.knowledge_base_id == kb.id)
    if before_id is not None:
        query = query.where(Document.id < before_id)
    rows = await session.execute(query.order_by(Document.id.desc()).limit(limit))
    return list(rows.scalars())


async def document_versions(session: AsyncSession, account_id: int, document_id: int) -> list[Document]:
    document = await get_document(session, account_id, document_id)
    rows = await session.execute(
        select(Document)
        .where(Document.knowledge_base_id == document.knowledge_base_id, Document.name == document.name)
        .order_by(Document.version.desc())
    )
    return list(rows.scalars())


async def delete_document(session: AsyncSession, account_id: int, document_id: int) -> Document:
    """Remove a document (every version of its name) from search at once; the rows stay as history."""
    document = await get_document(session, account_id, document_id)
    await session.execute(
        select(KnowledgeBase.id).where(KnowledgeBase.id == document.knowledge_base_id).with_for_update()
    )
    versions = (
        (
            await session.execute(
                select(Document.id).where(
                    Document.knowledge_base_id == document.knowledge_base_id,
                    Document.name == document.name,
                    Document.deleted_at.is_(None),
                )
            )
        )
        .scalars()
        .all()
    )
    if not versions:
        raise NotFound("document not found", field="document_id")
    now = datetime.now(UTC)
    await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id.in_(versions)))
    await session.execute(
        update(Document)
        .where(Document.id.in_(versions))
        .values(deleted_at=now, is_current=False, content=None)
    )
    await session.execute(
        update(Document)
        .where(Document.id.in_(versions), Document.status == "processing")
        .values(status="error", error_reason="deleted", error_message="deleted before processing finished")
    )
    await refresh_centroids(session, document.knowledge_base_id)
    await session.flush()
    await session.refresh(document)
    await notify(session, document, type="document.deleted")
    return document
