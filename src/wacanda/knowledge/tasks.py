"""Knowledge-base jobs, run by Wacanda's own worker: ingestion (one per uploaded document
version), the answerer's preparation of a document that went live, and re-embedding (one per
change of a knowledge base's model)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from wacanda import jobs
from wacanda.context import get_current
from wacanda.db import transaction
from wacanda.jobs import job
from wacanda.knowledge import service
from wacanda.knowledge.models import Document


@job("wacanda.ingest_document")
async def ingest_document(document_id: int, account_id: int) -> None:
    """Parse, chunk, embed and publish one document version (idempotent: a rerun starts over).

    Failures are recorded on the document (status ``error``), not retried: a file that failed to
    parse fails again.
    """
    context = get_current()

    async def prepare_when_live(session: AsyncSession, document: Document) -> None:
        await defer_preparation(session, document.id, account_id)

    await service.process_document(
        context.sessionmaker, context.embedder, document_id, on_live=prepare_when_live
    )


# Behind every upload and re-embedding: the document is already searchable, and a reply computes
# what it lacks on its own.
PREPARE_PRIORITY = -10
PREPARE_BATCHES_PER_JOB = 2  # about 6 s of embedding: a reply or an upload waits at most that


async def defer_preparation(session: AsyncSession, document_id: int, account_id: int) -> None:
    await jobs.defer(
        session,
        "wacanda.prepare_answers",
        {"document_id": document_id, "account_id": account_id},
        priority=PREPARE_PRIORITY,
    )


@job("wacanda.prepare_answers")
async def prepare_answers(document_id: int, account_id: int) -> None:
    """Store what the answerer reads for a document that went live (sentence vectors, latent
    terms), a slice of batches per job, the rest queued anew behind whatever arrived meanwhile."""
    context = get_current()
    run = await service.prepare_answers(
        context.sessionmaker, context.embedder, document_id, max_batches=PREPARE_BATCHES_PER_JOB
    )
    if run.more:
        async with transaction(context.sessionmaker) as session:
            await defer_preparation(session, document_id, account_id)


@job("wacanda.reembed")
async def reembed(reembedding_id: int, account_id: int) -> None:
    """Embed a knowledge base anew with its new model and switch to it, a slice of batches per job
    (resumable: a rerun embeds only what is missing). A failure is recorded on the re-embedding;
    ``POST …/embedding-model`` with the same model retries it."""
    context = get_current()
    run = await service.run_reembedding(
        context.sessionmaker,
        context.embedder,
        reembedding_id,
        max_batches=context.settings.reembed_batches_per_job,
    )
    if run.more:
        # The rest in a new job, queued behind the uploads that arrived meanwhile. Deferred while
        # this job is still ``doing``, so nobody takes the re-embedding for orphaned in between.
        async with transaction(context.sessionmaker) as session:
            await jobs.defer(
                session, "wacanda.reembed", {"reembedding_id": reembedding_id, "account_id": account_id}
            )
