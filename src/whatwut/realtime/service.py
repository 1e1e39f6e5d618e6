"""Publishing events: a row plus ``pg_notify`` in the caller's transaction.

PostgreSQL delivers a notification only when its transaction commits, so clients never hear
of something that was rolled back (zulip's ``send_event_on_commit``, for free).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.realtime.models import Event

CHANNEL = "whatwut_events"

EVENT_TYPES = frozenset(
    {
        "message.created",
        "message.updated",
        "conversation.created",
        "conversation.updated",
        "conversation.status_changed",
        "assignee.changed",
        "presence.updated",
        "contact.created",
        "contact.updated",
        "job.failed",
    }
)


async def publish(
    session: AsyncSession,
    account_id: int,
    event_type: str,
    payload: dict[str, Any],
    *,
    inbox_id: int | None = None,
) -> int:
    """Record an event for the account and notify every listening process on commit."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = Event(account_id=account_id, event_type=event_type, payload=payload, inbox_id=inbox_id)
    session.add(event)
    await session.flush()
    await session.execute(select(func.pg_notify(CHANNEL, f"{account_id}:{event.id}")))
    return event.id
