"""Contacts: the customers of an account, their search, merging, and their ids on channels.

No HTTP here; callers own the transaction. Channels call :func:`find_or_create_by_source` for
every inbound message, so it is race-safe (``INSERT ... ON CONFLICT``), not check-then-insert.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, or_, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit import service as audit
from whatwut.contacts.models import Contact, ContactInbox
from whatwut.contacts.schemas import (
    MAX_ATTRIBUTES,
    ContactCreate,
    ContactOut,
    ContactSort,
    ContactUpdate,
)
from whatwut.inboxes import service as inboxes
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.kit.phone import wa_id_to_e164
from whatwut.kit.text import storable_text
from whatwut.realtime import service as realtime

MAX_QUERY = 200
MAX_QUERY_WORDS = 8
#: Fragments shorter than this would match most of the account; they only use the word search.
MIN_FRAGMENT = 3

_CONFLICTS = {
    "uq_contacts_account_phone": ("phone_number", "a contact with this phone number already exists"),
    "uq_contacts_account_email": ("email", "a contact with this email already exists"),
}
_CONTACT_INBOX_CONFLICTS = {
    "uq_contact_inboxes_inbox_id": ("source_id", "this source_id is already used in this inbox"),
}
_ACTIVITY = func.coalesce(Contact.last_activity_at, Contact.created_at)


def _payload(contact: Contact) -> dict[str, Any]:
    return ContactOut.model_validate(contact).model_dump(mode="json")


async def _publish(session: AsyncSession, event_type: str, contact: Contact) -> None:
    await realtime.publish(session, contact.account_id, event_type, _payload(contact))


async def _reload(session: AsyncSession, contact_id: int) -> Contact:
    """The row as stored now (server-side defaults and ``updated_at`` included)."""
    return (
        await session.execute(
            select(Contact).where(Contact.id == contact_id).execution_options(populate_existing=True)
        )
    ).scalar_one()


# --- reading --------------------------------------------------------------------------------


async def get_contact(session: AsyncSession, account_id: int, contact_id: int) -> Contact:
    """The account's contact; 404 when it does not exist *or belongs to another account*."""
    contact = (
        await session.execute(
            select(Contact).where(Contact.id == contact_id, Contact.account_id == account_id)
        )
    ).scalar_one_or_none()
    if contact is None:
        raise NotFound("contact not found", field="contact_id")
    return contact


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _search_condition(q: str) -> ColumnElement[bool]:
    """Words match names, emails and phones by prefix (``search_tsv``); fragments of a phone
    number or an email match anywhere in them."""
    conditions: list[ColumnElement[bool]] = []
    words = [w.lower() for w in re.findall(r"\w+", q)][:MAX_QUERY_WORDS]
    if words:
        tsquery = " & ".join(f"{word}:*" for word in words)
        conditions.append(Contact.search_tsv.op("@@")(func.to_tsquery("simple", tsquery)))
    digits = re.sub(r"[^0-9]", "", q)
    if len(digits) >= MIN_FRAGMENT:
        conditions.append(Contact.phone_number.like(f"%{digits}%"))
    if len(q) >= MIN_FRAGMENT:
        conditions.append(func.lower(Contact.email).like(f"%{_like_escape(q.lower())}%", escape="\\"))
    return or_(*conditions) if conditions else false()


def _check_query(q: str) -> str:
    q = q.strip()
    if len(q) > MAX_QUERY:
        raise InvalidInput(f"q must be at most {MAX_QUERY} characters", field="q")
    try:
        storable_text(q)
    except ValueError as exc:
        raise InvalidInput(f"q {exc}", field="q") from None
    return q


def _bad_cursor() -> InvalidInput:
    return InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")


def _after(sort: ContactSort, cursor: str) -> ColumnElement[bool]:
    key, last_id = decode_cursor(cursor, 2)
    if not isinstance(last_id, int) or isinstance(last_id, bool) or not isinstance(key, str):
        raise _bad_cursor()
    if sort == "name":
        try:
            storable_text(key)
        except ValueError:
            raise _bad_cursor() from None
        return tuple_(func.lower(Contact.name), Contact.id) > tuple_(key, last_id)
    try:
        at = datetime.fromisoformat(key)
    except ValueError:
        raise _bad_cursor() from None
    return tuple_(_ACTIVITY, Contact.id) < tuple_(at, last_id)


