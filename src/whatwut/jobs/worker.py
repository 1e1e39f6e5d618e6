"""Running jobs: in-process beside the web app (``serve``) or alone (``worker``).

The procrastinate app ``queue`` is process-wide, like the ``AppContext`` jobs read with
``get_current()``: a worker puts the real connector in place for as long as it runs
(``queue.replace_connector``), so one process runs at most one worker (with any concurrency).

Workers import ``TASK_MODULES`` and, for plugins and tests, the comma-separated modules in
``WHATWUT_EXTRA_TASK_MODULES`` (e.g. ``WHATWUT_EXTRA_TASK_MODULES=tests.job_tasks``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import socket

import structlog
from procrastinate.psycopg_connector import PsycopgConnector

from whatwut.context import AppContext, set_current
from whatwut.db.embedded import libpq_url
from whatwut.jobs.registry import queue
from whatwut.settings import Settings

log = structlog.get_logger(__name__)

#: Modules whose ``@job`` functions the worker must know; each domain with jobs adds its own.
TASK_MODULES: tuple[str, ...] = (
    "whatwut.jobs.tasks",
    "whatwut.realtime.tasks",
    "whatwut.conversations.tasks",
    "whatwut.channels.whatsapp.outbound_tasks",
    "whatwut.channels.whatsapp.cloud.tasks",
    "whatwut.bots.tasks",
)

#: Seconds a stopping worker waits for running jobs before aborting them (they run again later).
SHUTDOWN_GRACE_SECONDS = 10.0

_running = False


def task_modules(settings: Settings) -> list[str]:
    extra = [name.strip() for name in settings.extra_task_modules.split(",") if name.strip()]
    return [*TASK_MODULES, *extra]


def load_task_modules(settings: Settings) -> None:
    for module in task_modules(settings):
        importlib.import_module(module)


def connector_for(context: AppContext, *, max_size: int) -> PsycopgConnector:
    return PsycopgConnector(
        conninfo=libpq_url(context.database_url),
        min_size=1,
        max_size=max_size,
        kwargs={"application_name": "whatwut-worker"},
    )


async def run_worker(
    context: AppContext, *, concurrency: int, install_signal_handlers: bool, name: str | None = None
) -> None:
    """Run jobs until cancelled (or, standalone, until SIGINT/SIGTERM); running jobs finish first."""
    global _running
    if _running:
        raise RuntimeError("a job worker already runs in this process; raise its concurrency instead")
    _running = True
    try:
        load_task_modules(context.settings)
        # One connection per running job, one to LISTEN, one for the worker's own bookkeeping.
        with queue.replace_connector(connector_for(context, max_size=concurrency + 2)):
            async with queue.open_async():
                await queue.run_worker_async(
                    concurrency=concurrency,
                    name=name or f"{socket.gethostname()}:{os.getpid()}",
                    install_signal_handlers=install_signal_handlers,
                    fetch_job_polling_interval=context.settings.worker_poll_seconds,
                    abort_job_polling_interval=max(context.settings.worker_poll_seconds, 5.0),
                    shutdown_graceful_timeout=SHUTDOWN_GRACE_SECONDS,
                    listen_notify=True,
                    delete_jobs="never",
                )
    finally:
        _running = False


class InProcessWorker:
    """The worker ``whatwut serve`` runs as an asyncio task of the API process."""

    def __init__(self, context: AppContext) -> None:
        self._context = context
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if _running:
            log.warning("jobs.worker_already_running", detail="not starting a second worker in this process")
            return
        self._task = asyncio.create_task(self._run(), name="job-worker")

    async def _run(self) -> None:
        try:
            await run_worker(
                self._context,
                concurrency=self._context.settings.worker_concurrency,
                install_signal_handlers=False,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("jobs.worker_crashed")

    async def stop(self) -> None:
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None


async def run_worker_forever(settings: Settings, *, concurrency: int = 4) -> None:
    """``whatwut worker``: a standalone worker process."""
    context = AppContext.create(settings)
    set_current(context)
    try:
        await run_worker(context, concurrency=concurrency, install_signal_handlers=True)
    finally:
        set_current(None)
        await context.close()
