"""Hybrid search over live chunks: pgvector HNSW (cosine) and PostgreSQL full-text, fused with
weighted reciprocal-rank fusion after removing the same-language pull from vector scores (ADR 0005).

Both retrievers read only ``is_live`` chunks through partial indexes, so a version being embedded
or one just retired is never seen. Each knowledge base's query vector comes from the model it
records, searched through that dimension's HNSW index (ADR 0009).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from wacanda.errors import InvalidInput, NotFound
from wacanda.knowledge import fulltext
from wacanda.knowledge.embeddings import Embedder, Vectors, embedder_for_model
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS, reciprocal_rank_fusion
from wacanda.knowledge.models import Document, KnowledgeBase

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 50
CANDIDATES = 50  # chunks each retriever hands to fusion
FULLTEXT_CONFIGS = ("english", "portuguese", "spanish", "simple")


@dataclass(frozen=True)
class SearchFilters:
    knowledge_bases: Sequence[str] = ()  # names; empty = every knowledge base of the account
    documents: Sequence[str] = ()  # document names
    tags: Sequence[str] = ()  # a document must carry all of them


@dataclass
class SearchHit:
    chunk_id: int
    document_id: int
    document: str
    knowledge_base: str
    title: str
    heading_path: list[str]
    text: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # 1-based rank per retriever ("vector", "fulltext")

    @property
    def heading(self) -> str:
        return self.heading_path[-1] if self.heading_path else ""


def clean_query(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise InvalidInput("the query is empty", field="q")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidInput(f"the query has {len(query):,} characters; at most {MAX_QUERY_CHARS:,}", field="q")
    return query


async def embed_query(embedder: Embedder, query: str) -> Vectors:
    return await asyncio.to_thread(embedder.embed_query, query)


# ``{dims}`` is an int; the cast and ``dims = N`` match that dimension's partial HNSW index.
_VECTOR_SQL = """
WITH candidates AS MATERIALIZED (
    SELECT e.id, e.knowledge_base_id, e.language,
           e.embedding::vector({dims}) <=> CAST(:q AS vector({dims})) AS distance
      FROM wacanda.document_embeddings e
     WHERE e.is_live AND e.dims = {dims} AND e.knowledge_base_id = ANY(:kbs) {document_filter}
     ORDER BY e.embedding::vector({dims}) <=> CAST(:q AS vector({dims}))
     LIMIT :limit
)
SELECT id, knowledge_base_id, language, distance FROM candidates ORDER BY distance
"""

_QUERY = fulltext.QUERY_EXPRESSION.format(schema="wacanda", config="configs.config", query=":text")
_MATCH = fulltext.MATCH_EXPRESSION.format(
    schema="wacanda", config="configs.config", query=":text", excluded="common.lexemes"
)
_COMMON = fulltext.common_lexemes_sql(
    "(SELECT q.lexeme, coalesce(sum(f.chunks), 0) AS chunks FROM query_lexemes q"
    " LEFT JOIN wacanda.lexeme_frequencies f ON f.lexeme = q.lexeme AND f.knowledge_base_id = ANY(:kbs)"
    " GROUP BY q.lexeme) AS counts"
)
_COMMON_ESCAPED = _COMMON.replace("{", "{{").replace("}", "}}")  # survives .format() below
# Match on the query's less common lexemes, rank on all of them (ADR 0007).
_FULLTEXT_SQL = f"""
WITH configs AS (
    SELECT c.config FROM unnest(CAST(:configs AS regconfig[])) AS c(config)
), query_lexemes AS (
    SELECT DISTINCT lexeme
      FROM configs, unnest(tsvector_to_array(to_tsvector(configs.config, :text))) AS lexeme
), common AS (
    SELECT ({_COMMON_ESCAPED}) AS lexemes
), query AS (
    SELECT configs.config, {_QUERY} AS rank_q, {_MATCH} AS match_q FROM configs, common
)
SELECT e.id
  FROM wacanda.document_embeddings e JOIN query ON e.config = query.config
 WHERE e.is_live AND e.knowledge_base_id = ANY(:kbs) {{document_filter}} AND e.tsv @@ query.match_q
 ORDER BY {fulltext.RANK_FUNCTION}(e.tsv, query.rank_q) DESC, e.id
 LIMIT :limit
"""  # noqa: S608 (module constants only; every value is a bound parameter)

_DETAILS_SQL = """
SELECT e.id, e.document_id, d.name AS document, k.name AS knowledge_base, e.title, e.heading_path,
       e.chunk_text, e.knowledge_base_id, k.embedding_generation
  FROM wacanda.document_embeddings e
  JOIN wacanda.documents d ON d.id = e.document_id
  JOIN wacanda.knowledge_bases k ON k.id = e.knowledge_base_id
 WHERE e.id = ANY(:ids) AND e.is_live
