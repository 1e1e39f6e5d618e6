"""HTTP routes of the canned_responses domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.canned_responses import service
from whatwut.canned_responses.schemas import CannedResponseCreate, CannedResponseOut, CannedResponseUpdate
from whatwut.kit.deps import DbSession
from whatwut.kit.schemas import Page, PageMeta

router = APIRouter(prefix="/api/v1/accounts/{account_id}/canned_responses", tags=["canned responses"])

CannedResponseId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", summary="List canned responses, optionally matching `search`")
async def list_canned_responses(
    member: AccountMember,
    session: DbSession,
    search: Annotated[str | None, Query(max_length=200)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> Page[CannedResponseOut]:
    rows, next_cursor = await service.list_canned_responses(
        session, member.account_id, search=search, cursor=cursor, limit=limit
    )
    return Page(
        data=[CannedResponseOut.model_validate(r) for r in rows], meta=PageMeta(next_cursor=next_cursor)
    )


@router.post("", status_code=201, summary="Create a canned response (administrators)")
async def create_canned_response(
    admin: AccountAdmin, body: CannedResponseCreate, session: DbSession
) -> CannedResponseOut:
    row = await service.create_canned_response(session, admin.account_id, body, actor_user_id=admin.user.id)
    return CannedResponseOut.model_validate(row)


@router.patch("/{canned_response_id}", summary="Change a canned response (administrators)")
async def update_canned_response(
    admin: AccountAdmin, canned_response_id: CannedResponseId, body: CannedResponseUpdate, session: DbSession
) -> CannedResponseOut:
    row = await service.update_canned_response(
        session, admin.account_id, canned_response_id, body, actor_user_id=admin.user.id
    )
    return CannedResponseOut.model_validate(row)


@router.delete("/{canned_response_id}", status_code=204, summary="Delete a canned response (administrators)")
async def delete_canned_response(
    admin: AccountAdmin, canned_response_id: CannedResponseId, session: DbSession
) -> Response:
    await service.delete_canned_response(
        session, admin.account_id, canned_response_id, actor_user_id=admin.user.id
    )
    return Response(status_code=204)