async def list_contacts(
    session: AsyncSession,
    account_id: int,
    *,
    q: str | None = None,
    sort: ContactSort = "last_activity",
    cursor: str | None = None,
    limit: int = 25,
) -> tuple[Sequence[Contact], str | None]:
    """A page of contacts, most recently active first (or by name), optionally matching ``q``."""
    query = select(Contact).where(Contact.account_id == account_id)
    if q is not None and (q := _check_query(q)):
        query = query.where(_search_condition(q))
    if cursor:
        query = query.where(_after(sort, cursor))
    if sort == "name":
        query = query.order_by(func.lower(Contact.name), Contact.id)
    else:
        query = query.order_by(_ACTIVITY.desc(), Contact.id.desc())
    rows = (await session.execute(query.limit(limit + 1))).scalars().all()
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        if sort == "name":
            next_cursor = encode_cursor(last.name.lower(), last.id)
        else:
            next_cursor = encode_cursor((last.last_activity_at or last.created_at).isoformat(), last.id)
    return rows[:limit], next_cursor


# --- writing --------------------------------------------------------------------------------


async def create_contact(session: AsyncSession, account_id: int, body: ContactCreate) -> Contact:
    contact = Contact(
        account_id=account_id,
        name=body.name,
        email=body.email,
        phone_number=body.phone_number,
        identifier=body.identifier,
        custom_attributes=body.custom_attributes,
    )
    async with unique_or_conflict(session, _CONFLICTS):
        session.add(contact)
    contact = await _reload(session, contact.id)
    await _publish(session, "contact.created", contact)
    return contact


async def update_contact(
    session: AsyncSession, account_id: int, contact_id: int, body: ContactUpdate
) -> Contact:
    contact = await get_contact(session, account_id, contact_id)
    given = body.model_fields_set
    changed = False
    async with unique_or_conflict(session, _CONFLICTS):
        if "name" in given and (body.name or "") != contact.name:
            contact.name = body.name or ""
            changed = True
        for field in ("email", "phone_number", "identifier"):
            if field in given and getattr(body, field) != getattr(contact, field):
                setattr(contact, field, getattr(body, field))
                changed = True
        if "custom_attributes" in given and (body.custom_attributes or {}) != contact.custom_attributes:
            contact.custom_attributes = body.custom_attributes or {}
            changed = True
    if changed:
        contact = await _reload(session, contact.id)
        await _publish(session, "contact.updated", contact)
    return contact


async def delete_contact(
    session: AsyncSession, account_id: int, contact_id: int, *, actor_user_id: int | None
) -> None:
    """Delete the contact with its conversations (as Chatwoot does); an audited admin action."""
    contact = await get_contact(session, account_id, contact_id)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "contact.deleted",
        "contact",
        contact.id,
        {"name": contact.name},
    )
    await session.delete(contact)
    await session.flush()


async def record_activity(session: AsyncSession, contact_id: int, at: datetime) -> None:
    """Move the contact's ``last_activity_at`` forward (never back); conversations call this."""
    await session.execute(
        update(Contact)
        .where(
            Contact.id == contact_id,
            (Contact.last_activity_at.is_(None)) | (Contact.last_activity_at < at),
        )
        .values(last_activity_at=at)
    )


async def merge_contacts(
    session: AsyncSession,
    account_id: int,
    contact_id: int,
    other_contact_id: int,
    *,
    actor_user_id: int | None,
) -> Contact:
    """Fold ``other`` into ``contact``: its channel ids and conversations move, the gaps in
    ``contact``'s fields are filled from it, custom attributes merge (``contact`` wins), and
    ``other`` is deleted. One transaction: a failure leaves both as they were."""
    if contact_id == other_contact_id:
        raise InvalidInput("a contact cannot be merged into itself", field="other_contact_id")
    # Lock both rows in id order, so two merges of the same pair cannot deadlock or interleave.
    locked = {
        c.id: c
        for c in (
            await session.execute(
                select(Contact)
                .where(Contact.account_id == account_id, Contact.id.in_([contact_id, other_contact_id]))
                .order_by(Contact.id)
                .with_for_update()
            )
        ).scalars()
    }
    if contact_id not in locked:
        raise NotFound("contact not found", field="contact_id")
    if other_contact_id not in locked:
        raise NotFound("the contact to merge was not found", field="other_contact_id")
    base, other = locked[contact_id], locked[other_contact_id]

    moved_inboxes = await session.execute(
        update(ContactInbox).where(ContactInbox.contact_id == other.id).values(contact_id=base.id)
    )
    # Conversations belong to the conversations domain; re-pointing them is one column of one
    # table, done here with a plain UPDATE so the whole merge stays a single transaction.
    moved_conversations = await session.execute(
        text(
            "UPDATE conversations SET contact_id = :base WHERE contact_id = :other AND account_id = :account"
        ),
        {"base": base.id, "other": other.id, "account": account_id},
    )
    carried = {
        "name": other.name,
        "email": other.email,
        "phone_number": other.phone_number,
        "identifier": other.identifier,
    }
    other_attributes = dict(other.custom_attributes)
    other_activity = other.last_activity_at
    await session.delete(other)
    await session.flush()  # frees other's email and phone before base takes them

    for field, value in carried.items():
        if value and not getattr(base, field):
            setattr(base, field, value)
    attributes = dict(base.custom_attributes)
    for key, attribute in other_attributes.items():
        if key not in attributes and len(attributes) < MAX_ATTRIBUTES:
            attributes[key] = attribute
    base.custom_attributes = attributes
    if other_activity and (base.last_activity_at is None or other_activity > base.last_activity_at):
        base.last_activity_at = other_activity
    await session.flush()
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "contact.merged",
        "contact",
        base.id,
        {
            "merged_contact_id": other_contact_id,
            "contact_inboxes_moved": int(getattr(moved_inboxes, "rowcount", 0) or 0),
            "conversations_moved": int(getattr(moved_conversations, "rowcount", 0) or 0),
        },
    )
    base = await _reload(session, base.id)
    await _publish(session, "contact.updated", base)
    return base


