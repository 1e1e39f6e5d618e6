"""Publishing events: a row plus ``pg_notify`` in the caller's transaction.

PostgreSQL delivers a notification only when its transaction commits, so clients never hear
of something that was rolled back (zulip's ``send_event_on_commit``, for free).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select
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


@dataclass(frozen=True)
class PublishedEvent:
    """An event as it leaves the database: immutable, so one copy is shared by every subscriber."""

    id: int
    account_id: int
    event_type: str
    payload: dict[str, Any]
    inbox_id: int | None
    created_at: datetime

    @classmethod
    def of(cls, event: Event) -> PublishedEvent:
        return cls(
            id=event.id,
            account_id=event.account_id,
            event_type=event.event_type,
            payload=dict(event.payload),
            inbox_id=event.inbox_id,
            created_at=event.created_at,
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
    # One round trip: the row and its notification in one statement (a data-modifying CTE runs
    # whole, in the caller's transaction, so the notification still goes out only on commit).
    row = (
        insert(Event)
        .values(account_id=account_id, event_type=event_type, payload=payload, inbox_id=inbox_id)
        .returning(Event.id)
        .cte("published")
    )
    notified = select(row.c.id, func.pg_notify(CHANNEL, func.concat(f"{account_id}:", row.c.id)))
    return int((await session.execute(notified)).scalar_one())


def parse_notification(payload: str) -> tuple[int, int] | None:
    """``"{account_id}:{event_id}"`` → the two ids; anything else is ignored, not fatal."""
    account, sep, event = payload.partition(":")
    if not sep or not account.isdigit() or not event.isdigit():
        return None
    return int(account), int(event)


async def events_by_ids(session: AsyncSession, ids: Sequence[int]) -> dict[int, PublishedEvent]:
    if not ids:
        return {}
    rows = await session.execute(select(Event).where(Event.id.in_(list(ids))))
    return {event.id: PublishedEvent.of(event) for event in rows.scalars()}


async def events_after(
    session: AsyncSession, account_id: int, after_id: int, *, limit: int
) -> list[PublishedEvent]:
    """The account's events newer than ``after_id``, oldest first (the replay behind Last-Event-ID)."""
    rows = await session.execute(
        select(Event)
        .where(Event.account_id == account_id, Event.id > after_id)
        .order_by(Event.id)
        .limit(limit)
    )
    return [PublishedEvent.of(event) for event in rows.scalars()]


async def latest_event_id(session: AsyncSession, account_id: int) -> int | None:
    result = await session.execute(select(func.max(Event.id)).where(Event.account_id == account_id))
    value = result.scalar_one_or_none()
    return int(value) if value is not None else None


async def prune_events(session: AsyncSession, *, older_than: datetime, batch_size: int = 10_000) -> int:
    """Delete one batch of events older than ``older_than``; returns how many went.

    Batches keep each transaction short on a busy table; the job loops until nothing is left.
    """
    doomed = select(Event.id).where(Event.created_at < older_than).limit(batch_size).scalar_subquery()
    result = await session.execute(delete(Event).where(Event.id.in_(doomed)))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
