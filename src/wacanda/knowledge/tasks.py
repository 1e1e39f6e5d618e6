"""Ingestion jobs: one per uploaded document version, run by Wacanda's own worker."""

from __future__ import annotations

from wacanda.context import get_current
from wacanda.jobs import job
from wacanda.knowledge import service


@job("wacanda.ingest_document")
async def ingest_document(document_id: int, account_id: int) -> None:
    """Parse, chunk, embed and publish one document version (idempotent: a rerun starts over).

    Failures are recorded on the document (status ``error``), not retried: a file that failed to
    parse fails again.
    """
    context = get_current()
    await service.process_document(context.sessionmaker, context.embedder, document_id)
