"""Knowledge bases and documents: upload, versioning, ingestion, listing and deletion.

Services flush and never commit: the caller (a request, a job, a CLI command) owns the
transaction. Ingestion spans several transactions on purpose (progress is visible while a
document is embedded); the last one swaps the old version's chunks for the new ones at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, TypeVar

import numpy as np
import structlog
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from wacanda.answering import latent_store, sentence_store
from wacanda.db import transaction
from wacanda.errors import Conflict, InvalidInput, NotFound, UpstreamUnavailable
from wacanda.knowledge.chunking import Chunk, ChunkingOptions, chunk_document
from wacanda.knowledge.embeddings import (
    Embedder,
    LatentTerms,
    LatentTermsEncoder,
    UnknownModel,
    embedder_for_model,
    get_catalog,
)
from wacanda.knowledge.language import detect_language, text_search_config
from wacanda.knowledge.models import (
    MAX_INDEXED_DIM,
    Document,
    DocumentEmbedding,
    KnowledgeBase,
    Reembedding,
    hnsw_index_name,
    hnsw_index_sql,
)
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
REEMBED_BATCH = 32
INDEX_LOCK_KEY = 0x57AC  # advisory lock (key, 0): creating a per-dimension vector index
REEMBED_LOCK_KEY = 0x57AD  # advisory lock (key, reembedding id): held by whoever runs it
MAX_GENERATION_RETRIES = 3
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
    existing = (
        await session.execute(
            select(KnowledgeBase).where(KnowledgeBase.account_id == account_id, KnowledgeBase.name == name)
        )
    ).scalar_one_or_none()
    if existing is not None:
        return existing
    dims = check_dimension(embedder.model_name, embedder.dimension)
    await ensure_vector_index(session, dims)
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


def check_dimension(model: str, dims: int) -> int:
    if not 1 <= dims <= MAX_INDEXED_DIM:
        raise InvalidInput(
            f"the embedding model {model} has {dims} dimensions; the vector index takes 1 to"
            f" {MAX_INDEXED_DIM}",
            field="model",
        )
    return dims


async def ensure_vector_index(session: AsyncSession, dims: int) -> None:
    """The partial HNSW index of one dimension, made the first time a knowledge base uses it.

    It covers only live chunks of that dimension, so it is built empty, at once; the advisory
    lock keeps two transactions from racing to create it."""
    name = f"wacanda.{hnsw_index_name(dims)}"
    if await session.scalar(text("SELECT to_regclass(:name)"), {"name": name}) is not None:
        return
    await session.execute(text("SELECT pg_advisory_xact_lock(:key, 0)"), {"key": INDEX_LOCK_KEY})
    await session.execute(text(hnsw_index_sql(dims)))


async def get_kb(session: AsyncSession, account_id: int, kb_id: int, *, lock: bool = False) -> KnowledgeBase:
    query = select(KnowledgeBase).where(KnowledgeBase.id == kb_id)
    if lock:
        query = query.with_for_update()
    kb = (await session.execute(query)).scalar_one_or_none()
    if kb is None or kb.account_id != account_id:
        raise NotFound("knowledge base not found", field="knowledge_base_id")
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


OnLive = Callable[[AsyncSession, Document], Awaitable[None]]


async def process_document(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    document_id: int,
    on_progress: ProgressCallback | None = None,
    *,
    on_live: OnLive | None = None,
) -> Document | None:
    """Parse, chunk and embed one document version, then make it the live one.

    Idempotent (a retry starts over); any failure lands in ``error`` with a reason, never a
    ``processing`` that stays. ``on_live`` runs in the transaction that makes the version live
    (a job queued there exists if and only if the version went live).
    """
    try:
        for _attempt in range(MAX_GENERATION_RETRIES):
            result = await _process(sessionmaker, embedder, document_id, on_progress, on_live)
            if not isinstance(result, _StaleGeneration):
                return result
        raise RuntimeError("the knowledge base kept changing its embedding model during ingestion")
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


class _StaleGeneration:
    """The knowledge base switched embedding model while this version was embedded: start over."""


async def _process(
    sessionmaker: async_sessionmaker[AsyncSession],
    default_embedder: Embedder,
    document_id: int,
    on_progress: ProgressCallback | None,
    on_live: OnLive | None,
) -> Document | _StaleGeneration | None:
    async with transaction(sessionmaker) as session:
        document = await _load_for_processing(session, document_id)
        if document is None:
            return await session.get(Document, document_id)
        kb = await session.get(KnowledgeBase, document.knowledge_base_id)
        assert kb is not None
        data = await session.scalar(select(Document.content).where(Document.id == document_id))
        name, options = document.name, ChunkingOptions(kb.chunk_size, kb.chunk_overlap)
        generation = kb.embedding_generation
        embedder = embedder_for_model(kb.embedding_model, default_embedder)
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
                    _chunk_row(document, chunk, vector, language, config, generation)
                    for chunk, vector in zip(batch, vectors, strict=True)
                ],
            )
            document.chunks_embedded = first + len(batch)
            await session.flush()
            await notify(session, document)
        if on_progress:
            on_progress(first + len(batch), len(chunks))

    async with transaction(sessionmaker) as session:
        return await _go_live(session, document_id, generation, on_live)


@dataclass(frozen=True)
class Preparation:
    """How far ``prepare_answers`` got through a document's chunks."""

    done: int
    total: int
    more: bool  # stopped after ``max_batches`` with chunks left


