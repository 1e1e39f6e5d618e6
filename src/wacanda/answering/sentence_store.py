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
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

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


_T = TypeVar("_T")


class AnswererStore(Generic[_T]):
    """One kind of the answerer's stored data as the pipeline sees it: one session (the reply's
    transaction), read in one query, written best effort."""

    def __init__(
        self,
        session: AsyncSession,
        fetch: Callable[[AsyncSession, str, Sequence[str]], Awaitable[dict[str, _T]]],
        save: Callable[[AsyncSession, str, Mapping[str, _T]], Awaitable[None]],
        name: str,
    ) -> None:
        self.session = session
        self._fetch, self._save, self._name = fetch, save, name

    async def fetch(self, model: str, texts: Sequence[str]) -> dict[str, _T]:
        return await self._fetch(self.session, model, texts)

    async def save(self, model: str, values: Mapping[str, _T]) -> None:
        """Best effort, in a savepoint: a failure costs a later reply a computation, never this one."""
        if not values:
            return
        try:
            async with self.session.begin_nested():
                await self._save(self.session, model, values)
        except Exception:
            log.warning(f"wacanda.{self._name}_not_saved", exc_info=True, count=len(values))


class SentenceStore(AnswererStore[Vectors]):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, fetch, save, "sentence_vectors")
