"""One client's event stream: replay after ``Last-Event-ID``, then live events, for its eyes only.

The subscription starts *before* the replay query, so an event committed in between arrives
twice (once from each) and is sent once; nothing falls between the two. Ids come from a sequence
and are taken before commit, so two transactions can commit out of id order: live events are sent
in commit order and an older id arriving late is still delivered. The replay after a reconnect
reads ``id > Last-Event-ID``, so an event whose transaction was still open when the client
disconnected and whose id is below the client's last one is the one case it misses (a window of
one transaction's duration).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sse_starlette import ServerSentEvent

from whatwut.accounts import service as accounts
from whatwut.inboxes import service as inboxes
from whatwut.realtime import service
from whatwut.realtime.hub import EventHub
from whatwut.realtime.service import PublishedEvent

log = structlog.get_logger(__name__)

#: Most events replayed on reconnect; beyond it the client is told to reload (``stream.resync``).
REPLAY_LIMIT = 500
#: How long a stream trusts what it knows of the member's role and inboxes before asking again.
ACCESS_TTL_SECONDS = 30.0
#: How long a new stream waits for the process's LISTEN connection before giving up.
LISTEN_WAIT_SECONDS = 10.0
#: The reconnection delay browsers are told to use (milliseconds).
RETRY_MS = 2_000


@dataclass
class Viewer:
    """Who is watching: decides, event by event, what they may see."""

    account_id: int
    user_id: int
    role: str
    inbox_ids: frozenset[int] | None  # None: every inbox
    checked_at: float

    def may_see(self, event: PublishedEvent) -> bool:
        if event.account_id != self.account_id:
            return False
        if event.inbox_id is None or self.inbox_ids is None:
            return True
        return event.inbox_id in self.inbox_ids


async def load_viewer(session: AsyncSession, account_id: int, user_id: int) -> Viewer | None:
    """The member's current access, or ``None`` if they are no longer in the account."""
    membership = await accounts.get_membership(session, account_id, user_id)
    if membership is None:
        return None
    inbox_ids = await inboxes.accessible_inbox_ids(session, account_id, user_id, membership.role)
    return Viewer(
        account_id=account_id,
        user_id=user_id,
        role=membership.role,
        inbox_ids=frozenset(inbox_ids) if inbox_ids is not None else None,
        checked_at=time.monotonic(),
    )


def to_sse(event: PublishedEvent) -> ServerSentEvent:
    return ServerSentEvent(
        data=json.dumps(event.payload, separators=(",", ":"), default=str),
        event=event.event_type,
        id=str(event.id),
    )


async def event_stream(
    hub: EventHub,
    sessionmaker: async_sessionmaker[AsyncSession],
    viewer: Viewer,
    last_event_id: int | None,
    *,
    replay_limit: int = REPLAY_LIMIT,
) -> AsyncIterator[ServerSentEvent]:
    subscription = hub.subscribe(viewer.account_id)
    try:
        if not hub.listening.is_set():
            try:
                await asyncio.wait_for(hub.listening.wait(), LISTEN_WAIT_SECONDS)
            except TimeoutError:
                log.warning("realtime.stream_not_listening", account_id=viewer.account_id)
                return
        # From here on every committed event reaches this stream (live or replayed).
        yield ServerSentEvent(comment="connected", retry=RETRY_MS)
        replayed: set[int] = set()
        if last_event_id is not None:
            async with sessionmaker() as session:
                missed = await service.events_after(
                    session, viewer.account_id, last_event_id, limit=replay_limit + 1
                )
                latest = await service.latest_event_id(session, viewer.account_id) if missed else None
            if len(missed) > replay_limit:
                # Too far behind to replay: move the cursor to now and let the client reload its state.
                yield ServerSentEvent(
                    data=json.dumps({"reason": "too many missed events; reload"}),
                    event="stream.resync",
                    id=str(latest),
                )
                replayed = {event.id for event in missed}
            else:
                for missed_event in missed:
                    replayed.add(missed_event.id)
                    if viewer.may_see(missed_event):
                        yield to_sse(missed_event)
        while True:
            if time.monotonic() - viewer.checked_at > ACCESS_TTL_SECONDS:
                async with sessionmaker() as session:
                    fresh = await load_viewer(session, viewer.account_id, viewer.user_id)
                if fresh is None:
                    log.info("realtime.stream_revoked", account_id=viewer.account_id, user_id=viewer.user_id)
                    return
                viewer = fresh
            event = await subscription.get(ACCESS_TTL_SECONDS)
            if event is None:
                if subscription.closed_reason is not None:
                    log.info("realtime.stream_closed", reason=subscription.closed_reason)
                    return
                continue
            if event.id in replayed:
                replayed.discard(event.id)
                continue
            if viewer.may_see(event):
                yield to_sse(event)
    finally:
        hub.unsubscribe(subscription)
