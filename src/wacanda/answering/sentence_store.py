"""The answerer's sentence vectors in the database (``wacanda.sentence_vectors``).

Embedding a reply's candidate sentences was most of a reply's own time (``bench/answer_latency.py``),
so ingestion embeds each chunk's sentences once, as the answerer splits and prefixes them
(:func:`~wacanda.answering.extractive.embedded_sentences`, with the answerer's embedder: the
process's default model, whatever model the knowledge base searches with), and a reply reads them
in one query. What a reply still has to embed (a sentence stored before this table existed, or a
change of the process's model) is stored after it, so it is embedded once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from wacanda.answering.extractive import embedded_sentences
from wacanda.answering.models import SentenceVector
from wacanda.knowledge.embeddings import Embedder, Vectors

log = structlog.get_logger(__name__)

EMBED_BATCH = 32


def text_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()


def chunk_texts(chunks: Iterable[tuple[Sequence[str], str]]) -> list[str]:
    """The distinct texts the answerer embeds for these chunks (heading path, chunk text)."""
    texts = (embedded for path, text in chunks for _sentence, embedded in embedded_sentences(path, text))
    return list(dict.fromkeys(texts))


async def fetch(session: AsyncSession, model: str, texts: Sequence[str]) -> dict[str, Vectors]:
    """The stored vectors of ``texts`` (those that have one), in one query."""
    if not texts:
        return {}
    by_hash = {text_hash(text): text for text in texts}
    rows = await session.execute(
        select(SentenceVector.text_hash, SentenceVector.embedding).where(
            SentenceVector.model == model, SentenceVector.text_hash.in_(list(by_hash))
        )
    )
    return {by_hash[bytes(key)]: np.asarray(vector, dtype=np.float32) for key, vector in rows}


async def save(session: AsyncSession, model: str, vectors: Mapping[str, Vectors]) -> None:
    """Store vectors (an existing one is kept: same model and text, same vector). Keys go in
    sorted order so that two transactions storing overlapping sets cannot deadlock."""
    if not vectors:
        return
    keyed = sorted(((text_hash(text), vector) for text, vector in vectors.items()), key=lambda kv: kv[0])
    rows = [
        {"model": model, "text_hash": key, "embedding": np.asarray(vector, dtype=np.float32)}
        for key, vector in keyed
    ]
    await session.execute(insert(SentenceVector).on_conflict_do_nothing(), rows)


def embed(embedder: Embedder, texts: Sequence[str]) -> dict[str, Vectors]:
    """Embed ``texts`` as the answerer does (passages, batched); blocking, run it in a thread."""
    result: dict[str, Vectors] = {}
    for first in range(0, len(texts), EMBED_BATCH):
        batch = list(texts[first : first + EMBED_BATCH])
        result.update(zip(batch, embedder.embed_passages(batch), strict=True))
    return result


class SentenceStore:
    """The store as the answering pipeline sees it: one session (the reply's transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def fetch(self, model: str, texts: Sequence[str]) -> dict[str, Vectors]:
        return await fetch(self.session, model, texts)

    async def save(self, model: str, vectors: Mapping[str, Vectors]) -> None:
        """Best effort, in a savepoint: a failure costs the next reply an embedding, never this one."""
        if not vectors:
            return
        try:
            async with self.session.begin_nested():
                await save(self.session, model, vectors)
        except Exception:
            log.warning("wacanda.sentence_vectors_not_saved", exc_info=True, count=len(vectors))
