"""HTTP routes of the audit domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from whatwut.accounts.auth import AccountAdmin
from whatwut.audit import service
from whatwut.audit.schemas import AuditLogOut
from whatwut.kit.deps import DbSession
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(tags=["audit"])


@router.get("/api/v1/accounts/{account_id}/audit_logs", summary="The account's audit log, newest first")
async def list_audit_logs(
    admin: AccountAdmin,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
    action: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[AuditLogOut]:
    logs, next_cursor = await service.list_logs(
        session, admin.account_id, cursor=cursor, limit=limit, action=action
    )
    return Page(
        data=[AuditLogOut.model_validate(log) for log in logs], meta=PageMeta(next_cursor=next_cursor)
    )