"""


#: A search re-ranks when a new version went live under it; two swaps in a row are rare.
MAX_RANKING_ATTEMPTS = 3


@dataclass(frozen=True)
class _VectorSpace:
    """Knowledge bases embedded with one model: one query vector, one HNSW index."""

    model: str
    dims: int
    generations: dict[int, int]  # knowledge base id -> its live embedding generation


def _vector_spaces(rows: Sequence[Any]) -> list[_VectorSpace]:
    spaces: dict[tuple[str, int], dict[int, int]] = {}
    for row in rows:
        key = (row.embedding_model, int(row.embedding_dim))
        spaces.setdefault(key, {})[int(row.id)] = int(row.embedding_generation)
    return [_VectorSpace(model, dims, generations) for (model, dims), generations in spaces.items()]


_SPACE_COLUMNS = (
    KnowledgeBase.embedding_model,
    KnowledgeBase.embedding_dim,
    KnowledgeBase.embedding_generation,
)


async def _scope(
    session: AsyncSession, account_id: int, filters: SearchFilters
) -> tuple[list[int], list[int] | None, list[_VectorSpace]]:
    """The knowledge base ids to search (with their models) and, with document or tag filters, the
    document ids."""
    query = select(KnowledgeBase.id, KnowledgeBase.name, *_SPACE_COLUMNS).where(
        KnowledgeBase.account_id == account_id
    )
    if filters.knowledge_bases:
        query = query.where(KnowledgeBase.name.in_(list(filters.knowledge_bases)))
    rows = (await session.execute(query)).all()
    missing = set(filters.knowledge_bases) - {row.name for row in rows}
    if missing:
        raise NotFound(f"knowledge base {sorted(missing)[0]!r} not found", field="kb")
    kb_ids = [int(row.id) for row in rows]
    spaces = _vector_spaces(rows)
    if not (filters.documents or filters.tags) or not kb_ids:
        return kb_ids, None, spaces
    documents = select(Document.id).where(Document.knowledge_base_id.in_(kb_ids), Document.is_current)
    if filters.documents:
        documents = documents.where(Document.name.in_(list(filters.documents)))
    if filters.tags:
        documents = documents.where(Document.tags.contains(list(filters.tags)))
    return kb_ids, [int(i) for i in (await session.execute(documents)).scalars()], spaces


async def search(
    session: AsyncSession,
    embedder: Embedder,
    account_id: int,
    query: str,
    filters: SearchFilters | None = None,
    *,
    limit: int = 5,
    query_vector: Vectors | None = None,
) -> list[SearchHit]:
    query = clean_query(query)
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit is between 1 and {MAX_LIMIT}", field="limit")
    filters = filters or SearchFilters()
    if not any(char.isalnum() for char in query):
        return []  # only emoji or punctuation: nothing to look for
    kb_ids, document_ids, spaces = await _scope(session, account_id, filters)
    if not kb_ids or document_ids == []:
        return []
    params: dict[str, Any] = {"kbs": kb_ids, "limit": CANDIDATES}
    document_filter = ""
    if document_ids is not None:
        document_filter, params["documents"] = "AND e.document_id = ANY(:documents)", document_ids
    centroids, live_chunks = await _centroids(session, kb_ids)
    fulltext_params = {
        **params,
        "text": query,
        "configs": list(FULLTEXT_CONFIGS),
        "threshold": fulltext.common_threshold(live_chunks),
    }
    query_vectors: dict[str, Vectors] = {}
    if query_vector is not None:
        query_vectors[embedder.model_name] = query_vector
    # Each statement reads its own snapshot (and full-text runs on another connection), so a new
    # version going live between the rankings and the details could show half of each. Every hit
    # must still be live when its details are read, and its knowledge base still on the model the
    # query was embedded with; if not, a swap happened: rank again.
    for attempt in range(MAX_RANKING_ATTEMPTS):
        if attempt:
            rows = await session.execute(
                select(KnowledgeBase.id, *_SPACE_COLUMNS).where(KnowledgeBase.id.in_(kb_ids))
            )
            spaces = _vector_spaces(rows.all())
            centroids, _live = await _centroids(session, kb_ids)
        for space in spaces:
            if space.model not in query_vectors:
                query_vectors[space.model] = await embed_query(
                    embedder_for_model(space.model, embedder), query
                )
        fused = await _fused_ranking(
            session, spaces, query_vectors, params, fulltext_params, document_filter, centroids, limit
        )
        if not fused:
            return []
        details = {
            int(row.id): row
            for row in (await session.execute(text(_DETAILS_SQL), {"ids": [hit.key for hit in fused]})).all()
        }
        generations = {kb: gen for space in spaces for kb, gen in space.generations.items()}
        if len(details) == len(fused) and all(
            generations.get(int(row.knowledge_base_id), -1) == int(row.embedding_generation)
            for row in details.values()
        ):
            break
    hits = []
    for hit in fused:
        row = details.get(hit.key)
        if row is None:
            continue
        hits.append(
            SearchHit(
                chunk_id=hit.key,
                document_id=int(row.document_id),
                document=row.document,
                knowledge_base=row.knowledge_base,
                title=row.title,
                heading_path=list(row.heading_path),
                text=row.chunk_text,
                score=round(hit.score, 6),
                ranks=dict(hit.ranks),
            )
        )
    return hits


async def _fused_ranking(
    session: AsyncSession,
    spaces: Sequence[_VectorSpace],
    query_vectors: dict[str, Vectors],
    params: dict[str, Any],
    fulltext_params: dict[str, Any],
    document_filter: str,
    centroids: Any,
    limit: int,
) -> list[Any]:
    """Vector and full-text rankings of the live chunks, fused."""
    # The two retrievers are independent: full-text runs on its own connection while the vector
    # index is searched.
    engine = session.bind
    fulltext_task = (
        asyncio.create_task(_fulltext_ranking(engine, document_filter, fulltext_params))
        if isinstance(engine, AsyncEngine)
        else None
    )
    try:
        # Filtered HNSW scans keep looking until enough rows pass the filters (pgvector ≥ 0.8).
        await session.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
        await session.execute(text("SET LOCAL hnsw.ef_search = 100"))
        scored: list[tuple[int, float]] = []
        for space in spaces:  # one per embedding model among the knowledge bases searched
            query_vector = query_vectors[space.model]
            vector_rows = (
                await session.execute(
                    text(_VECTOR_SQL.format(document_filter=document_filter, dims=int(space.dims))),
                    {**params, "kbs": list(space.generations), "q": _vector_literal(query_vector)},
                )
            ).all()
            scored += _debiased_scores(session_centroids=centroids, rows=vector_rows, query=query_vector)
        order = sorted(range(len(scored)), key=lambda i: -scored[i][1])
        vector_ranking = [scored[i][0] for i in order][: params["limit"]]
        if fulltext_task is not None:
            fulltext_ranking = await fulltext_task
        else:
            rows = await session.execute(
                text(_FULLTEXT_SQL.format(document_filter=document_filter)), fulltext_params
            )
            fulltext_ranking = [int(row[0]) for row in rows.all()]
    finally:
        if fulltext_task is not None and not fulltext_task.done():
            fulltext_task.cancel()
    return reciprocal_rank_fusion(
        {"vector": vector_ranking, "fulltext": fulltext_ranking},
        weights=DEFAULT_WEIGHTS,
        k=DEFAULT_RRF_K,
        limit=limit,
    )


async def _fulltext_ranking(engine: AsyncEngine, document_filter: str, params: dict[str, Any]) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(text(_FULLTEXT_SQL.format(document_filter=document_filter)), params)
        return [int(row[0]) for row in rows.all()]


def _vector_literal(vector: Vectors) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in vector) + "]"


async def _centroids(session: AsyncSession, kb_ids: list[int]) -> tuple[dict[int, dict[str, Vectors]], int]:
    """Each knowledge base's language centroids, and how many live chunks they all hold."""
    rows = await session.execute(
        text(
            "SELECT knowledge_base_id, language, centroid, chunk_count FROM wacanda.language_centroids"
            " WHERE knowledge_base_id = ANY(:kbs)"
        ),
        {"kbs": kb_ids},
    )
    centroids: dict[int, dict[str, Vectors]] = {}
    live_chunks = 0
    for kb_id, language, centroid, chunk_count in rows.all():
        centroids.setdefault(int(kb_id), {})[language] = _as_array(centroid)
        live_chunks += int(chunk_count) if language == "*" else 0
    return centroids, live_chunks


