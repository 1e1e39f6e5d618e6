"""HTTP routes of the labels domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.kit.deps import DbSession
from whatwut.kit.schemas import Page, PageMeta
from whatwut.labels import service
from whatwut.labels.schemas import LabelCreate, LabelOut, LabelUpdate

router = APIRouter(prefix="/api/v1/accounts/{account_id}/labels", tags=["labels"])

LabelId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("", summary="List the account's labels")
async def list_labels(
    member: AccountMember,
    session: DbSession,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 100,
) -> Page[LabelOut]:
    rows, next_cursor = await service.list_labels(session, member.account_id, cursor=cursor, limit=limit)
    return Page(data=[LabelOut.model_validate(r) for r in rows], meta=PageMeta(next_cursor=next_cursor))


@router.post("", status_code=201, summary="Create a label (administrators)")
async def create_label(admin: AccountAdmin, body: LabelCreate, session: DbSession) -> LabelOut:
    label = await service.create_label(session, admin.account_id, body, actor_user_id=admin.user.id)
    return LabelOut.model_validate(label)


@router.patch("/{label_id}", summary="Change a label's description or color (administrators)")
async def update_label(
    admin: AccountAdmin, label_id: LabelId, body: LabelUpdate, session: DbSession
) -> LabelOut:
    label = await service.update_label(session, admin.account_id, label_id, body, actor_user_id=admin.user.id)
    return LabelOut.model_validate(label)


@router.delete("/{label_id}", status_code=204, summary="Delete a label (administrators)")
async def delete_label(admin: AccountAdmin, label_id: LabelId, session: DbSession) -> Response:
    await service.delete_label(session, admin.account_id, label_id, actor_user_id=admin.user.id)
    return Response(status_code=204)
