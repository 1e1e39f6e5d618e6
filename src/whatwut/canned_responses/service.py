"""Canned responses: saved replies an agent inserts by short code. No HTTP; callers own the
transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit import service as audit
from whatwut.canned_responses.models import CannedResponse
from whatwut.canned_responses.schemas import (
    SHORT_CODE_PATTERN,
    CannedResponseCreate,
    CannedResponseUpdate,
)
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.kit.text import storable_text

MAX_SEARCH = 200
_CONFLICTS = {
    "uq_canned_responses_account_id": ("short_code", "a canned response with this short_code already exists")
}


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def get_canned_response(
    session: AsyncSession, account_id: int, canned_response_id: int
) -> CannedResponse:
    row = (
        await session.execute(
            select(CannedResponse).where(
                CannedResponse.id == canned_response_id, CannedResponse.account_id == account_id
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("canned response not found", field="canned_response_id")
    return row


async def list_canned_responses(
    session: AsyncSession,
    account_id: int,
    *,
    search: str | None = None,
    cursor: str | None = None,
    limit: int = 100,
) -> tuple[Sequence[CannedResponse], str | None]:
    """A page in short-code order; ``search`` matches the start of a short code or anywhere in
    the content (what an agent typing ``/ref`` in the composer expects)."""
    query = select(CannedResponse).where(CannedResponse.account_id == account_id)
    search = (search or "").strip()
    if search:
        if len(search) > MAX_SEARCH:
            raise InvalidInput(f"search must be at most {MAX_SEARCH} characters", field="search")
        try:
            storable_text(search)
        except ValueError as exc:
            raise InvalidInput(f"search {exc}", field="search") from None
        pattern = _like_escape(search.lower())
        query = query.where(
            or_(
                CannedResponse.short_code.like(f"{pattern}%", escape="\\"),
                CannedResponse.content.ilike(f"%{pattern}%", escape="\\"),
            )
        )
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, str) or not SHORT_CODE_PATTERN.match(after):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        query = query.where(CannedResponse.short_code > after)
    rows = (await session.execute(query.order_by(CannedResponse.short_code).limit(limit + 1))).scalars().all()
    next_cursor = encode_cursor(rows[limit - 1].short_code) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def create_canned_response(
    session: AsyncSession, account_id: int, body: CannedResponseCreate, *, actor_user_id: int | None
) -> CannedResponse:
    row = CannedResponse(account_id=account_id, short_code=body.short_code, content=body.content)
    async with unique_or_conflict(session, _CONFLICTS):
        session.add(row)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "canned_response.created",
        "canned_response",
        row.id,
        {"short_code": row.short_code},
    )
    await session.refresh(row)
    return row


async def update_canned_response(
    session: AsyncSession,
    account_id: int,
    canned_response_id: int,
    body: CannedResponseUpdate,
    *,
    actor_user_id: int | None,
) -> CannedResponse:
    row = await get_canned_response(session, account_id, canned_response_id)
    changed: list[str] = []
    for field in ("short_code", "content"):
        if field in body.model_fields_set and getattr(body, field) is None:
            raise InvalidInput(f"{field} must not be null", field=field)
    async with unique_or_conflict(session, _CONFLICTS):
        if body.short_code is not None and body.short_code != row.short_code:
            row.short_code = body.short_code
            changed.append("short_code")
        if body.content is not None and body.content != row.content:
            row.content = body.content
            changed.append("content")
    if changed:
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "canned_response.updated",
            "canned_response",
            row.id,
            {"fields": changed, "short_code": row.short_code},
        )
        await session.refresh(row)
    return row


async def delete_canned_response(
    session: AsyncSession, account_id: int, canned_response_id: int, *, actor_user_id: int | None
) -> None:
    row = await get_canned_response(session, account_id, canned_response_id)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "canned_response.deleted",
        "canned_response",
        row.id,
        {"short_code": row.short_code},
    )
    await session.delete(row)
    await session.flush()
