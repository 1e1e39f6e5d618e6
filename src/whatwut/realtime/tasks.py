"""Realtime housekeeping: the event log only needs to cover a client's reconnection window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog

from whatwut.jobs.registry import job_transaction, periodic_job
from whatwut.realtime import service

log = structlog.get_logger(__name__)

#: Events older than this cannot be replayed; a client away longer reloads its state.
KEEP_EVENTS = timedelta(days=7)


@periodic_job("realtime.prune_events", cron="23 * * * *")
async def prune_events(timestamp: int) -> None:
    cutoff = datetime.fromtimestamp(timestamp, UTC) - KEEP_EVENTS
    total = 0
    while True:
        async with job_transaction() as session:
            deleted = await service.prune_events(session, older_than=cutoff)
        total += deleted
        if deleted == 0:
            break
    log.info("realtime.events_pruned", deleted=total, before=cutoff.isoformat())