def _as_array(value: Any) -> Vectors:
    if isinstance(value, str):
        return np.asarray([float(x) for x in value.strip("[]").split(",")], dtype=np.float32)
    return np.asarray(value, dtype=np.float32)


def _debiased_scores(
    *, session_centroids: dict[int, dict[str, Vectors]], rows: Sequence[Any], query: Vectors
) -> list[tuple[int, float]]:
    """Score the HNSW candidates by cosine minus the query's pull towards each chunk's language
    (the knowledge base's centroid of that language, or of all its chunks when unknown); the
    vector ranking sorts on these.

    Vectors are unit length, so cosine = 1 - pgvector's cosine distance and the chunk vectors need
    not leave the database: this is ``language_bias.debiased_scores`` with ``vectors @ query``
    already computed.
    """
    if not rows:
        return []
    offsets = {
        kb_id: {
            language: float(centroid @ query)
            for language, centroid in centroids.items()
            if centroid.shape == query.shape  # a switch under this query: its ranking is redone
        }
        for kb_id, centroids in session_centroids.items()
    }
    scores = []
    for row in rows:
        kb_offsets = offsets.get(int(row.knowledge_base_id), {})
        offset = kb_offsets.get(row.language, kb_offsets.get("*", 0.0))
        scores.append((int(row.id), 1.0 - float(row.distance) - offset))
    return scores