# --- identities on channels -----------------------------------------------------------------


async def list_contact_inboxes(
    session: AsyncSession, account_id: int, contact_id: int
) -> Sequence[ContactInbox]:
    contact = await get_contact(session, account_id, contact_id)
    rows = await session.execute(
        select(ContactInbox).where(ContactInbox.contact_id == contact.id).order_by(ContactInbox.id)
    )
    return rows.scalars().all()


async def add_contact_inbox(
    session: AsyncSession,
    account_id: int,
    contact_id: int,
    inbox_id: int,
    source_id: str,
    *,
    user_id: int,
    role: str,
) -> ContactInbox:
    """Record the contact's id on an inbox's channel (an inbox the member can see)."""
    contact = await get_contact(session, account_id, contact_id)
    inbox = await inboxes.get_visible_inbox(session, account_id, inbox_id, user_id=user_id, role=role)
    contact_inbox = ContactInbox(
        contact_id=contact.id, inbox_id=inbox.id, source_id=source_id, account_id=account_id
    )
    async with unique_or_conflict(session, _CONTACT_INBOX_CONFLICTS):
        session.add(contact_inbox)
    return contact_inbox


async def find_or_create_by_source(
    session: AsyncSession,
    account_id: int,
    inbox_id: int,
    source_id: str,
    *,
    name: str,
    phone_number: str | None,
) -> tuple[Contact, ContactInbox]:
    """The contact behind a channel id (a WhatsApp ``wa_id``), created on first contact.

    The contact is upserted by phone number (E.164; a WhatsApp id without ``+`` is accepted, an
    invalid one is dropped rather than refusing the customer's message), the contact_inbox by
    ``(inbox_id, source_id)``. Two deliveries racing for a new customer end with one contact and
    one contact_inbox.
    """
    existing = (
        await session.execute(
            select(ContactInbox, Contact)
            .join(Contact, Contact.id == ContactInbox.contact_id)
            .where(ContactInbox.inbox_id == inbox_id, ContactInbox.source_id == source_id)
        )
    ).one_or_none()
    if existing is not None and existing[1].account_id == account_id:
        contact_inbox, contact = existing[0], existing[1]
        if name and not contact.name:
            contact.name = name[:255]
            await session.flush()
            contact = await _reload(session, contact.id)
            await _publish(session, "contact.updated", contact)
        return contact, contact_inbox
    inbox = await inboxes.get_inbox(session, account_id, inbox_id)
    phone = wa_id_to_e164(phone_number) if phone_number else None
    values = {"account_id": account_id, "name": name[:255], "phone_number": phone, "custom_attributes": {}}
    statement = insert(Contact).values(**values)
    if phone is not None:
        statement = statement.on_conflict_do_update(
            index_elements=[Contact.account_id, Contact.phone_number],
            index_where=Contact.phone_number.is_not(None),
            set_={"name": func.coalesce(func.nullif(Contact.name, ""), statement.excluded.name)},
        )
    row = (await session.execute(statement.returning(Contact.id, text("(xmax = 0) AS inserted")))).one()
    contact_id, inserted = int(row[0]), bool(row[1])
    await session.execute(
        insert(ContactInbox)
        .values(contact_id=contact_id, inbox_id=inbox.id, source_id=source_id, account_id=account_id)
        .on_conflict_do_nothing(index_elements=[ContactInbox.inbox_id, ContactInbox.source_id])
    )
    contact_inbox = (
        await session.execute(
            select(ContactInbox)
            .where(ContactInbox.inbox_id == inbox.id, ContactInbox.source_id == source_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()
    if contact_inbox.contact_id != contact_id and inserted:
        # Another delivery created this channel id first: keep its contact, drop ours.
        await session.execute(
            text(
                "DELETE FROM contacts WHERE id = :id AND NOT EXISTS "
                "(SELECT 1 FROM contact_inboxes WHERE contact_id = :id)"
            ),
            {"id": contact_id},
        )
        inserted = False
    contact = await _reload(session, contact_inbox.contact_id)
    if inserted:
        await _publish(session, "contact.created", contact)
    return contact, contact_inbox
