"""The audit trail: every administrative action writes a row in the same transaction as the change.

Other domains call :func:`record`; since it shares the caller's transaction, a change that is
rolled back leaves no trace, and a change that is committed cannot lack its audit row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit.models import AuditLog
from whatwut.kit.errors import InvalidInput
from whatwut.kit.middleware import CLIENT_ADDRESS
from whatwut.kit.pagination import decode_cursor, encode_cursor


async def record(
    session: AsyncSession,
    account_id: int,
    actor_user_id: int | None,
    action: str,
    subject_type: str,
    subject_id: int | None,
    changes: Mapping[str, object] | None = None,
    *,
    ip_address: str | None = None,
) -> AuditLog:
    """Write one audit row. ``changes`` must never hold secrets (tokens, passwords).

    The address defaults to the current request's client (none for jobs and the CLI).
    """
    entry = AuditLog(
        account_id=account_id,
        actor_user_id=actor_user_id,
        action=action,
        subject_type=subject_type,
        subject_id=subject_id,
        changes=dict(changes or {}),
        ip_address=ip_address if ip_address is not None else CLIENT_ADDRESS.get(),
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_logs(
    session: AsyncSession,
    account_id: int,
    *,
    cursor: str | None = None,
    limit: int = 25,
    action: str | None = None,
) -> tuple[Sequence[AuditLog], str | None]:
    """A page of the account's audit log, newest first, and the cursor of the next page."""
    query = select(AuditLog).where(AuditLog.account_id == account_id)
    if action:
        query = query.where(AuditLog.action == action)
    if cursor:
        (before_id,) = decode_cursor(cursor, 1)
        if not isinstance(before_id, int):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        query = query.where(AuditLog.id < before_id)
    rows = (await session.execute(query.order_by(AuditLog.id.desc()).limit(limit + 1))).scalars().all()
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].id) if len(rows) > limit else None
    return page, next_cursor
