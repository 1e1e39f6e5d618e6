"""Deferring jobs inside the caller's transaction.

procrastinate's jobs are rows; writing them through our own session with its SQL function
means a job exists if and only if the data it belongs to was committed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.audit import service as audit
from whatwut.kit.errors import Conflict, InvalidInput, NotFound
from whatwut.kit.pagination import decode_cursor, encode_cursor

DEFAULT_QUEUE = "default"

_DEFER = text(
    "SELECT unnest(procrastinate_defer_jobs_v1(ARRAY[ROW(:queue, :task_name, :priority, :lock, "
    ":queueing_lock, CAST(:args AS jsonb), :scheduled_at)::procrastinate_job_to_defer_v1]))"
)


async def defer(
    session: AsyncSession,
    task_name: str,
    args: dict[str, Any],
    *,
    queue: str = DEFAULT_QUEUE,
    priority: int = 0,
    lock: str | None = None,
    queueing_lock: str | None = None,
    scheduled_at: datetime | None = None,
) -> int:
    """Queue ``task_name(**args)``; the job is committed (or rolled back) with the session."""
    result = await session.execute(
        _DEFER,
        {
            "queue": queue,
            "task_name": task_name,
            "priority": priority,
            "lock": lock,
            "queueing_lock": queueing_lock,
            "args": json.dumps(args),
            "scheduled_at": scheduled_at,
        },
    )
    return int(result.scalar_one())


# --- Inspecting and retrying jobs (the admin API) ------------------------------------------------

JOB_STATUSES = ("todo", "doing", "succeeded", "failed", "cancelled", "aborted")


@dataclass(frozen=True)
class JobView:
    """A job as an administrator sees it; ``args`` is ``None`` unless the job is of their account."""

    id: int
    task_name: str
    queue_name: str
    status: str
    attempts: int
    account_id: int | None
    args: dict[str, Any] | None
    scheduled_at: datetime | None
    lock: str | None
    queueing_lock: str | None
    history: list[dict[str, Any]]


_JOBS = """
SELECT j.id, j.task_name, j.queue_name, j.status::text AS status, j.attempts, j.args, j.scheduled_at,
       j.lock, j.queueing_lock,
       CASE WHEN j.args->>'account_id' ~ '^[0-9]{1,18}$' THEN (j.args->>'account_id')::bigint END
           AS account_id,
       COALESCE((SELECT json_agg(json_build_object('type', e.type::text, 'at', e.at) ORDER BY e.id)
                   FROM procrastinate_events e WHERE e.job_id = j.id), '[]'::json) AS history
  FROM procrastinate_jobs j
 WHERE (NOT (j.args ? 'account_id') OR j.args->>'account_id' = ANY(CAST(:account_ids AS text[])))
"""


def _view(row: Any, account_ids: Sequence[int]) -> JobView:
    account_id = int(row.account_id) if row.account_id is not None else None
    return JobView(
        id=int(row.id),
        task_name=row.task_name,
        queue_name=row.queue_name,
        status=row.status,
        attempts=int(row.attempts),
        account_id=account_id,
        args=dict(row.args) if account_id is not None and account_id in account_ids else None,
        scheduled_at=row.scheduled_at,
        lock=row.lock,
        queueing_lock=row.queueing_lock,
        history=list(row.history),
    )


async def administered_account_ids(
    session: AsyncSession, user_id: int, token_account_id: int | None
) -> list[int]:
    """The accounts this user administers (only the token's account, for account-bound tokens)."""
    memberships = await accounts.accounts_of(session, user_id)
    return [
        account.id
        for account, role in memberships
        if role == "administrator" and (token_account_id is None or account.id == token_account_id)
    ]


async def list_jobs(
    session: AsyncSession,
    account_ids: Sequence[int],
    *,
    status: str | None,
    task_name: str | None = None,
    cursor: str | None = None,
    limit: int = 25,
) -> tuple[list[JobView], str | None]:
    """Newest first. Jobs of other accounts are invisible; instance jobs are listed without args."""
    sql = _JOBS
    params: dict[str, Any] = {"account_ids": [str(a) for a in account_ids], "limit": limit + 1}
    if status is not None:
        if status not in JOB_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(JOB_STATUSES)} or all", field="status")
        sql += " AND j.status = CAST(:status AS procrastinate_job_status)"
        params["status"] = status
    if task_name:
        sql += " AND j.task_name = :task_name"
        params["task_name"] = task_name
    if cursor:
        (before_id,) = decode_cursor(cursor, 1)
        if not isinstance(before_id, int):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        sql += " AND j.id < :before_id"
        params["before_id"] = before_id
    sql += " ORDER BY j.id DESC LIMIT :limit"
    rows = (await session.execute(text(sql), params)).all()
    views = [_view(row, account_ids) for row in rows[:limit]]
    next_cursor = encode_cursor(views[-1].id) if len(rows) > limit else None
    return views, next_cursor


async def get_job(
    session: AsyncSession, account_ids: Sequence[int], job_id: int, *, lock: bool = False
) -> JobView:
    sql = _JOBS + " AND j.id = :job_id" + (" FOR UPDATE OF j" if lock else "")
    row = (
        await session.execute(text(sql), {"account_ids": [str(a) for a in account_ids], "job_id": job_id})
    ).one_or_none()
    if row is None:
        raise NotFound("job not found", field="job_id")
    return _view(row, account_ids)


async def retry_failed_job(
    session: AsyncSession, account_ids: Sequence[int], job_id: int, *, actor_user_id: int
) -> JobView:
    """Put a failed job back in the queue for one more attempt, now; audited."""
    job = await get_job(session, account_ids, job_id, lock=True)
    if job.status != "failed":
        raise Conflict(f"only failed jobs can be retried; this one is {job.status}", field="job_id")
    await session.execute(
        text("SELECT procrastinate_retry_job_v2(:job_id, now(), NULL, NULL, NULL)"), {"job_id": job_id}
    )
    # Wake idle workers now (retrying updates the row, and only inserts notify by themselves).
    wake = json.dumps({"type": "job_inserted", "job_id": job_id})
    await session.execute(
        text("SELECT pg_notify('procrastinate_any_queue_v1', :wake), pg_notify(:channel, :wake)"),
        {"wake": wake, "channel": f"procrastinate_queue_v1#{job.queue_name}"},
    )
    targets = [job.account_id] if job.account_id is not None else list(account_ids)
    for account_id in targets:
        await audit.record(
            session, account_id, actor_user_id, "job.retried", "job", job_id, {"task": job.task_name}
        )
    return await get_job(session, account_ids, job_id)
