"""Reciprocal-rank fusion of several ranked lists (full-text and vector search).

RRF needs no score calibration between retrievers, only ranks; the per-retriever weights and
``k`` are tuned by ``bench/retrieval_quality.py`` on the labelled support corpus.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)

# Tuned on the support corpus (docs/benchmarks.md): a small k lets a retriever's first hit count,
# and full-text at half weight adds exact terms without overruling the vectors.
DEFAULT_RRF_K = 5.0
DEFAULT_WEIGHTS = {"vector": 1.0, "fulltext": 0.5}


@dataclass
class FusedHit(Generic[Key]):
    key: Key
    score: float
    ranks: dict[str, int] = field(default_factory=dict)  # 1-based rank in each retriever that found it


def reciprocal_rank_fusion(
    rankings: Mapping[str, Sequence[Key]],
    weights: Mapping[str, float] | None = None,
    k: float = 60.0,
    limit: int | None = None,
) -> list[FusedHit[Key]]:
    """Score each key by ``sum(weight / (k + rank))`` over the rankings it appears in."""
    hits: dict[Key, FusedHit[Key]] = {}
    for retriever, ranking in rankings.items():
        weight = 1.0 if weights is None else weights.get(retriever, 1.0)
        for rank, key in enumerate(ranking, start=1):
            hit = hits.setdefault(key, FusedHit(key=key, score=0.0))
            if retriever in hit.ranks:
                continue  # a retriever that lists a key twice counts its best rank only
            hit.ranks[retriever] = rank
            hit.score += weight / (k + rank)
    fused = sorted(hits.values(), key=lambda hit: (-hit.score, min(hit.ranks.values())))
    return fused[:limit] if limit is not None else fused
