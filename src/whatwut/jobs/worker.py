"""Running jobs: in-process beside the web app (``serve``) or alone (``worker``)."""

from __future__ import annotations

import importlib

from procrastinate.psycopg_connector import PsycopgConnector

from whatwut.context import AppContext, set_current
from whatwut.db.embedded import libpq_url
from whatwut.jobs.registry import queue
from whatwut.settings import Settings

#: Modules whose ``@job`` functions the worker must know; each domain with jobs adds its own.
TASK_MODULES: tuple[str, ...] = ()


def load_task_modules() -> None:
    for module in TASK_MODULES:
        importlib.import_module(module)


def connector_for(context: AppContext) -> PsycopgConnector:
    return PsycopgConnector(conninfo=libpq_url(context.database_url), min_size=1, max_size=4)


async def run_worker_forever(settings: Settings, *, concurrency: int = 4) -> None:
    context = AppContext.create(settings)
    set_current(context)
    load_task_modules()
    try:
        with queue.replace_connector(connector_for(context)):
            async with queue.open_async():
                await queue.run_worker_async(concurrency=concurrency, install_signal_handlers=True)
    finally:
        await context.close()
