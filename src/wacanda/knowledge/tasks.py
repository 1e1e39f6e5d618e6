"""Knowledge-base jobs, run by Wacanda's own worker: ingestion (one per uploaded document
version) and re-embedding (one per change of a knowledge base's model)."""

from __future__ import annotations

from wacanda import jobs
from wacanda.context import get_current
from wacanda.db import transaction
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
