"""Where every domain registers its jobs; the worker and ``defer`` share these names.

Domains write ``@job("conversations.reopen_snoozed")`` in their ``tasks.py``; a job takes only
JSON-able keyword arguments and must be idempotent (it runs at least once). The queue's real
connector is put in place by the worker (``queue.replace_connector``) once the database is known.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import procrastinate
from procrastinate.psycopg_connector import PsycopgConnector

F = TypeVar("F", bound=Callable[..., Any])

queue = procrastinate.App(connector=PsycopgConnector())

#: Exponential backoff: 2s, 4s, 8s, ... up to 10 attempts, then the job stays ``failed``.
DEFAULT_RETRY = procrastinate.RetryStrategy(max_attempts=10, exponential_wait=2)


def job(
    name: str, *, retry: procrastinate.RetryStrategy | int = DEFAULT_RETRY, queue_name: str = "default"
) -> Callable[[F], F]:
    def register(func: F) -> F:
        queue.task(name=name, retry=retry, queue=queue_name)(func)
        return func

    return register