async def prepare_answers(
    sessionmaker: async_sessionmaker[AsyncSession],
    default_embedder: Embedder,
    document_id: int,
    *,
    max_batches: int | None = None,
    on_progress: ProgressCallback | None = None,
) -> Preparation:
    """Compute what the answerer reads for a live document's chunks (sentence vectors, latent
    terms) and store it, a batch per transaction.

    Runs after the document went live rather than during ingestion: it costs about twice the
    chunk embeddings, and a document is searchable that much sooner. Idempotent (what is stored
    is skipped) and best effort: a reply computes whatever is still missing. Stops after
    ``max_batches`` computed batches so that a queue of uploads is not held behind it.
    """
    async with transaction(sessionmaker) as session:
        chunks = (
            await session.execute(
                select(DocumentEmbedding.heading_path, DocumentEmbedding.chunk_text)
                .where(DocumentEmbedding.document_id == document_id, DocumentEmbedding.is_live)
                .order_by(DocumentEmbedding.chunk_index)
            )
        ).all()
    pairs = [(tuple(heading_path), chunk_text) for heading_path, chunk_text in chunks]
    computed = 0
    for first in range(0, len(pairs), EMBED_BATCH):
        if max_batches is not None and computed >= max_batches:
            return Preparation(first, len(pairs), more=True)
        batch = pairs[first : first + EMBED_BATCH]
        sentences = await _embed_sentences(sessionmaker, default_embedder, batch)
        latents = await _latent_terms(sessionmaker, default_embedder, batch)
        if sentences or latents:
            computed += 1
            async with transaction(sessionmaker) as session:
                await sentence_store.save(session, default_embedder.model_name, sentences)
                await latent_store.save(session, default_embedder.model_name, latents)
        if on_progress:
            on_progress(first + len(batch), len(pairs))
    return Preparation(len(pairs), len(pairs), more=False)


async def _embed_sentences(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    chunks: Sequence[tuple[Sequence[str], str]],
) -> dict[str, Any]:
    """The answerer's sentence vectors of these chunks (heading path, text) that are not stored
    yet, embedded with the answerer's model (the process's default, not necessarily the knowledge
    base's)."""
    texts = sentence_store.chunk_texts(chunks)
    return await _not_stored_yet(
        sessionmaker,
        embedder.model_name,
        texts,
        sentence_store.fetch,
        lambda missing: sentence_store.embed(embedder, missing),
        "sentence_vectors",
    )


