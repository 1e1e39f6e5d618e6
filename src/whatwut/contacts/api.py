"""HTTP routes of the contacts domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.contacts import service
from whatwut.contacts.schemas import (
    ContactCreate,
    ContactInboxCreate,
    ContactInboxOut,
    ContactMerge,
    ContactOut,
    ContactSort,
    ContactUpdate,
)
from whatwut.kit.deps import DbSession
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(prefix="/api/v1/accounts/{account_id}/contacts", tags=["contacts"])

ContactId = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=1024)]
Sort = Annotated[ContactSort, Query(description="`last_activity` (newest first) or `name`")]
Search = Annotated[str, Query(max_length=200, description="Words of a name or email, or a phone fragment")]


def _page(contacts: list[ContactOut], next_cursor: str | None) -> Page[ContactOut]:
    return Page(data=contacts, meta=PageMeta(next_cursor=next_cursor))


@router.get("", summary="List contacts, optionally matching `q`")
async def list_contacts(
    member: AccountMember,
    session: DbSession,
    q: Annotated[str | None, Query(max_length=200)] = None,
    sort: Sort = "last_activity",
    cursor: Cursor = None,
    limit: Limit = 25,
) -> Page[ContactOut]:
    rows, next_cursor = await service.list_contacts(
        session, member.account_id, q=q, sort=sort, cursor=cursor, limit=limit
    )
    return _page([ContactOut.model_validate(c) for c in rows], next_cursor)


@router.get("/search", summary="Search contacts by name, email or phone")
async def search_contacts(
    member: AccountMember,
    session: DbSession,
    q: Search,
    sort: Sort = "last_activity",
    cursor: Cursor = None,
    limit: Limit = 25,
) -> Page[ContactOut]:
    rows, next_cursor = await service.list_contacts(
        session, member.account_id, q=q, sort=sort, cursor=cursor, limit=limit
    )
    return _page([ContactOut.model_validate(c) for c in rows], next_cursor)


@router.post("", status_code=201, summary="Create a contact")
async def create_contact(member: AccountMember, body: ContactCreate, session: DbSession) -> ContactOut:
    return ContactOut.model_validate(await service.create_contact(session, member.account_id, body))


@router.get("/{contact_id}", summary="Show a contact")
async def get_contact(member: AccountMember, contact_id: ContactId, session: DbSession) -> ContactOut:
    return ContactOut.model_validate(await service.get_contact(session, member.account_id, contact_id))


@router.patch("/{contact_id}", summary="Change a contact")
async def update_contact(
    member: AccountMember, contact_id: ContactId, body: ContactUpdate, session: DbSession
) -> ContactOut:
    contact = await service.update_contact(session, member.account_id, contact_id, body)
    return ContactOut.model_validate(contact)


@router.delete(
    "/{contact_id}", status_code=204, summary="Delete a contact and its conversations (administrators)"
)
async def delete_contact(admin: AccountAdmin, contact_id: ContactId, session: DbSession) -> Response:
    await service.delete_contact(session, admin.account_id, contact_id, actor_user_id=admin.user.id)
    return Response(status_code=204)


@router.post("/{contact_id}/merge", summary="Merge another contact into this one (administrators)")
async def merge_contacts(
    admin: AccountAdmin, contact_id: ContactId, body: ContactMerge, session: DbSession
) -> ContactOut:
    contact = await service.merge_contacts(
        session, admin.account_id, contact_id, body.other_contact_id, actor_user_id=admin.user.id
    )
    return ContactOut.model_validate(contact)


@router.get("/{contact_id}/contact_inboxes", summary="The contact's ids on each inbox's channel")
async def list_contact_inboxes(
    member: AccountMember, contact_id: ContactId, session: DbSession
) -> Page[ContactInboxOut]:
    rows = await service.list_contact_inboxes(session, member.account_id, contact_id)
    return Page(data=[ContactInboxOut.model_validate(r) for r in rows], meta=PageMeta(next_cursor=None))


@router.post("/{contact_id}/contact_inboxes", status_code=201, summary="Record the contact's id on an inbox")
async def add_contact_inbox(
    member: AccountMember, contact_id: ContactId, body: ContactInboxCreate, session: DbSession
) -> ContactInboxOut:
    contact_inbox = await service.add_contact_inbox(
        session,
        member.account_id,
        contact_id,
        body.inbox_id,
        body.source_id,
        user_id=member.user.id,
        role=member.role,
    )
    return ContactInboxOut.model_validate(contact_inbox)
