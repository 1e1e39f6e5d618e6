"""Wacanda's job queue: procrastinate on its own tables in the ``wacanda`` schema (ADR 0006).

Jobs are deferred through the caller's session (``defer``), so a job exists if and only if the
document it processes was committed. Workers run in ``wacanda serve`` or ``wacanda worker``; the
CLI's ``ingest`` processes inline and needs no worker. Every job is idempotent, so the jobs of a
worker that died are simply run again (``retry_stalled``).
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable
from typing import Any, TypeVar

import procrastinate
import structlog
from procrastinate.psycopg_connector import PsycopgConnector
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from wacanda.db import JOBS_SEARCH_PATH, connect_args

F = TypeVar("F", bound=Callable[..., Any])
log = structlog.get_logger(__name__)
QUEUE = "wacanda"
TASK_MODULES = ("wacanda.knowledge.tasks", "wacanda.bot.tasks")

queue = procrastinate.App(connector=PsycopgConnector())

_DEFER = text(
    "SELECT unnest(wacanda.procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task_name, :priority, :lock,"
    " :queueing_lock, CAST(:args AS jsonb), NULL)::wacanda.procrastinate_job_to_defer_v1]))"
)


def job(name: str, *, retry: int = 0) -> Callable[[F], F]:
    def register(func: F) -> F:
        queue.task(name=name, retry=retry, queue=QUEUE)(func)
        return func

    return register


def periodic_job(name: str, *, cron: str) -> Callable[[F], F]:
    """A job every worker schedules on ``cron``; it runs once per tick however many workers run."""

    def register(func: F) -> F:
        task = queue.task(name=name, queue=QUEUE, queueing_lock=name)(func)
        queue.periodic(cron=cron, periodic_id=name)(task)
        return func

    return register


#: A worker silent for this long is dead; its ``doing`` jobs are put back in the queue.
STALLED_AFTER_SECONDS = 60


@periodic_job("wacanda.retry_stalled", cron="*/5 * * * *")
async def retry_stalled(timestamp: int) -> None:
    """Jobs of a worker that died mid-run would stay ``doing`` forever (an ingestion, a slice of a
    re-embedding or of an answer preparation); every job is idempotent, so they run again."""
    manager = queue.job_manager
    for stalled in await manager.get_stalled_jobs(seconds_since_heartbeat=STALLED_AFTER_SECONDS):
        log.warning("wacanda.stalled_job_retried", job_id=stalled.id, task=stalled.task_name)
        await manager.retry_job(stalled)


async def defer(
    session: AsyncSession,
    task_name: str,
    args: dict[str, Any],
    *,
    lock: str | None = None,
    queueing_lock: str | None = None,
    priority: int = 0,
) -> int:
    """Queue ``task_name(**args)``, committed (or rolled back) with ``session``.

    Jobs with the same ``lock`` run one at a time in the order they were deferred; a worker takes
    the highest ``priority`` first (then the oldest).
    """
    result = await session.execute(
        _DEFER,
        {
            "queue": QUEUE,
            "task_name": task_name,
            "args": json.dumps(args),
            "lock": lock,
            "queueing_lock": queueing_lock,
            "priority": priority,
        },
    )
    return int(result.scalar_one())


async def run_worker(database_url: str, *, concurrency: int, install_signal_handlers: bool) -> None:
    """Run Wacanda's jobs until cancelled; the caller has set the current ``WacandaContext``."""
    import importlib

    for module in TASK_MODULES:
        importlib.import_module(module)
    connector = PsycopgConnector(
        conninfo=database_url,
        min_size=1,
        max_size=concurrency + 2,
        kwargs=connect_args("wacanda-worker", JOBS_SEARCH_PATH),
    )
    with queue.replace_connector(connector):
        async with queue.open_async():
            await queue.run_worker_async(
                queues=[QUEUE],
                concurrency=concurrency,
                name=f"wacanda:{socket.gethostname()}:{os.getpid()}",
                install_signal_handlers=install_signal_handlers,
                fetch_job_polling_interval=5.0,
                listen_notify=True,
                delete_jobs="successful",
            )
