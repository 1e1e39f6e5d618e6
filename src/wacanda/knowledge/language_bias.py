"""Remove the "same language" pull from multilingual vector scores.

A multilingual embedding ranks passages written in the query's language higher than passages in
another language that answer it better: on the support corpus, Portuguese questions whose answer
is in an English page retrieved the (only) Portuguese FAQ first. Subtracting the query's
similarity to the centroid of each language's passages, ``q·c - q·μ(lang(c))`` = ``q·(c - μ)``,
cancels that shared language component and keeps the topical one.

The centroids are per knowledge base and language; they move slowly as documents are added, so
they can be recomputed after each ingestion. Search applies the correction to the candidates the
vector index returns (a rerank), so the HNSW index keeps plain cosine vectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from wacanda.knowledge.embeddings import Vectors

UNKNOWN_LANGUAGES = frozenset({"", "simple"})  # no language detected: centred on the whole corpus
_ALL = "*"


def language_centroids(vectors: Vectors, languages: Sequence[str]) -> dict[str, Vectors]:
    """Mean vector of each language's passages (``languages[i]`` labels ``vectors[i]``), plus the
    overall mean under ``"*"`` for passages whose language is unknown."""
    labels = np.asarray(languages)
    centroids = {
        language: vectors[labels == language].mean(axis=0)
        for language in sorted(set(languages) - UNKNOWN_LANGUAGES)
    }
    if len(vectors):
        centroids[_ALL] = vectors.mean(axis=0)
    return centroids


def debiased_scores(
    query: Vectors, vectors: Vectors, languages: Sequence[str], centroids: dict[str, Vectors]
) -> Vectors:
    """Cosine scores of ``vectors`` against ``query`` minus the query's pull towards each one's language.

    With a single language in the knowledge base this only shifts every score by the same amount,
    so the ranking is that of plain cosine.
    """
    scores = vectors @ query
    offsets = {language: float(centroid @ query) for language, centroid in centroids.items()}
    return np.asarray(
        scores - np.array([offsets.get(language, 0.0) for language in languages]), dtype=np.float32
    )
