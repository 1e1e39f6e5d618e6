"""The queue's own housekeeping: recover jobs of dead workers, forget old successes."""

from __future__ import annotations

import structlog

from whatwut.jobs.registry import periodic_job, queue

log = structlog.get_logger(__name__)

#: Succeeded jobs are kept this long (for inspection), then deleted; failed ones stay until handled.
KEEP_SUCCEEDED_HOURS = 72
#: A worker silent for this long is dead; its ``doing`` jobs are put back in the queue.
STALLED_AFTER_SECONDS = 60


@periodic_job("jobs.retry_stalled", cron="*/5 * * * *")
async def retry_stalled(timestamp: int) -> None:
    """Jobs of a worker that died mid-run would stay ``doing`` forever; this makes them run again."""
    manager = queue.job_manager
    for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
        log.warning("jobs.stalled_job_retried", job_id=stalled.id, task=stalled.task_name)
        await manager.retry_job(stalled)


@periodic_job("jobs.remove_old", cron="17 * * * *")
async def remove_old(timestamp: int) -> None:
    await queue.job_manager.delete_old_jobs(nb_hours=KEEP_SUCCEEDED_HOURS)
