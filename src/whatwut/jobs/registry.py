"""Where every domain registers its jobs; the worker and ``defer`` share these names.

Domains write ``@job("conversations.reopen_snoozed")`` in their ``tasks.py``; a job takes only
JSON-able keyword arguments and must be idempotent (it runs at least once). A job that touches an
account's data takes an ``account_id`` argument: the admin job list shows an administrator only
the jobs of accounts they administer. The queue's real connector is put in place by the worker
(``queue.replace_connector``) once the database is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import procrastinate
import procrastinate.jobs
from procrastinate.psycopg_connector import PsycopgConnector
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.context import get_current
from whatwut.db.engine import transaction

F = TypeVar("F", bound=Callable[..., Any])

queue = procrastinate.App(connector=PsycopgConnector())

#: Exponential backoff: 2s, 4s, 8s, ... up to 10 attempts, then the job stays ``failed``.
DEFAULT_RETRY = procrastinate.RetryStrategy(max_attempts=10, exponential_wait=2)

Retry = procrastinate.BaseRetryStrategy | int


@dataclass(frozen=True)
class Backoff(procrastinate.BaseRetryStrategy):
    """Exponential backoff with a fractional base: waits ``base_seconds * factor ** n`` before retry n+1.

    procrastinate's ``RetryStrategy`` takes whole seconds only; this one also serves jobs that must
    retry quickly (and tests). ``max_attempts`` counts every run, the first included.
    """

    max_attempts: int
    base_seconds: float = 2.0
    factor: float = 2.0
    max_seconds: float = 3600.0

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if job.attempts + 1 >= self.max_attempts:
            return None
        wait = min(self.base_seconds * self.factor**job.attempts, self.max_seconds)
        return procrastinate.RetryDecision(retry_at=datetime.now(UTC) + timedelta(seconds=wait))


def job(name: str, *, retry: Retry = DEFAULT_RETRY, queue_name: str = "default") -> Callable[[F], F]:
    def register(func: F) -> F:
        queue.task(name=name, retry=retry, queue=queue_name)(func)
        return func

    return register


def periodic_job(
    name: str,
    *,
    cron: str,
    retry: Retry = DEFAULT_RETRY,
    queue_name: str = "default",
) -> Callable[[F], F]:
    """A job every worker schedules on ``cron``; it runs once per tick however many workers there are.

    The function receives ``timestamp`` (the tick, in Unix seconds).
    """

    def register(func: F) -> F:
        task = queue.task(name=name, retry=retry, queue=queue_name, queueing_lock=name)(func)
        queue.periodic(cron=cron, periodic_id=name)(task)
        return func

    return register


@asynccontextmanager
async def job_transaction() -> AsyncIterator[AsyncSession]:
    """A job body's unit of work: committed when the block ends, rolled back (and retried) on error.

    Keep a job's effects inside one such block, so a retry never finds half of them done.
    """
    async with transaction(get_current().sessionmaker) as session:
        yield session