async def _latent_terms(
    sessionmaker: async_sessionmaker[AsyncSession],
    embedder: Embedder,
    chunks: Sequence[tuple[Sequence[str], str]],
) -> dict[str, LatentTerms]:
    """The latent terms of these chunks' texts not stored yet, for the answerer's confidence (with
    the answerer's model, when it has a sparse head)."""
    if not isinstance(embedder, LatentTermsEncoder):
        return {}
    return await _not_stored_yet(
        sessionmaker,
        embedder.model_name,
        list(dict.fromkeys(chunk_text for _, chunk_text in chunks)),
        latent_store.fetch,
        lambda missing: dict(zip(missing, embedder.latent_terms(missing), strict=True)),
        "latent_terms",
    )


_Stored = TypeVar("_Stored")


async def _not_stored_yet(
    sessionmaker: async_sessionmaker[AsyncSession],
    model: str,
    texts: Sequence[str],
    fetch: Callable[[AsyncSession, str, Sequence[str]], Awaitable[dict[str, _Stored]]],
    compute: Callable[[list[str]], dict[str, _Stored]],
    name: str,
) -> dict[str, _Stored]:
    """``compute`` (in a thread) for the texts the answerer's store lacks. Best effort: a text
    left out is computed by the first reply that needs it."""
    try:
        async with transaction(sessionmaker) as session:
            stored = await fetch(session, model, texts)
        return await asyncio.to_thread(compute, [text for text in texts if text not in stored])
    except Exception:
        log.warning(f"wacanda.{name}_skipped", exc_info=True)
        return {}


def _parse_and_chunk(
    data: bytes, name: str, embedder: Embedder, options: ChunkingOptions
) -> tuple[ParsedDocument, list[Chunk]]:
    parsed = parse_document(data, name)
    return parsed, chunk_document(parsed, embedder.count_tokens, options)


def _chunk_row(
    document: Document, chunk: Chunk, vector: Any, language: str, config: str, generation: int
) -> dict[str, Any]:
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
        "generation": generation,
    }


async def _go_live(
    session: AsyncSession, document_id: int, generation: int, on_live: OnLive | None = None
) -> Document | _StaleGeneration | None:
    """In one transaction: retire the current version's chunks and make this version's live.

    Under the knowledge base's lock, which a model switch takes too: the chunks go live only if
    they were embedded with the model the knowledge base still serves."""
    document = await session.get(Document, document_id)
    if document is None:
        return None
    live_generation = await session.scalar(
        select(KnowledgeBase.embedding_generation)
        .where(KnowledgeBase.id == document.knowledge_base_id)
        .with_for_update()
    )
    document = await _load_for_processing(session, document_id)
    if document is None:
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
        return await session.get(Document, document_id)
    if live_generation != generation:
        await session.execute(delete(DocumentEmbedding).where(DocumentEmbedding.document_id == document_id))
        return _StaleGeneration()
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
        if on_live is not None:
            await on_live(session, document)
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


# --- Changing a knowledge base's embedding model -----------------------------------------------
#
# A re-embedding writes every live chunk again, embedded with the new model, as rows of generation
# ``reembedding.id`` that are not live; search keeps serving the live generation meanwhile. Batches
# commit as they go and the job picks up what is missing, so it resumes after a crash. Chunks that
# go live meanwhile (uploads) are caught up; the switch (under the knowledge base's lock, which
# ``_go_live`` takes too) embeds the last few, swaps the generations and records the new model in
# one transaction. Whoever runs a re-embedding holds the advisory lock (REEMBED_LOCK_KEY, id).


@dataclass(frozen=True)
class ModelChange:
    reembedding: Reembedding | None  # None: the knowledge base already uses that model
    started: bool  # a job must run it (new, resumed after a failure, or left by a dead worker)


