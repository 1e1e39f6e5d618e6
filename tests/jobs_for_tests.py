"""Real jobs that exist only for the tests; workers import them via ``WHATWUT_EXTRA_TASK_MODULES``.

Each run is recorded in ``test_job_runs`` and each effect in ``test_job_effects`` (its key is the
primary key), tables the tests create in their own database.
"""

from __future__ import annotations

from sqlalchemy import text

from whatwut.jobs.registry import Backoff, job, job_transaction

EFFECTS_DDL = (
    "CREATE TABLE IF NOT EXISTS test_job_effects (key text PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS test_job_runs (id bigserial PRIMARY KEY, key text NOT NULL, "
    "at timestamptz NOT NULL DEFAULT clock_timestamp())",
)


async def _record(key: str) -> tuple[int, bool]:
    """Record this run and the effect (once per key) in one transaction; returns (runs so far, new?)."""
    async with job_transaction() as session:
        await session.execute(text("INSERT INTO test_job_runs (key) VALUES (:key)"), {"key": key})
        inserted = await session.execute(
            text("INSERT INTO test_job_effects (key) VALUES (:key) ON CONFLICT DO NOTHING"), {"key": key}
        )
        runs = await session.execute(
            text("SELECT count(*) FROM test_job_runs WHERE key = :key"), {"key": key}
        )
        return int(runs.scalar_one()), bool(inserted.rowcount)  # type: ignore[attr-defined]


@job("tests.record_effect")
async def record_effect(key: str, account_id: int | None = None) -> None:
    await _record(key)


@job("tests.crash_after_effect_once", retry=Backoff(max_attempts=3, base_seconds=0.05))
async def crash_after_effect_once(key: str) -> None:
    """Commits its effect, then dies the first time: the retry must not repeat the effect."""
    runs, _new = await _record(key)
    if runs == 1:
        raise RuntimeError("worker lost after the effect was committed")


@job("tests.always_fails", retry=Backoff(max_attempts=3, base_seconds=0.4))
async def always_fails(key: str, account_id: int) -> None:
    async with job_transaction() as session:
        await session.execute(text("INSERT INTO test_job_runs (key) VALUES (:key)"), {"key": key})
    raise RuntimeError("the remote service is down")
