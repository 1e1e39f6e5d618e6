"""One LISTEN connection per process, fanned out to this process's SSE subscribers.

Every API process runs one ``EventHub``: a dedicated psycopg connection does
``LISTEN whatwut_events``; each notification (``"{account_id}:{event_id}"``) is loaded from the
``events`` table once and copied into the bounded queue of every subscriber of that account. A
subscriber that falls behind is dropped, never the process: its client reconnects with
``Last-Event-ID`` and replays from the table. The same happens to every subscriber when the
LISTEN connection dies (notifications sent while it was down are lost to this process), and the
hub reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import psycopg
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from whatwut.db.embedded import libpq_url
from whatwut.realtime import service
from whatwut.realtime.service import CHANNEL, PublishedEvent

log = structlog.get_logger(__name__)

#: Events buffered per subscriber before it counts as too slow and is dropped.
SUBSCRIBER_QUEUE_SIZE = 1_000
#: Notifications loaded per query when many arrive at once.
LOAD_BATCH = 500
#: How often an idle LISTEN connection is checked for life (a silent network death hangs forever).
HEALTH_CHECK_SECONDS = 20.0


class Subscription:
    """One SSE client's view of the hub: a bounded queue of its account's events."""

    def __init__(self, account_id: int, maxsize: int) -> None:
        self.account_id = account_id
        self.closed_reason: str | None = None
        self._queue: asyncio.Queue[PublishedEvent | None] = asyncio.Queue(maxsize=maxsize)

    def offer(self, event: PublishedEvent) -> bool:
        """Queue without waiting; ``False`` when the subscriber is too slow (and is now closed)."""
        if self.closed_reason is not None:
            return True
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.close("too slow")
            return False
        return True

    def close(self, reason: str) -> None:
        """End the subscription; what it had buffered is dropped (the client replays from the table)."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def get(self, wait_seconds: float) -> PublishedEvent | None:
        """The next event, or ``None`` after ``wait_seconds`` or once closed."""
        try:
            return await asyncio.wait_for(self._queue.get(), wait_seconds)
        except TimeoutError:
            return None


class EventHub:
    def __init__(
        self,
        conninfo: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        queue_size: int = SUBSCRIBER_QUEUE_SIZE,
        max_backoff: float = 30.0,
    ) -> None:
        self._conninfo = conninfo
        self._sessionmaker = sessionmaker
        self._queue_size = queue_size
        self._max_backoff = max_backoff
        self._subscribers: defaultdict[int, set[Subscription]] = defaultdict(set)
        self._notifications: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        #: Set while LISTEN is active; streams wait for it so they do not miss what follows replay.
        self.listening = asyncio.Event()

    @classmethod
    def for_database(cls, database_url: str, sessionmaker: async_sessionmaker[AsyncSession]) -> EventHub:
        return cls(libpq_url(database_url), sessionmaker)

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever(), name="realtime-listen"),
            asyncio.create_task(self._dispatch_forever(), name="realtime-dispatch"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        self.listening.clear()
        self._close_all("server shutting down")

    def subscribe(self, account_id: int) -> Subscription:
        subscription = Subscription(account_id, self._queue_size)
        self._subscribers[account_id].add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        subscribers = self._subscribers.get(subscription.account_id)
        if subscribers is not None:
            subscribers.discard(subscription)
            if not subscribers:
                del self._subscribers[subscription.account_id]

    @property
    def subscriber_count(self) -> int:
        return sum(len(subscribers) for subscribers in self._subscribers.values())

    def _close_all(self, reason: str) -> None:
        for subscribers in list(self._subscribers.values()):
            for subscription in list(subscribers):
                subscription.close(reason)

    async def _listen_forever(self) -> None:
        backoff = 0.25
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name="whatwut-realtime"
                )
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    backoff = 0.25
                    log.info("realtime.listening", channel=CHANNEL)
                    while True:
                        async for notify in conn.notifies(timeout=HEALTH_CHECK_SECONDS):
                            self._notifications.put_nowait(notify.payload)
                        await conn.execute("SELECT 1")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                was_listening = self.listening.is_set()
                self.listening.clear()
                # Notifications sent while we were away are lost to this process: drop the streams so
                # their clients reconnect and replay from the events table.
                self._close_all("realtime connection lost")
                log.warning(
                    "realtime.listen_failed", error=repr(exc), retry_in=backoff, was_listening=was_listening
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _dispatch_forever(self) -> None:
        while True:
            payloads = [await self._notifications.get()]
            while len(payloads) < LOAD_BATCH and not self._notifications.empty():
                payloads.append(self._notifications.get_nowait())
            try:
                await self._dispatch(payloads)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A failed load loses these events for live clients; drop them so they replay.
                log.exception("realtime.dispatch_failed", error=repr(exc))
                self._close_all("realtime dispatch failed")
                await asyncio.sleep(0.5)

    async def _dispatch(self, payloads: list[str]) -> None:
        wanted: list[tuple[int, int]] = []
        for payload in payloads:
            parsed = service.parse_notification(payload)
            if parsed is None:
                log.warning("realtime.bad_notification", payload=payload[:100])
            elif parsed[0] in self._subscribers:
                wanted.append(parsed)
        if not wanted:
            return
        async with self._sessionmaker() as session:
            events = await service.events_by_ids(session, [event_id for _, event_id in wanted])
        # Commit order (the order notifications arrive in), not id order.
        for account_id, event_id in wanted:
            event = events.get(event_id)
            if event is None or event.account_id != account_id:
                continue
            for subscription in list(self._subscribers.get(account_id, ())):
                if not subscription.offer(event):
                    log.warning("realtime.subscriber_dropped", account_id=account_id, reason="too slow")
                    self.unsubscribe(subscription)