async def resolve_model(default: Embedder, model: str, dimension: int | None) -> tuple[Embedder, int]:
    """The embedder of a model name and its dimension, checked against ``dimension`` if given.

    An OpenAI-compatible model is probed with one request, so that a typo or a model the endpoint
    does not serve is refused now rather than by a job."""
    try:
        embedder = embedder_for_model(get_catalog().canonical(model), default)
    except UnknownModel as exc:
        raise InvalidInput(str(exc), field="model") from None
    try:
        dims = await asyncio.to_thread(lambda: embedder.dimension)
    except Exception as exc:
        status = getattr(exc, "status_code", None)
        if status in (400, 404, 422):
            raise InvalidInput(
                f"the embeddings endpoint refused model {model!r}: {_describe(exc)}", field="model"
            ) from None
        raise UpstreamUnavailable(
            f"the embeddings endpoint did not answer for {model!r}: {_describe(exc)}", field="model"
        ) from None
    check_dimension(embedder.model_name, dims)
    if dimension is not None and dimension != dims:
        raise InvalidInput(
            f"dimension mismatch: {embedder.model_name} gives {dims} dimensions, not {dimension}",
            field="dimension",
        )
    return embedder, dims


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:500] if message else type(exc).__name__


async def model_state(
    session: AsyncSession, account_id: int, kb_id: int
) -> tuple[KnowledgeBase, Reembedding | None]:
    """A knowledge base with its latest re-embedding, read in one statement: in two, a switch
    committing between them paired the old model with the finished re-embedding."""
    latest = (
        select(func.max(Reembedding.id))
        .where(Reembedding.knowledge_base_id == KnowledgeBase.id)
        .correlate(KnowledgeBase)
        .scalar_subquery()
    )
    row = (
        await session.execute(
            select(KnowledgeBase, Reembedding)
            .outerjoin(Reembedding, Reembedding.id == latest)
            .where(KnowledgeBase.id == kb_id, KnowledgeBase.account_id == account_id)
            .execution_options(populate_existing=True)
        )
    ).first()
    if row is None:
        raise NotFound("knowledge base not found", field="knowledge_base_id")
    return row[0], row[1]


