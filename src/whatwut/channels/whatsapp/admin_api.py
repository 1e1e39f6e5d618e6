"""Routes of the WhatsApp Cloud API admin actions: check the connection, sync and list templates."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.channels.whatsapp import connection, templates
from whatwut.channels.whatsapp.admin_schemas import ConnectionCheckOut, TemplateOut, TemplateSyncOut
from whatwut.channels.whatsapp.graph import GraphError, describe
from whatwut.inboxes import service as inboxes
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import InvalidInput, WhatWutError
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(prefix="/api/v1/accounts/{account_id}/inboxes/{inbox_id}/whatsapp", tags=["whatsapp"])

InboxId = Annotated[int, Path(ge=1, le=2**63 - 1)]
TemplateStatus = Literal["APPROVED", "PENDING", "REJECTED", "PAUSED", "DISABLED", "IN_APPEAL"]


class GraphUnavailable(WhatWutError):
    """Meta was throttling or down; the same request can succeed later."""

    status_code = 502
    title = "Bad gateway"
    type_slug = "bad-gateway"


def _graph_problem(exc: GraphError) -> WhatWutError:
    if exc.retryable:
        return GraphUnavailable(describe(exc), field="inbox_id")
    field = "channel.access_token" if exc.code == 190 else "channel.business_account_id"
    return InvalidInput(describe(exc), field=field)


@router.post(
    "/check",
    summary="Check the connection: call Meta with the inbox's token (administrators)",
    description="Answers 200 either way: `ok: false` with Meta's reason when the token or number is refused.",
)
async def check_connection(
    admin: AccountAdmin, inbox_id: InboxId, session: DbSession, context: Context
) -> ConnectionCheckOut:
    result = await connection.check_connection(
        session, context, admin.account_id, inbox_id, actor_user_id=admin.user.id
    )
    return ConnectionCheckOut(
        ok=result.ok,
        status=result.status,
        phone=result.phone,
        error=result.error,
        code=result.code,
        retryable=result.retryable,
    )


@router.post(
    "/templates/sync",
    summary="Fetch the WhatsApp Business Account's message templates from Meta (administrators)",
    description="422 when Meta refuses the token or account id, 502 when Meta is unavailable.",
)
async def sync_templates(
    admin: AccountAdmin, inbox_id: InboxId, session: DbSession, context: Context
) -> TemplateSyncOut:
    try:
        result = await templates.sync_templates(
            session, context, admin.account_id, inbox_id, actor_user_id=admin.user.id
        )
    except GraphError as exc:
        raise _graph_problem(exc) from None
    return TemplateSyncOut(synced=result.synced, approved=result.approved, removed=result.removed)


@router.get("/templates", summary="The inbox's synced message templates")
async def list_templates(
    member: AccountMember,
    inbox_id: InboxId,
    session: DbSession,
    status: TemplateStatus | None = None,
    cursor: Annotated[str | None, Query(max_length=1024)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[TemplateOut]:
    inbox = await inboxes.get_visible_inbox(
        session, member.account_id, inbox_id, user_id=member.user.id, role=member.role
    )
    rows, next_cursor = await templates.list_templates(
        session, member.account_id, inbox.id, status=status, cursor=cursor, limit=limit
    )
    return Page(
        data=[TemplateOut.model_validate(row) for row in rows], meta=PageMeta(next_cursor=next_cursor)
    )
