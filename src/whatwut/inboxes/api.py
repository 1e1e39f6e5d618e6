"""HTTP routes of the inboxes domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.channels.whatsapp import service as whatsapp
from whatwut.inboxes import service
from whatwut.inboxes.models import Inbox
from whatwut.inboxes.schemas import InboxCreate, InboxMemberOut, InboxMembersUpdate, InboxOut, InboxUpdate
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(prefix="/api/v1/accounts/{account_id}/inboxes", tags=["inboxes"])

InboxId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]


def _out(inbox: Inbox) -> InboxOut:
    return InboxOut(
        id=inbox.id,
        account_id=inbox.account_id,
        name=inbox.name,
        channel_type=inbox.channel_type,
        channel=service.channel_view(inbox),
        enable_auto_assignment=inbox.enable_auto_assignment,
        max_open_per_agent=inbox.max_open_per_agent,
        resolved_policy=inbox.resolved_policy,
        created_at=inbox.created_at,
        updated_at=inbox.updated_at,
    )


@router.get("", summary="List the inboxes you can see (agents: the ones they are members of)")
async def list_inboxes(
    member: AccountMember, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[InboxOut]:
    inboxes, next_cursor = await service.list_inboxes(
        session, member.account_id, user_id=member.user.id, role=member.role, cursor=cursor, limit=limit
    )
    return Page(data=[_out(i) for i in inboxes], meta=PageMeta(next_cursor=next_cursor))


@router.post("", status_code=201, summary="Create an inbox (administrators)")
async def create_inbox(
    admin: AccountAdmin, body: InboxCreate, session: DbSession, context: Context
) -> InboxOut:
    inbox = await service.create_inbox(session, context, admin.account_id, body, actor_user_id=admin.user.id)
    await whatsapp.on_inbox_created(session, inbox)
    return _out(inbox)


@router.get("/{inbox_id}", summary="Show an inbox")
async def get_inbox(member: AccountMember, inbox_id: InboxId, session: DbSession) -> InboxOut:
    inbox = await service.get_visible_inbox(
        session, member.account_id, inbox_id, user_id=member.user.id, role=member.role
    )
    return _out(inbox)


@router.patch("/{inbox_id}", summary="Change an inbox's name, settings or channel (administrators)")
async def update_inbox(
    admin: AccountAdmin, inbox_id: InboxId, body: InboxUpdate, session: DbSession, context: Context
) -> InboxOut:
    inbox = await service.update_inbox(
        session, context, admin.account_id, inbox_id, body, actor_user_id=admin.user.id
    )
    if body.channel is not None:
        await whatsapp.sync_instance(session, inbox)
    return _out(inbox)


@router.delete(
    "/{inbox_id}", status_code=204, summary="Delete an inbox and its conversations (administrators)"
)
async def delete_inbox(admin: AccountAdmin, inbox_id: InboxId, session: DbSession) -> Response:
    await service.delete_inbox(session, admin.account_id, inbox_id, actor_user_id=admin.user.id)
    return Response(status_code=204)


async def _members_page(session: DbSession, account_id: int, inbox_id: int) -> Page[InboxMemberOut]:
    rows = await service.list_members(session, account_id, inbox_id)
    return Page(
        data=[
            InboxMemberOut(
                id=user.id,
                name=user.name,
                email=user.email,
                role=membership.role,
                availability=membership.availability,
            )
            for user, membership in rows
        ],
        meta=PageMeta(next_cursor=None),
    )


@router.get("/{inbox_id}/members", summary="List the inbox's members (all of them, one page)")
async def list_members(member: AccountMember, inbox_id: InboxId, session: DbSession) -> Page[InboxMemberOut]:
    await service.get_visible_inbox(
        session, member.account_id, inbox_id, user_id=member.user.id, role=member.role
    )
    return await _members_page(session, member.account_id, inbox_id)


@router.post("/{inbox_id}/members", summary="Replace the inbox's members (administrators)")
async def set_members(
    admin: AccountAdmin, inbox_id: InboxId, body: InboxMembersUpdate, session: DbSession
) -> Page[InboxMemberOut]:
    await service.set_members(session, admin.account_id, inbox_id, body.user_ids, actor_user_id=admin.user.id)
    return await _members_page(session, admin.account_id, inbox_id)


@router.delete("/{inbox_id}/members", summary="Remove these users from the inbox (administrators)")
async def remove_members(
    admin: AccountAdmin, inbox_id: InboxId, body: InboxMembersUpdate, session: DbSession
) -> Page[InboxMemberOut]:
    await service.remove_members(
        session, admin.account_id, inbox_id, body.user_ids, actor_user_id=admin.user.id
    )
    return await _members_page(session, admin.account_id, inbox_id)
