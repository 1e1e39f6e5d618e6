"""Jobs of the conversations domain."""

from __future__ import annotations

from whatwut.context import get_current
from whatwut.conversations import service
from whatwut.db.engine import transaction
from whatwut.jobs.registry import job, queue


@job(service.REOPEN_SNOOZED_JOB)
async def reopen_snoozed(timestamp: int | None = None, conversation_id: int | None = None) -> int:
    """Reopen snoozed conversations whose time has come.

    Runs every minute (``timestamp`` comes from the periodic schedule) and once more at each
    snooze's own time (``conversation_id``); either way it only touches what is due, so running
    it twice changes nothing.
    """
    async with transaction(get_current().sessionmaker) as session:
        return await service.reopen_due_snoozed(session, conversation_id=conversation_id)


queue.periodic(cron="* * * * *", periodic_id="every-minute")(queue.tasks[service.REOPEN_SNOOZED_JOB])