async def latest_reembedding(session: AsyncSession, kb_id: int) -> Reembedding | None:
    return (
        await session.execute(
            select(Reembedding)
            .where(Reembedding.knowledge_base_id == kb_id)
            .order_by(Reembedding.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()


async def _is_orphaned(session: AsyncSession, reembedding_id: int) -> bool:
    """A ``running`` re-embedding nobody runs: no queued job and its lock is free (its runner died)."""
    queued = await session.scalar(
        text(
            "SELECT EXISTS (SELECT 1 FROM wacanda.procrastinate_jobs WHERE status IN ('todo', 'doing')"
            " AND task_name = 'wacanda.reembed' AND (args->>'reembedding_id')::bigint = :id)"
        ),
        {"id": reembedding_id},
    )
    if queued:
        return False
    free = await session.scalar(
        text("SELECT pg_try_advisory_xact_lock(:key, CAST(:id AS integer))"),
        {"key": REEMBED_LOCK_KEY, "id": reembedding_id},
    )
    return bool(free)


async def change_model(
    session: AsyncSession,
    account_id: int,
    kb_id: int,
    embedder: Embedder,
    dims: int,
) -> ModelChange:
    """Start (or resume) re-embedding a knowledge base with ``embedder`` (from ``resolve_model``).

    Refused with 409 while another re-embedding of it runs. A failed (or orphaned) one for the same
    model resumes where it stopped; for another model its partial vectors are dropped."""
    kb = await get_kb(session, account_id, kb_id, lock=True)
    model = embedder.model_name
    latest = await latest_reembedding(session, kb.id)
    if latest is not None and latest.status == "running":
        if not await _is_orphaned(session, latest.id):
            raise Conflict(
                f"a re-embedding to {latest.model} is running ({latest.chunks_done}/{latest.chunks_total}"
                " chunks); wait for it to finish",
                field="model",
                reembedding_id=latest.id,
            )
        if latest.model == model and latest.dimension == dims:
            latest.attempts += 1
            await session.flush()
            await notify_reembedding(session, latest)
            return ModelChange(latest, started=True)
        latest.status, latest.error = "failed", "abandoned: its worker stopped, then another model was chosen"
        latest.finished_at = datetime.now(UTC)
    if model == kb.embedding_model and dims == kb.embedding_dim:
        return ModelChange(None, started=False)
    if (
        latest is not None
        and latest.status == "failed"
        and latest.model == model
        and latest.dimension == dims
    ):
        latest.status, latest.error, latest.finished_at = "running", None, None
        latest.attempts += 1
        await session.flush()
        await notify_reembedding(session, latest)
        return ModelChange(latest, started=True)
    # Partial vectors of failed attempts at other models are of no further use.
    await session.execute(
        delete(DocumentEmbedding).where(
            DocumentEmbedding.knowledge_base_id == kb.id,
            DocumentEmbedding.is_live.is_(False),
            DocumentEmbedding.generation.in_(
                select(Reembedding.id).where(
                    Reembedding.knowledge_base_id == kb.id, Reembedding.status == "failed"
                )
            ),
        )
    )
    reembedding = Reembedding(
        knowledge_base_id=kb.id,
        account_id=kb.account_id,
        from_model=kb.embedding_model,
        from_dim=kb.embedding_dim,
        model=model,
        dimension=dims,
        status="running",
        chunks_total=await _live_chunks(session, kb.id),
        chunks_done=0,
        attempts=1,
    )
    session.add(reembedding)
    await session.flush()
    await notify_reembedding(session, reembedding)
    return ModelChange(reembedding, started=True)


async def orphaned_reembeddings(session: AsyncSession) -> list[tuple[int, int]]:
    """``(id, account_id)`` of running re-embeddings nobody runs (for ``wacanda serve`` to requeue)."""
    rows = (
        await session.execute(
            select(Reembedding.id, Reembedding.account_id).where(Reembedding.status == "running")
        )
    ).all()
    return [(int(r.id), int(r.account_id)) for r in rows if await _is_orphaned(session, int(r.id))]


async def notify_reembedding(session: AsyncSession, reembedding: Reembedding) -> None:
    """``knowledge_base.reembed_progress`` | ``.reembedded`` | ``.reembed_failed``, on the same
    channel (and SSE stream) as document progress."""
    kind = {"completed": "reembedded", "failed": "reembed_failed"}.get(reembedding.status, "reembed_progress")
    payload = {
        "type": f"knowledge_base.{kind}",
        "account_id": reembedding.account_id,
        "knowledge_base_id": reembedding.knowledge_base_id,
        "reembedding_id": reembedding.id,
        "model": reembedding.model,
        "dimension": reembedding.dimension,
        "status": reembedding.status,
        "chunks_done": reembedding.chunks_done,
        "chunks_total": reembedding.chunks_total,
        "error": reembedding.error,
    }
    await session.execute(text("SELECT pg_notify(:c, :p)"), {"c": EVENTS_CHANNEL, "p": json.dumps(payload)})


async def _live_chunks(session: AsyncSession, kb_id: int) -> int:
    count = await session.scalar(
        select(func.count())
        .select_from(DocumentEmbedding)
        .where(DocumentEmbedding.knowledge_base_id == kb_id, DocumentEmbedding.is_live)
    )
    return int(count or 0)


_MISSING_SQL = text(
    """
    SELECT e.id, e.context, e.chunk_text FROM wacanda.document_embeddings e
     WHERE e.knowledge_base_id = :kb AND e.is_live
       AND NOT EXISTS (SELECT 1 FROM wacanda.document_embeddings n
                        WHERE n.document_id = e.document_id AND n.chunk_index = e.chunk_index
                          AND n.generation = :generation)
     ORDER BY e.id
     LIMIT :limit
    """
)

_COPY_SQL = text(
    """
    INSERT INTO wacanda.document_embeddings
           (document_id, knowledge_base_id, chunk_index, chunk_text, title, heading_path, context,
            language, config, embedding, token_count, is_live, generation)
    SELECT document_id, knowledge_base_id, chunk_index, chunk_text, title, heading_path, context,
           language, config, CAST(:embedding AS vector), token_count, false, :generation
      FROM wacanda.document_embeddings WHERE id = :id AND is_live
    ON CONFLICT DO NOTHING
    """
)


def _vector_text(vector: Any) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


class ReembedFailed(Exception):
    """The new model could not embed (endpoint down, wrong dimension): recorded, old index kept."""


async def _embed_missing(
    session: AsyncSession, embedder: Embedder, reembedding: Reembedding, limit: int
) -> int:
    """Embed up to ``limit`` live chunks that have no vector of the new generation yet."""
    rows = (
        await session.execute(
            _MISSING_SQL,
            {"kb": reembedding.knowledge_base_id, "generation": reembedding.id, "limit": limit},
        )
    ).all()
    if not rows:
        return 0
    texts = [f"{row.context}\n\n{row.chunk_text}" for row in rows]
    try:
        vectors = await asyncio.to_thread(embedder.embed_passages, texts)
    except Exception as exc:
        raise ReembedFailed(f"the embeddings endpoint failed: {_describe(exc)}") from exc
    if vectors.ndim != 2 or vectors.shape[1] != reembedding.dimension:
        got = vectors.shape[1] if vectors.ndim == 2 else "?"
        raise ReembedFailed(f"the model returned {got} dimensions, not the {reembedding.dimension} expected")
    await session.execute(
        _COPY_SQL,
        [
            {"id": int(row.id), "embedding": _vector_text(vector), "generation": reembedding.id}
            for row, vector in zip(rows, vectors, strict=True)
        ],
    )
    return len(rows)


async def _running(session: AsyncSession, reembedding_id: int) -> Reembedding | None:
    reembedding = await session.get(Reembedding, reembedding_id, with_for_update=True, populate_existing=True)
    return reembedding if reembedding is not None and reembedding.status == "running" else None


@dataclass(frozen=True)
class ReembedRun:
    reembedding: Reembedding | None  # as it ended: completed, failed, or still running
    more: bool  # stopped after ``max_batches``: another run continues


async def run_reembedding(
    sessionmaker: async_sessionmaker[AsyncSession],
    default_embedder: Embedder,
    reembedding_id: int,
    on_progress: ProgressCallback | None = None,
    *,
    batch_size: int = REEMBED_BATCH,
    max_batches: int | None = None,
) -> ReembedRun:
    """Embed a knowledge base's live chunks with the new model, then switch to it.

    With ``max_batches`` it stops after that many batches (``more``), so that a job gives the
    worker back to uploads between slices. Resumable: a rerun embeds only what has no vector of
    the new generation. Another process running it makes this a no-op."""
    engine = sessionmaker.kw["bind"]
    async with engine.connect() as lock_conn:
        await lock_conn.execution_options(isolation_level="AUTOCOMMIT")
        key = {"key": REEMBED_LOCK_KEY, "id": reembedding_id}
        held = await lock_conn.scalar(text("SELECT pg_try_advisory_lock(:key, CAST(:id AS integer))"), key)
        if not held:
            async with sessionmaker() as session:
                return ReembedRun(await session.get(Reembedding, reembedding_id), more=False)
        try:
            return await _run(
                sessionmaker, default_embedder, reembedding_id, on_progress, batch_size, max_batches
            )
        finally:
            await lock_conn.execute(text("SELECT pg_advisory_unlock(:key, CAST(:id AS integer))"), key)


async def _run(
    sessionmaker: async_sessionmaker[AsyncSession],
    default_embedder: Embedder,
    reembedding_id: int,
    on_progress: ProgressCallback | None,
    batch_size: int,
    max_batches: int | None,
) -> ReembedRun:
    try:
        return await _run_batches(
            sessionmaker, default_embedder, reembedding_id, on_progress, batch_size, max_batches
        )
    except Exception as exc:
        if not isinstance(exc, ReembedFailed):
            log.exception("wacanda.reembed_failed", reembedding_id=reembedding_id)
        reason = str(exc) if isinstance(exc, ReembedFailed) else f"re-embedding failed: {_describe(exc)}"
        async with transaction(sessionmaker) as session:
            reembedding = await _running(session, reembedding_id)
            if reembedding is None:
                return ReembedRun(await session.get(Reembedding, reembedding_id), more=False)
            reembedding.status, reembedding.error = "failed", reason
            reembedding.finished_at = datetime.now(UTC)
            await _count_progress(session, reembedding)
            return ReembedRun(reembedding, more=False)


async def _run_batches(
    sessionmaker: async_sessionmaker[AsyncSession],
    default_embedder: Embedder,
    reembedding_id: int,
    on_progress: ProgressCallback | None,
    batch_size: int,
    max_batches: int | None,
) -> ReembedRun:
    async with transaction(sessionmaker) as session:
        reembedding = await _running(session, reembedding_id)
        if reembedding is None:
            return ReembedRun(await session.get(Reembedding, reembedding_id), more=False)
        try:
            embedder = embedder_for_model(reembedding.model, default_embedder)
        except UnknownModel as exc:
            raise ReembedFailed(str(exc)) from None
        await ensure_vector_index(session, reembedding.dimension)
    batches = 0
    while True:
        if max_batches is not None and batches >= max_batches:
            return ReembedRun(reembedding, more=True)
        async with transaction(sessionmaker) as session:
            reembedding = await _running(session, reembedding_id)
            if reembedding is None:
                return ReembedRun(await session.get(Reembedding, reembedding_id), more=False)
            embedded = await _embed_missing(session, embedder, reembedding, batch_size)
            if not embedded:
                break
            await _count_progress(session, reembedding)
        batches += 1
        if on_progress:
            on_progress(reembedding.chunks_done, reembedding.chunks_total)
    async with transaction(sessionmaker) as session:
        return ReembedRun(await _switch(session, embedder, reembedding_id, batch_size), more=False)


async def _count_progress(session: AsyncSession, reembedding: Reembedding) -> None:
    done = await session.scalar(
        select(func.count())
        .select_from(DocumentEmbedding)
        .where(
            DocumentEmbedding.knowledge_base_id == reembedding.knowledge_base_id,
            DocumentEmbedding.generation == reembedding.id,
            DocumentEmbedding.is_live.is_(False),
        )
    )
    total = await _live_chunks(session, reembedding.knowledge_base_id)
    reembedding.chunks_done, reembedding.chunks_total = min(int(done or 0), total), total
    await session.flush()
    await notify_reembedding(session, reembedding)


async def _switch(
    session: AsyncSession, embedder: Embedder, reembedding_id: int, batch_size: int
) -> Reembedding | None:
    """One transaction: catch up the chunks that went live meanwhile, retire the old generation,
    make the new one live and record the model; searches see the old index until it commits."""
    reembedding = await session.get(Reembedding, reembedding_id)
    if reembedding is None:
        return None
    kb = await session.get(KnowledgeBase, reembedding.knowledge_base_id, with_for_update=True)
    reembedding = await _running(session, reembedding_id)
    if kb is None or reembedding is None:
        return reembedding
    while await _embed_missing(session, embedder, reembedding, batch_size):
        pass  # uploads wait on the lock now, so this ends
    await session.execute(
        delete(DocumentEmbedding).where(
            DocumentEmbedding.knowledge_base_id == kb.id, DocumentEmbedding.is_live
        )
    )
    await session.execute(
        update(DocumentEmbedding)
        .where(DocumentEmbedding.knowledge_base_id == kb.id, DocumentEmbedding.generation == reembedding.id)
        .values(is_live=True)
    )
    # Vectors of a document version still being embedded are of the old model: its ingestion
    # notices the new generation when it goes live, and embeds again.
    kb.embedding_model, kb.embedding_dim = reembedding.model, reembedding.dimension
    kb.embedding_generation = reembedding.id
    reembedding.status, reembedding.error = "completed", None
    reembedding.finished_at = datetime.now(UTC)
    total = await _live_chunks(session, kb.id)
    reembedding.chunks_done = reembedding.chunks_total = total
    await session.flush()
    await refresh_centroids(session, kb.id)
    await notify_reembedding(session, reembedding)
    return reembedding
