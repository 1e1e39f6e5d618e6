"""Jobs of the WhatsApp outbound side: deliver a reply, send a read receipt.

Both are idempotent (see :mod:`whatwut.channels.whatsapp.outbound`). Delivery retries with
exponential backoff (``WHATSAPP_SEND_RETRY_SECONDS``, doubling, ``WHATSAPP_SEND_MAX_ATTEMPTS``
runs in all); its last attempt marks the message ``failed`` before the job itself fails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import procrastinate
import procrastinate.jobs
from procrastinate import JobContext

from whatwut.channels.whatsapp import outbound
from whatwut.context import get_current
from whatwut.jobs.registry import Backoff, queue

#: Cap on one wait between attempts, whatever the base.
MAX_WAIT_SECONDS = 15 * 60


class SendBackoff(procrastinate.BaseRetryStrategy):
    """Exponential backoff read from the settings when a run fails (not frozen at import)."""

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, outbound.GaveUp):
            return None
        settings = get_current().settings
        if job.attempts + 1 >= settings.whatsapp_send_max_attempts:
            return None
        wait = min(settings.whatsapp_send_retry_seconds * 2**job.attempts, MAX_WAIT_SECONDS)
        return procrastinate.RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=wait))


@queue.task(name=outbound.DELIVER_JOB, retry=SendBackoff(), pass_context=True)
async def deliver_message(context: JobContext, account_id: int, message_id: int) -> str:
    """Send a pending WhatsApp reply (skipped when it was already sent)."""
    attempts = context.job.attempts if context.job is not None else 0
    final = attempts + 1 >= get_current().settings.whatsapp_send_max_attempts
    try:
        outcome = await outbound.deliver_message(
            get_current(), account_id=account_id, message_id=message_id, final_attempt=final
        )
    except outbound.GaveUp:
        raise
    except Exception:
        if final:
            await outbound.mark_failed(
                get_current(),
                account_id=account_id,
                message_id=message_id,
                reason="WhatWut could not send this message (an internal error; the server log has details)",
            )
        raise
    return outcome.result


@queue.task(name=outbound.MARK_READ_JOB, retry=Backoff(max_attempts=5, base_seconds=2.0))
async def mark_read(account_id: int, conversation_id: int, message_id: int) -> bool:
    """Blue ticks for the customer: their messages up to ``message_id`` were read by an agent."""
    return await outbound.mark_read(
        get_current(), account_id=account_id, conversation_id=conversation_id, message_id=message_id
    )
