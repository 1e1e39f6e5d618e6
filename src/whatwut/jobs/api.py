"""The job queue's admin routes: what failed for good, and putting it back in the queue.

Jobs belong to the instance, not to one account (one worker pool serves every account), so these
routes live under ``/api/v1/admin/jobs`` rather than under an account. They are open to users who
administer at least one account; each sees the jobs of the accounts they administer (by the job's
``account_id`` argument) and the instance's own housekeeping jobs without their arguments, never
another account's jobs, so the account isolation holds here too.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from whatwut.accounts.auth import CurrentPrincipal
from whatwut.jobs import service
from whatwut.jobs.schemas import JobOut
from whatwut.kit.deps import DbSession
from whatwut.kit.errors import NotPermitted
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(prefix="/api/v1/admin/jobs", tags=["admin: jobs"])


async def administered_accounts(principal: CurrentPrincipal, session: DbSession) -> list[int]:
    account_ids = await service.administered_account_ids(
        session, principal.user.id, principal.token.account_id
    )
    if not account_ids:
        raise NotPermitted("only administrators of an account can see the job queue")
    return account_ids


AdministeredAccounts = Annotated[list[int], Depends(administered_accounts)]


@router.get("", summary="List jobs (by default the failed ones, which need an administrator)")
async def list_jobs(
    account_ids: AdministeredAccounts,
    session: DbSession,
    status: Literal["todo", "doing", "succeeded", "failed", "cancelled", "aborted", "all"] = "failed",
    task: Annotated[str | None, Query(max_length=255, description="only this task name")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[JobOut]:
    jobs, next_cursor = await service.list_jobs(
        session,
        account_ids,
        status=None if status == "all" else status,
        task_name=task,
        cursor=cursor,
        limit=limit,
    )
    return Page(
        data=[JobOut.model_validate(asdict(job)) for job in jobs], meta=PageMeta(next_cursor=next_cursor)
    )


@router.post("/{job_id}/retry", summary="Queue a failed job again, for one more attempt now")
async def retry_job(
    account_ids: AdministeredAccounts,
    principal: CurrentPrincipal,
    session: DbSession,
    job_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> JobOut:
    job = await service.retry_failed_job(session, account_ids, job_id, actor_user_id=principal.user.id)
    return JobOut.model_validate(asdict(job))
