"""API shapes of the job queue's admin view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from whatwut.kit.schemas import Output


class JobEventOut(Output):
    #: procrastinate's event type: deferred, started, deferred_for_retry, failed, succeeded, retried, ...
    type: str
    at: datetime


class JobOut(Output):
    id: int
    task_name: str
    queue_name: str
    #: todo | doing | succeeded | failed | cancelled | aborted
    status: str
    attempts: int
    account_id: int | None
    #: The job's arguments; ``null`` for jobs that belong to no account you administer.
    args: dict[str, Any] | None
    scheduled_at: datetime | None
    lock: str | None
    queueing_lock: str | None
    #: Every state change with its time: the retries and their backoff can be read here.
    history: list[JobEventOut]
