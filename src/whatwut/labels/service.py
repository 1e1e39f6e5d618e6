"""Labels an account defines; conversations carry them by title.

No HTTP here; callers own the transaction. The conversations domain checks the labels it is
given with :func:`ensure_titles_exist`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit import service as audit
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.labels.models import Label
from whatwut.labels.schemas import TITLE_PATTERN, LabelCreate, LabelUpdate

_CONFLICTS = {"uq_labels_account_id": ("title", "a label with this title already exists")}


async def get_label(session: AsyncSession, account_id: int, label_id: int) -> Label:
    label = (
        await session.execute(select(Label).where(Label.id == label_id, Label.account_id == account_id))
    ).scalar_one_or_none()
    if label is None:
        raise NotFound("label not found", field="label_id")
    return label


async def list_labels(
    session: AsyncSession, account_id: int, *, cursor: str | None = None, limit: int = 100
) -> tuple[Sequence[Label], str | None]:
    """A page of the account's labels in title order."""
    query = select(Label).where(Label.account_id == account_id)
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, str) or not TITLE_PATTERN.match(after):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        query = query.where(Label.title > after)
    rows = (await session.execute(query.order_by(Label.title).limit(limit + 1))).scalars().all()
    next_cursor = encode_cursor(rows[limit - 1].title) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def create_label(
    session: AsyncSession, account_id: int, body: LabelCreate, *, actor_user_id: int | None
) -> Label:
    label = Label(account_id=account_id, title=body.title, description=body.description, color=body.color)
    async with unique_or_conflict(session, _CONFLICTS):
        session.add(label)
    await audit.record(
        session, account_id, actor_user_id, "label.created", "label", label.id, {"title": label.title}
    )
    await session.refresh(label)
    return label


async def update_label(
    session: AsyncSession, account_id: int, label_id: int, body: LabelUpdate, *, actor_user_id: int | None
) -> Label:
    label = await get_label(session, account_id, label_id)
    changes: dict[str, object] = {}
    for field in ("description", "color"):
        value = getattr(body, field)
        if field in body.model_fields_set and value is None:
            raise InvalidInput(f"{field} must not be null", field=field)
        if value is not None and value != getattr(label, field):
            changes[field] = [getattr(label, field), value]
            setattr(label, field, value)
    if changes:
        await session.flush()
        await audit.record(session, account_id, actor_user_id, "label.updated", "label", label.id, changes)
        await session.refresh(label)
    return label


async def delete_label(
    session: AsyncSession, account_id: int, label_id: int, *, actor_user_id: int | None
) -> None:
    """Delete the label definition; conversations keep the title until someone removes it."""
    label = await get_label(session, account_id, label_id)
    await audit.record(
        session, account_id, actor_user_id, "label.deleted", "label", label.id, {"title": label.title}
    )
    await session.delete(label)
    await session.flush()


async def ensure_titles_exist(session: AsyncSession, account_id: int, titles: Iterable[str]) -> list[str]:
    """The titles normalised (lower case, de-duplicated, in order), or 422 on ``labels``
    naming the ones the account has not defined."""
    normalised = list(dict.fromkeys(t.strip().lower() for t in titles if isinstance(t, str)))
    malformed = [t for t in normalised if not TITLE_PATTERN.match(t)]
    if malformed:
        raise InvalidInput(
            "labels are 1-64 of a-z, 0-9, '-' or '_': " + ", ".join(repr(t[:70]) for t in malformed[:5]),
            field="labels",
        )
    if not normalised:
        return []
    known = set(
        (
            await session.execute(
                select(Label.title).where(Label.account_id == account_id, Label.title.in_(normalised))
            )
        ).scalars()
    )
    unknown = [t for t in normalised if t not in known]
    if unknown:
        raise InvalidInput(
            "unknown labels (create them first): " + ", ".join(unknown), field="labels", unknown=unknown
        )
    return normalised
