"""Wacanda's job queue: procrastinate on its own tables in the ``wacanda`` schema (ADR 0006).

Jobs are deferred through the caller's session (``defer``), so a job exists if and only if the
document it processes was committed. Workers run in ``wacanda serve`` or ``wacanda worker``; the
CLI's ``ingest`` processes inline and needs no worker. Every job is idempotent, so the jobs of a
worker that died are simply run again (``retry_stalled``).

Customers' replies have a queue of their own with its own workers (``REPLIES_QUEUE``): a reply
never waits behind an upload's ingestion, a re-embedding or an answer preparation, which can each
take minutes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
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
QUEUE = "wacanda"  # knowledge-base work: ingestion, preparation, re-embedding, upkeep
REPLIES_QUEUE = "wacanda_replies"  # answering customers' messages
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
    queue_name: str = QUEUE,
) -> int:
    """Queue ``task_name(**args)`` on ``queue_name``, committed (or rolled back) with ``session``.

    Jobs with the same ``lock`` run one at a time in the order they were deferred; a worker takes
    the highest ``priority`` first (then the oldest).
    """
    result = await session.execute(
        _DEFER,
        {
            "queue": queue_name,
            "task_name": task_name,
            "args": json.dumps(args),
            "lock": lock,
            "queueing_lock": queueing_lock,
            "priority": priority,
        },
    )
    return int(result.scalar_one())


async def run_worker(
    database_url: str, *, concurrency: int, reply_concurrency: int, install_signal_handlers: bool
) -> None:
    """Run Wacanda's jobs until cancelled (or, with ``install_signal_handlers``, until SIGINT or
    SIGTERM); the caller has set the current ``WacandaContext``.

    Two workers share one pool: ``concurrency`` slots for the knowledge-base queue and
    ``reply_concurrency`` for the replies queue, so a reply is taken as soon as it arrives.
    """
    import importlib

    for module in TASK_MODULES:
        importlib.import_module(module)
    connector = PsycopgConnector(
        conninfo=database_url,
        min_size=1,
        max_size=concurrency + reply_concurrency + 2,
        kwargs=connect_args("wacanda-worker", JOBS_SEARCH_PATH),
    )
    name = f"wacanda:{socket.gethostname()}:{os.getpid()}"
    with queue.replace_connector(connector):
        async with queue.open_async():
            workers = [
                asyncio.create_task(_work(name, QUEUE, concurrency)),
                asyncio.create_task(_work(f"{name}:replies", REPLIES_QUEUE, reply_concurrency)),
            ]

            stopping = False

            def stop() -> None:
                # Once only: procrastinate stops gracefully on the first cancel (running jobs
                # finish), a second one would cut that short.
                nonlocal stopping
                if not stopping:
                    stopping = True
                    for worker in workers:
                        worker.cancel()

            if install_signal_handlers:
                loop = asyncio.get_running_loop()
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(signum, stop)
            try:
                await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
            finally:
                # A signal, a worker that crashed or our caller's cancel: stop the other too,
                # and keep the pool open until both are done (``gather`` would not wait).
                stop()
                await asyncio.wait(workers)
            for worker in workers:
                if not worker.cancelled() and (error := worker.exception()) is not None:
                    raise error


async def _work(name: str, queue_name: str, concurrency: int) -> None:
    await queue.run_worker_async(
        queues=[queue_name],
        concurrency=concurrency,
        name=name,
        install_signal_handlers=False,
        fetch_job_polling_interval=5.0,
        listen_notify=True,
        delete_jobs="successful",
    )
