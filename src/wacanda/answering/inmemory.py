"""An in-memory :class:`~wacanda.answering.types.Retriever` over parsed documents, for the
benchmarks, tests and a knowledge base small enough to keep in RAM.

It mirrors the database search (ADR 0005) with the same parser, chunker, embedder, language-bias
correction and fusion weights; only the full-text side differs: BM25 over crude stems in Python
instead of PostgreSQL's per-language ``tsvector`` configurations.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from wacanda.answering.types import Passage
from wacanda.answering.words import content_terms
from wacanda.knowledge.chunking import Chunk, ChunkingOptions, chunk_document
from wacanda.knowledge.embeddings import Embedder, Vectors, embed_in_batches
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS, reciprocal_rank_fusion
from wacanda.knowledge.language import detect_language
from wacanda.knowledge.language_bias import debiased_scores, language_centroids
from wacanda.knowledge.parsing import parse_document

CANDIDATES = 50  # chunks each retriever hands to fusion, as in the database search


@dataclass(frozen=True)
class IndexedChunk:
    document: str
    chunk: Chunk
    language: str


class BM25:
    """Okapi BM25 over :func:`content_terms` (k1 = 1.2, b = 0.75)."""

    def __init__(self, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> None:
        self._docs = [Counter(content_terms(text)) for text in texts]
        self._lengths = [sum(doc.values()) for doc in self._docs]
        self._average = (sum(self._lengths) / len(self._lengths)) if self._lengths else 0.0
        frequency: Counter[str] = Counter()
        for doc in self._docs:
            frequency.update(doc.keys())
        n = len(self._docs)
        self.idf = {term: math.log(1 + (n - df + 0.5) / (df + 0.5)) for term, df in frequency.items()}
        self._k1, self._b = k1, b

    def scores(self, query: str) -> list[tuple[int, float]]:
        terms = set(content_terms(query))
        scored = []
        for i, doc in enumerate(self._docs):
            score = 0.0
            for term in terms & doc.keys():
                tf = doc[term]
                norm = 1 - self._b + self._b * self._lengths[i] / (self._average or 1)
                score += self.idf[term] * tf * (self._k1 + 1) / (tf + self._k1 * norm)
            if score > 0:
                scored.append((i, score))
        return sorted(scored, key=lambda item: (-item[1], item[0]))


class InMemoryRetriever:
    def __init__(
        self, chunks: Sequence[IndexedChunk], embedder: Embedder, vectors: Vectors | None = None
    ) -> None:
        self.chunks = list(chunks)
        self.embedder = embedder
        texts = [c.chunk.embedding_text() for c in self.chunks]
        self.vectors = vectors if vectors is not None else embed_in_batches(embedder, texts)
        self._languages = [c.language for c in self.chunks]
        self._centroids = language_centroids(self.vectors, self._languages) if self.chunks else {}
        self._bm25 = BM25(texts)

    @classmethod
    def from_documents(
        cls,
        documents: Iterable[tuple[str, bytes]],
        embedder: Embedder,
        options: ChunkingOptions | None = None,
    ) -> InMemoryRetriever:
        """Index ``(file name, content)`` pairs with the knowledge base's parser and chunker."""
        indexed: list[IndexedChunk] = []
        for name, data in documents:
            parsed = parse_document(data, name)
            language = detect_language(parsed.text) or "simple"
            for chunk in chunk_document(parsed, embedder.count_tokens, options or ChunkingOptions()):
                indexed.append(IndexedChunk(name, chunk, language))
        return cls(indexed, embedder)

    @classmethod
    def from_directory(cls, directory: Path, embedder: Embedder) -> InMemoryRetriever:
        paths = sorted(path for path in directory.iterdir() if path.is_file())
        return cls.from_documents(((path.name, path.read_bytes()) for path in paths), embedder)

    def search(self, question: str, *, limit: int) -> list[Passage]:
        if not self.chunks or not any(char.isalnum() for char in question):
            return []
        query = self.embedder.embed_query(question)
        vector_scores = debiased_scores(query, self.vectors, self._languages, self._centroids)
        vector_ranking = [int(i) for i in np.argsort(-vector_scores, kind="stable")[:CANDIDATES]]
        fulltext_ranking = [i for i, _ in self._bm25.scores(question)[:CANDIDATES]]
        fused = reciprocal_rank_fusion(
            {"vector": vector_ranking, "fulltext": fulltext_ranking},
            weights=DEFAULT_WEIGHTS,
            k=DEFAULT_RRF_K,
            limit=limit,
        )
        passages = []
        for hit in fused:
            entry = self.chunks[hit.key]
            passages.append(
                Passage(
                    document=entry.document,
                    title=entry.chunk.document_title,
                    heading_path=tuple(entry.chunk.heading_path),
                    text=entry.chunk.text,
                    score=round(hit.score, 6),
                    ranks=dict(hit.ranks),
                )
            )
        return passages
