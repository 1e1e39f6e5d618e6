"""Conversations and their messages: the helpdesk's core (no HTTP; callers own the transaction).

Every state change writes what Chatwoot writes (an ``activity`` message, e.g. "Conversation was
marked resolved by Ana") and publishes its event in the same transaction, so clients hear of it
exactly when it commits. Lists are one statement per page, whatever the page size.

Channels call :func:`record_incoming_message` for what customers send and
:func:`update_delivery_status` for receipts; they pick up ``pending`` outgoing messages.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnClause,
    ColumnElement,
    and_,
    false,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.accounts.models import User
from whatwut.contacts import service as contacts
from whatwut.contacts.models import Contact, ContactInbox
from whatwut.conversations import assignment
from whatwut.conversations.models import (
    CONTENT_TYPES,
    Attachment,
    Conversation,
    ConversationRead,
    Message,
)
from whatwut.conversations.schemas import (
    AssigneeBrief,
    AttachmentOut,
    ContactBrief,
    ConversationCounts,
    ConversationOut,
    CreateConversation,
    CreateMessage,
    MessageOut,
    MessagePreview,
    ReadState,
    SearchHit,
    Sender,
    ServiceWindow,
    UpdateConversation,
    checked_message,
    sanitize_json,
    sanitize_text,
)
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox
from whatwut.jobs.service import defer
from whatwut.kit.errors import InvalidInput, NotFound, PayloadTooLarge
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.kit.storage import Storage, safe_filename
from whatwut.labels import service as labels
from whatwut.realtime.service import publish
from whatwut.teams import service as teams

REOPEN_SNOOZED_JOB = "conversations.reopen_snoozed"
MAX_ATTACHMENTS = 10
PREVIEW_CHARS = 200
_TS_CONFIG: ColumnClause[Any] = literal_column("'simple'::regconfig")
_DELIVERY_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}

#: What agents may upload, by the type WhatsApp (and browsers) can show.
ACCEPTED_UPLOADS: dict[str, str] = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "image",
    "image/gif": "image",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "audio/webm": "audio",
    "audio/wav": "audio",
    "video/mp4": "video",
    "video/3gpp": "video",
    "video/webm": "video",
    "application/pdf": "file",
    "text/plain": "file",
    "text/csv": "file",
    "application/msword": "file",
    "application/vnd.ms-excel": "file",
    "application/vnd.ms-powerpoint": "file",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "file",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "file",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "file",
}
#: Leading bytes of the types a browser would render; a mismatch means the declared type lies.
_MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
    "application/pdf": (b"%PDF-",),
}


def _now() -> datetime:
    return datetime.now(UTC)


# --- channel hooks: channels register what they add; conversations never import channels --------

#: The job that delivers a pending reply, and the one that sends read receipts, per channel type.
DELIVERY_JOBS: dict[str, str] = {
    "whatsapp_cloud": "whatsapp.deliver_message",
    "whatsapp_sandbox": "whatsapp.deliver_message",
}
READ_RECEIPT_JOBS: dict[str, str] = {
    "whatsapp_cloud": "whatsapp.mark_read",
    "whatsapp_sandbox": "whatsapp.mark_read",
}
#: ``(session, inbox, content_type, content, attributes) -> (content, attributes)``: a channel's
#: own rules for what its inboxes can send (e.g. only synced, approved WhatsApp templates).
OutgoingCheck = Callable[
    [AsyncSession, Inbox, str, str | None, dict[str, Any]], Awaitable[tuple[str | None, dict[str, Any]]]
]
_OUTGOING_CHECKS: dict[str, list[OutgoingCheck]] = {}


def register_outgoing_check(channel_types: Sequence[str], check: OutgoingCheck) -> None:
    for channel_type in channel_types:
        checks = _OUTGOING_CHECKS.setdefault(channel_type, [])
        if check not in checks:
            checks.append(check)


#: ``(session, inbox, conversation, message, created)``: called when a customer's message is stored,
#: before auto-assignment, so an inbox's AI agent (``bots``) can take a new conversation first.
IncomingHook = Callable[[AsyncSession, Inbox, "Conversation", Message, bool], Awaitable[None]]
#: ``(session, conversation, actor, action)``: a person acted on a conversation (``reply``,
#: ``assign``, ``status``), so an AI agent handling it stops.
HumanActionHook = Callable[[AsyncSession, "Conversation", "Agent", str], Awaitable[None]]
_INCOMING_HOOKS: list[IncomingHook] = []
_HUMAN_ACTION_HOOKS: list[HumanActionHook] = []


def register_incoming_hook(hook: IncomingHook) -> None:
    if hook not in _INCOMING_HOOKS:
        _INCOMING_HOOKS.append(hook)


def register_human_action_hook(hook: HumanActionHook) -> None:
    if hook not in _HUMAN_ACTION_HOOKS:
        _HUMAN_ACTION_HOOKS.append(hook)


async def _human_acted(session: AsyncSession, conversation: Conversation, actor: Agent, action: str) -> None:
    if actor.is_bot or conversation.ai_agent_id is None:
        return
    for hook in _HUMAN_ACTION_HOOKS:
        await hook(session, conversation, actor, action)


SERVICE_WINDOW = timedelta(hours=24)


def service_window(last_incoming_at: datetime | None, now: datetime | None = None) -> ServiceWindow:
    """WhatsApp's customer-service window: open for 24 hours after the customer's last message."""
    if last_incoming_at is None:
        return ServiceWindow(open=False, expires_at=None)
    expires_at = last_incoming_at + SERVICE_WINDOW
    return ServiceWindow(open=(now or _now()) < expires_at, expires_at=expires_at)


@dataclass(frozen=True)
class Agent:
    """Who acts: a member of the account (a person, or a bot user)."""

    account_id: int
    user_id: int
    name: str
    role: str
    is_bot: bool = False


@dataclass(frozen=True)
class ConversationFilters:
    status: str = "open"
    assignee_type: str = "all"
    inbox_id: int | None = None
    team_id: int | None = None
    labels: tuple[str, ...] = ()
    q: str | None = None


@dataclass(frozen=True)
class Upload:
    """A file an agent sent with a message, not yet stored."""

    file_name: str | None
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class IncomingAttachment:
    """Media a channel already stored (or can fetch later from ``external_url``)."""

    file_type: str
    mime_type: str
    file_name: str
    byte_size: int
    storage_key: str | None = None
    sha256: str | None = None
    external_url: str | None = None


# --- visibility and loading ---------------------------------------------------------------------


async def visible_inbox_ids(session: AsyncSession, agent: Agent) -> list[int] | None:
    return await inboxes.accessible_inbox_ids(session, agent.account_id, agent.user_id, agent.role)


def _scope(account_id: int, visible: list[int] | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = [Conversation.account_id == account_id]
    if visible is not None:
        conditions.append(Conversation.inbox_id.in_(visible) if visible else false())
    return conditions


async def get_conversation(
    session: AsyncSession, agent: Agent, conversation_id: int, *, for_update: bool = False
) -> Conversation:
    """The conversation if this member may see it; 404 for other accounts' and hidden inboxes'."""
    query = select(Conversation).where(
        Conversation.id == conversation_id, *_scope(agent.account_id, await visible_inbox_ids(session, agent))
    )
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    conversation = (await session.execute(query)).scalar_one_or_none()
    if conversation is None:
        raise NotFound("conversation not found", field="conversation_id")
    return conversation


async def _as_input(awaitable: Any, field: str) -> Any:
    """A referenced id in a body that does not resolve is bad input (422), not a missing page."""
    try:
        return await awaitable
    except NotFound as exc:
        raise InvalidInput(exc.detail, field=field) from None


async def _user_names(session: AsyncSession, user_ids: Sequence[int]) -> dict[int, str]:
    if not user_ids:
        return {}
    rows = await session.execute(select(User.id, User.name).where(User.id.in_(set(user_ids))))
    return {int(uid): str(name) for uid, name in rows.all()}


async def check_assignee(session: AsyncSession, account_id: int, inbox_id: int, user_id: int) -> None:
    """An assignee must belong to the account and be able to see the conversation's inbox."""
    membership = await accounts.get_membership(session, account_id, user_id)
    if membership is None:
        raise InvalidInput("the assignee is not a member of this account", field="assignee_id")
    visible = await inboxes.accessible_inbox_ids(session, account_id, user_id, membership.role)
    if visible is not None and inbox_id not in visible:
        raise InvalidInput("the assignee is not a member of this conversation's inbox", field="assignee_id")


# --- listing ------------------------------------------------------------------------------------


def _tsquery(q: str) -> ColumnElement[Any]:
    return func.websearch_to_tsquery(_TS_CONFIG, q)


def _phone_digits(q: str) -> str | None:
    """The digits to look for in contacts' phone numbers, when ``q`` looks like a number."""
    digits = re.sub(r"\D", "", q)
    return digits if len(digits) >= 4 and re.fullmatch(r"[\d\s+()\-.]+", q) else None


def _matches(account_id: int, q: str) -> ColumnElement[bool]:
    """Full text over the conversation's messages, or the contact's name, email or phone.

    Two ``IN`` lists and no contacts join, for the counts; lists page through :func:`_q_page_ids`.
    """
    query = _tsquery(q)
    in_messages = select(Message.conversation_id).where(
        Message.account_id == account_id, Message.content_tsv.op("@@")(query)
    )
    contact_matches: list[ColumnElement[bool]] = [Contact.search_tsv.op("@@")(query)]
    digits = _phone_digits(q)
    if digits:
        contact_matches.append(Contact.phone_number.contains(digits))
    in_contacts = select(Contact.id).where(Contact.account_id == account_id, or_(*contact_matches))
    return or_(Conversation.id.in_(in_messages), Conversation.contact_id.in_(in_contacts))


def _conditions(
    agent: Agent,
    filters: ConversationFilters,
    visible: list[int] | None,
    *,
    by_assignee: bool = True,
    with_q: bool = True,
) -> list[ColumnElement[bool]]:
    conditions = _scope(agent.account_id, visible)
    if filters.status != "all":
        conditions.append(Conversation.status == filters.status)
    if by_assignee and filters.assignee_type == "me":
        conditions.append(Conversation.assignee_id == agent.user_id)
    elif by_assignee and filters.assignee_type == "unassigned":
        conditions.append(Conversation.assignee_id.is_(None))
    if filters.inbox_id is not None:
        conditions.append(Conversation.inbox_id == filters.inbox_id)
    if filters.team_id is not None:
        conditions.append(Conversation.team_id == filters.team_id)
    if filters.labels:
        conditions.append(Conversation.labels.contains(list(filters.labels)))
    if with_q and filters.q:
        conditions.append(_matches(agent.account_id, filters.q))
    return conditions


def _list_statement(agent: Agent, conditions: list[ColumnElement[bool]]) -> Any:
    """One statement: the conversations with contact, assignee, unread count and last message."""
    last = (
        select(
            Message.id.label("id"),
            func.left(Message.content, PREVIEW_CHARS).label("content"),
            Message.message_type.label("message_type"),
            Message.content_type.label("content_type"),
            Message.private.label("private"),
            Message.created_at.label("created_at"),
        )
        .where(Message.conversation_id == Conversation.id, Message.message_type != "activity")
        .order_by(Message.id.desc())
        .limit(1)
        .lateral("last_message")
    )
    unread = (
        select(func.count())
        .select_from(Message)
        .where(
            Message.conversation_id == Conversation.id,
            Message.message_type == "incoming",
            Message.id > func.coalesce(ConversationRead.last_read_message_id, 0),
        )
        .correlate(Conversation, ConversationRead)
        .scalar_subquery()
    )
    return (
        select(
            Conversation,
            Contact.id,
            Contact.name,
            Contact.phone_number,
            User.id,
            User.name,
            unread,
            last.c.id,
            last.c.content,
            last.c.message_type,
            last.c.content_type,
            last.c.private,
            last.c.created_at,
        )
        .join(Contact, Contact.id == Conversation.contact_id)
        .outerjoin(User, User.id == Conversation.assignee_id)
        .outerjoin(
            ConversationRead,
            and_(
                ConversationRead.conversation_id == Conversation.id,
                ConversationRead.user_id == agent.user_id,
            ),
        )
        .outerjoin(last, true())
        .where(*conditions)
    )


def _conversation_out(row: Any) -> ConversationOut:
    (conversation, contact_id, contact_name, phone, user_id, user_name, unread, *last) = row
    last_id, content, message_type, content_type, private, created_at = last
    return ConversationOut(
        id=conversation.id,
        display_id=conversation.display_id,
        inbox_id=conversation.inbox_id,
        status=conversation.status,
        priority=conversation.priority,
        assignee=AssigneeBrief(id=user_id, name=user_name) if user_id is not None else None,
        team_id=conversation.team_id,
        labels=list(conversation.labels or []),
        contact=ContactBrief(id=contact_id, name=contact_name or "", phone_number=phone),
        contact_inbox_id=conversation.contact_inbox_id,
        additional_attributes=dict(conversation.additional_attributes or {}),
        last_activity_at=conversation.last_activity_at,
        last_incoming_at=conversation.last_incoming_at,
        service_window=service_window(conversation.last_incoming_at),
        snoozed_until=conversation.snoozed_until,
        unread_count=int(unread or 0),
        last_message=MessagePreview(
            id=last_id,
            content=content,
            message_type=message_type,
            content_type=content_type,
            private=private,
            created_at=created_at,
        )
        if last_id is not None
        else None,
        created_at=conversation.created_at,
        ai_agent_id=conversation.ai_agent_id,
    )


def _list_cursor(cursor: str) -> tuple[datetime, int]:
    at, last_id = decode_cursor(cursor, 2)
    try:
        if not isinstance(last_id, int) or isinstance(last_id, bool) or not isinstance(at, str):
            raise ValueError
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError
    except ValueError:
        raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor") from None
    return moment, last_id


def _ordered_ids(query: Any, conditions: Sequence[ColumnElement[bool]], size: int) -> Any:
    """One page of ``(id, last_activity_at)``, newest activity first, as the list index runs."""
    return (
        query.where(*conditions)
        .order_by(Conversation.last_activity_at.desc(), Conversation.id.desc())
        .limit(size)
    )


def _q_page_ids(account_id: int, q: str, conditions: Sequence[ColumnElement[bool]], size: int) -> Any:
    """The page's ids for a text search: a ``UNION`` of ordered, limited branches, not an ``OR``.

    An ``OR`` of "a message matches" and "the contact matches" forces a join of every contact and
    a pass over every matching message; apart, each branch gets its own plan (a walk down the list
    index for a common word, the GIN index for a rare one) and stops after ``size`` rows.
    """
    query = _tsquery(q)
    columns = select(Conversation.id, Conversation.last_activity_at)
    in_messages = (
        select(literal_column("1"))
        .select_from(Message)
        .where(
            Message.conversation_id == Conversation.id,
            Message.account_id == account_id,
            Message.content_tsv.op("@@")(query),
        )
        .exists()
    )
    with_contact = columns.join(Contact, Contact.id == Conversation.contact_id)
    branches = [
        _ordered_ids(columns, [*conditions, in_messages], size),
        _ordered_ids(with_contact, [*conditions, Contact.search_tsv.op("@@")(query)], size),
    ]
    digits = _phone_digits(q)
    if digits:
        branches.append(
            _ordered_ids(with_contact, [*conditions, Contact.phone_number.contains(digits)], size)
        )
    found = union(*branches).subquery("found")
    return (
        select(found.c.id)
        .order_by(found.c.last_activity_at.desc(), found.c.id.desc())
        .limit(size)
        .subquery("page")
    )


async def list_conversations(
    session: AsyncSession,
    agent: Agent,
    filters: ConversationFilters,
    *,
    cursor: str | None = None,
    limit: int = 25,
) -> tuple[list[ConversationOut], str | None]:
    """A page, most recent activity first (keyset on ``last_activity_at, id``)."""
    visible = await visible_inbox_ids(session, agent)
    conditions = _conditions(agent, filters, visible, with_q=False)
    if cursor:
        at, last_id = _list_cursor(cursor)
        conditions.append(tuple_(Conversation.last_activity_at, Conversation.id) < tuple_(at, last_id))
    if filters.q:
        page_ids = _q_page_ids(agent.account_id, filters.q, conditions, limit + 1)
    else:
        columns = select(Conversation.id, Conversation.last_activity_at)
        page_ids = _ordered_ids(columns, conditions, limit + 1).subquery("page")
    # Page first, then decorate: contacts, reads, unread counts and last messages for these rows only.
    statement = _list_statement(agent, [Conversation.id.in_(select(page_ids.c.id))]).order_by(
        Conversation.last_activity_at.desc(), Conversation.id.desc()
    )
    rows = (await session.execute(statement)).all()
    page = [_conversation_out(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        tail = page[-1]
        next_cursor = encode_cursor(tail.last_activity_at.isoformat(), tail.id)
    return page, next_cursor


async def conversation_counts(
    session: AsyncSession, agent: Agent, filters: ConversationFilters
) -> ConversationCounts:
    """Chatwoot's mine / unassigned / all tab counts, for the other filters as given."""
    visible = await visible_inbox_ids(session, agent)
    conditions = _conditions(agent, filters, visible, by_assignee=False)
    statement = select(
        func.count().filter(Conversation.assignee_id == agent.user_id),
        func.count().filter(Conversation.assignee_id.is_(None)),
        func.count().filter(Conversation.assignee_id.is_not(None)),
        func.count(),
    ).where(*conditions)
    mine, unassigned, assigned, total = (await session.execute(statement)).one()
    return ConversationCounts(
        mine_count=mine, unassigned_count=unassigned, assigned_count=assigned, all_count=total
    )


async def conversation_view(session: AsyncSession, agent: Agent, conversation_id: int) -> ConversationOut:
    visible = await visible_inbox_ids(session, agent)
    statement = _list_statement(
        agent, [Conversation.id == conversation_id, *_scope(agent.account_id, visible)]
    )
    row = (await session.execute(statement)).first()
    if row is None:
        raise NotFound("conversation not found", field="conversation_id")
    return _conversation_out(row)


# --- events and activity ------------------------------------------------------------------------


def conversation_event(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "display_id": conversation.display_id,
        "inbox_id": conversation.inbox_id,
        "contact_id": conversation.contact_id,
        "status": conversation.status,
        "priority": conversation.priority,
        "assignee_id": conversation.assignee_id,
        "team_id": conversation.team_id,
        "labels": list(conversation.labels or []),
        "snoozed_until": conversation.snoozed_until.isoformat() if conversation.snoozed_until else None,
        "ai_agent_id": conversation.ai_agent_id,
    }


async def _publish_conversation(session: AsyncSession, event_type: str, conversation: Conversation) -> None:
    await publish(
        session,
        conversation.account_id,
        event_type,
        conversation_event(conversation),
        inbox_id=conversation.inbox_id,
    )


async def _publish_message(
    session: AsyncSession, message: Message, event_type: str, *, no_attachments: bool = False
) -> MessageOut:
    """Publish ``message.created`` / ``message.updated`` with the message's view; returns the view."""
    (view,) = await message_views(session, message.account_id, [message], no_attachments=no_attachments)
    await publish(
        session, message.account_id, event_type, view.model_dump(mode="json"), inbox_id=message.inbox_id
    )
    return view


async def publish_conversation_updated(session: AsyncSession, conversation: Conversation) -> None:
    """``conversation.updated`` for a change another domain made (an AI agent took or left it)."""
    await _publish_conversation(session, "conversation.updated", conversation)


async def publish_message_updated(session: AsyncSession, message: Message) -> MessageOut:
    """``message.updated`` for a change another domain made (a sentiment recorded on it)."""
    return await _publish_message(session, message, "message.updated")


async def set_status(session: AsyncSession, conversation: Conversation, status: str, activity: str) -> bool:
    """Change the status with this activity line (an AI agent's handoff); publishes as usual."""
    return await _apply_status(session, conversation, status, None, activity)


async def _announce(session: AsyncSession, conversation: Conversation, message: Message) -> MessageOut:
    """Publish ``message.created`` for a message just written; returns its view."""
    return await _publish_message(session, message, "message.created")


async def write_activity(session: AsyncSession, conversation: Conversation, content: str) -> Message:
    """An ``activity`` line in the conversation ("Assigned to Bruno by Ana"), as Chatwoot writes."""
    message = Message(
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        inbox_id=conversation.inbox_id,
        message_type="activity",
        content=content,
        content_type="text",
        content_attributes={},
        private=False,
        status="sent",
        sender_type="system",
        sender_id=None,
    )
    session.add(message)
    await session.flush()
    await _announce(session, conversation, message)
    return message


# --- changing conversations ---------------------------------------------------------------------


async def _next_display_id(session: AsyncSession, account_id: int) -> int:
    """``#42``: the account's next number; an advisory lock serialises concurrent creates."""
    await session.execute(
        select(func.pg_advisory_xact_lock(func.hashtextextended(f"whatwut.display_id:{account_id}", 0)))
    )
    current = await session.execute(
        select(func.coalesce(func.max(Conversation.display_id), 0)).where(
            Conversation.account_id == account_id
        )
    )
    return int(current.scalar_one()) + 1


async def _open_conversation(
    session: AsyncSession,
    *,
    account_id: int,
    inbox_id: int,
    contact_id: int,
    contact_inbox_id: int | None,
    status: str = "open",
    priority: str = "none",
    team_id: int | None = None,
    labels_: Sequence[str] = (),
    additional_attributes: dict[str, Any] | None = None,
) -> Conversation:
    conversation = Conversation(
        account_id=account_id,
        display_id=await _next_display_id(session, account_id),
        inbox_id=inbox_id,
        contact_id=contact_id,
        contact_inbox_id=contact_inbox_id,
        status=status,
        priority=priority,
        team_id=team_id,
        labels=list(labels_),
        additional_attributes=additional_attributes or {},
        last_activity_at=_now(),
    )
    session.add(conversation)
    await session.flush()
    await _publish_conversation(session, "conversation.created", conversation)
    return conversation


async def set_assignee(
    session: AsyncSession, conversation: Conversation, assignee_id: int | None, *, actor: Agent | None
) -> bool:
    """Change the assignee, write the activity line and publish ``assignee.changed``."""
    previous = conversation.assignee_id
    if previous == assignee_id:
        return False
    conversation.assignee_id = assignee_id
    names = await _user_names(session, [uid for uid in (assignee_id,) if uid is not None])
    by = actor.name if actor else "auto-assignment"
    if assignee_id is None:
        text_ = f"Conversation unassigned by {by}"
    elif actor is not None and actor.user_id == assignee_id:
        text_ = f"{actor.name} self-assigned this conversation"
    else:
        text_ = f"Assigned to {names.get(assignee_id, 'an agent')} by {by}"
    await session.flush()
    await write_activity(session, conversation, text_)
    payload = conversation_event(conversation) | {"previous_assignee_id": previous}
    await publish(
        session, conversation.account_id, "assignee.changed", payload, inbox_id=conversation.inbox_id
    )
    return True


async def auto_assign(session: AsyncSession, conversation: Conversation) -> int | None:
    """Round robin for a new conversation; stays unassigned when nobody is eligible."""
    chosen = await assignment.choose_assignee(
        session, account_id=conversation.account_id, inbox_id=conversation.inbox_id
    )
    if chosen is not None:
        await set_assignee(session, conversation, chosen, actor=None)
    return chosen


async def _set_team(
    session: AsyncSession, conversation: Conversation, team_id: int | None, actor: Agent
) -> bool:
    previous = conversation.team_id
    if previous == team_id:
        return False
    if team_id is not None:
        team = await _as_input(teams.get_team(session, conversation.account_id, team_id), "team_id")
        text_ = f"Assigned to {team.name} team by {actor.name}"
    else:
        try:
            old_name = (await teams.get_team(session, conversation.account_id, previous or 0)).name
        except NotFound:
            old_name = "the team"
        text_ = f"Unassigned from {old_name} by {actor.name}"
    conversation.team_id = team_id
    await session.flush()
    await write_activity(session, conversation, text_)
    return True


async def _set_labels(
    session: AsyncSession, conversation: Conversation, titles: Sequence[str], actor: Agent
) -> bool:
    current = list(conversation.labels or [])
    added = [t for t in titles if t not in current]
    removed = [t for t in current if t not in titles]
    if not added and not removed:
        return False
    if added:
        await labels.ensure_titles_exist(session, conversation.account_id, added)
    conversation.labels = list(titles)
    await session.flush()
    if added:
        await write_activity(session, conversation, f"{actor.name} added {', '.join(added)}")
    if removed:
        await write_activity(session, conversation, f"{actor.name} removed {', '.join(removed)}")
    return True


async def create_conversation(session: AsyncSession, agent: Agent, body: CreateConversation) -> Conversation:
    """An agent starts a conversation with a contact in an inbox they can see."""
    inbox = await _as_input(
        inboxes.get_visible_inbox(
            session, agent.account_id, body.inbox_id, user_id=agent.user_id, role=agent.role
        ),
        "inbox_id",
    )
    contact = await _as_input(contacts.get_contact(session, agent.account_id, body.contact_id), "contact_id")
    if body.team_id is not None:
        await _as_input(teams.get_team(session, agent.account_id, body.team_id), "team_id")
    if body.assignee_id is not None:
        await check_assignee(session, agent.account_id, inbox.id, body.assignee_id)
    if body.labels:
        await labels.ensure_titles_exist(session, agent.account_id, body.labels)
    contact_inbox_id = next(
        (
            ci.id
            for ci in await contacts.list_contact_inboxes(session, agent.account_id, contact.id)
            if ci.inbox_id == inbox.id
        ),
        None,
    )
    conversation = await _open_conversation(
        session,
        account_id=agent.account_id,
        inbox_id=inbox.id,
        contact_id=contact.id,
        contact_inbox_id=contact_inbox_id,
        status=body.status,
        priority=body.priority,
        team_id=body.team_id,
        labels_=body.labels,
        additional_attributes=body.additional_attributes,
    )
    if body.message is not None:
        await create_message(
            session, agent, conversation.id, CreateMessage(content=body.message.content), [], storage=None
        )
    if body.assignee_id is not None:
        await set_assignee(session, conversation, body.assignee_id, actor=agent)
    elif conversation.status == "open":
        await auto_assign(session, conversation)
    return conversation


async def update_conversation(
    session: AsyncSession, agent: Agent, conversation_id: int, body: UpdateConversation
) -> Conversation:
    conversation = await get_conversation(session, agent, conversation_id, for_update=True)
    changed = False
    sent = body.model_fields_set
    if "priority" in sent and body.priority is not None and body.priority != conversation.priority:
        conversation.priority = body.priority
        await session.flush()
        text_ = (
            f"{agent.name} removed the priority"
            if body.priority == "none"
            else f"{agent.name} set the priority to {body.priority}"
        )
        await write_activity(session, conversation, text_)
        changed = True
    if "labels" in sent and body.labels is not None:
        changed = await _set_labels(session, conversation, body.labels, agent) or changed
    if "team_id" in sent:
        changed = await _set_team(session, conversation, body.team_id, agent) or changed
    attributes = body.additional_attributes
    if (
        "additional_attributes" in sent
        and attributes is not None
        and attributes != conversation.additional_attributes
    ):
        conversation.additional_attributes = attributes
        changed = True
    if changed:
        await session.flush()
        await _publish_conversation(session, "conversation.updated", conversation)
    return conversation


async def set_conversation_labels(
    session: AsyncSession, agent: Agent, conversation_id: int, titles: Sequence[str]
) -> list[str]:
    """Replace the labels (Chatwoot's ``POST .../labels``)."""
    conversation = await get_conversation(session, agent, conversation_id, for_update=True)
    if await _set_labels(session, conversation, titles, agent):
        await _publish_conversation(session, "conversation.updated", conversation)
    return list(conversation.labels)


async def assign(
    session: AsyncSession,
    agent: Agent,
    conversation_id: int,
    *,
    assignee_id: int | None,
    change_assignee: bool,
    team_id: int | None,
    change_team: bool,
) -> Conversation:
    conversation = await get_conversation(session, agent, conversation_id, for_update=True)
    if change_assignee and assignee_id is not None:
        await check_assignee(session, agent.account_id, conversation.inbox_id, assignee_id)
    if change_team and await _set_team(session, conversation, team_id, agent):
        await _publish_conversation(session, "conversation.updated", conversation)
    if change_assignee:
        await set_assignee(session, conversation, assignee_id, actor=agent)
        if assignee_id is not None:
            await _human_acted(session, conversation, agent, "assign")
    return conversation


_STATUS_TEXT = {
    "open": "Conversation was reopened by {actor}",
    "resolved": "Conversation was marked resolved by {actor}",
    "pending": "Conversation was marked as pending by {actor}",
    "snoozed": "Conversation was snoozed until {until} by {actor}",
}


async def _apply_status(
    session: AsyncSession,
    conversation: Conversation,
    status: str,
    snoozed_until: datetime | None,
    activity: str,
) -> bool:
    if conversation.status == status and (status != "snoozed" or conversation.snoozed_until == snoozed_until):
        return False
    previous = conversation.status
    conversation.status = status
    conversation.snoozed_until = snoozed_until if status == "snoozed" else None
    await session.flush()
    await write_activity(session, conversation, activity)
    payload = conversation_event(conversation) | {"previous_status": previous}
    await publish(
        session,
        conversation.account_id,
        "conversation.status_changed",
        payload,
        inbox_id=conversation.inbox_id,
    )
    if status == "snoozed" and snoozed_until is not None:
        await defer(
            session, REOPEN_SNOOZED_JOB, {"conversation_id": conversation.id}, scheduled_at=snoozed_until
        )
    return True


async def change_status(
    session: AsyncSession,
    agent: Agent,
    conversation_id: int,
    status: str | None,
    snoozed_until: datetime | None = None,
) -> Conversation:
    """Open, pend, resolve or snooze; with no status, toggle open <-> resolved."""
    conversation = await get_conversation(session, agent, conversation_id, for_update=True)
    if status is None:
        status = "open" if conversation.status == "resolved" else "resolved"
    if status == "snoozed" and (snoozed_until is None or snoozed_until <= _now()):
        raise InvalidInput("`snoozed_until` must be in the future", field="snoozed_until")
    until = snoozed_until.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if snoozed_until else ""
    await _human_acted(session, conversation, agent, "status")
    await _apply_status(
        session,
        conversation,
        status,
        snoozed_until,
        _STATUS_TEXT[status].format(actor=agent.name, until=until),
    )
    return conversation


async def reopen_due_snoozed(
    session: AsyncSession, *, conversation_id: int | None = None, limit: int = 500
) -> int:
    """Reopen snoozed conversations whose time has come; safe to run any number of times."""
    query = (
        select(Conversation)
        .where(Conversation.status == "snoozed", Conversation.snoozed_until <= func.now())
        .order_by(Conversation.snoozed_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if conversation_id is not None:
        query = query.where(Conversation.id == conversation_id)
    due = (await session.execute(query)).scalars().all()
    for conversation in due:
        await _apply_status(
            session, conversation, "open", None, "Conversation was reopened as its snooze ended"
        )
    return len(due)


async def mark_read(session: AsyncSession, agent: Agent, conversation_id: int) -> ReadState:
    """Everything up to the latest message counts as read by this member."""
    conversation = await get_conversation(session, agent, conversation_id)
    latest = (
        await session.execute(
            select(func.coalesce(func.max(Message.id), 0)).where(Message.conversation_id == conversation.id)
        )
    ).scalar_one()
    await _defer_read_receipt(session, agent, conversation)
    statement = insert(ConversationRead).values(
        conversation_id=conversation.id,
        user_id=agent.user_id,
        last_read_message_id=latest,
        last_read_at=_now(),
    )
    statement = statement.on_conflict_do_update(
        index_elements=[ConversationRead.conversation_id, ConversationRead.user_id],
        set_={
            "last_read_message_id": func.greatest(
                ConversationRead.last_read_message_id, statement.excluded.last_read_message_id
            ),
            "last_read_at": statement.excluded.last_read_at,
        },
    )
    await session.execute(statement)
    return ReadState(conversation_id=conversation.id, last_read_message_id=int(latest), unread_count=0)


async def _defer_read_receipt(session: AsyncSession, agent: Agent, conversation: Conversation) -> None:
    """Channels with read receipts (WhatsApp's blue ticks) hear of customer messages newly read."""
    inbox = await inboxes.get_inbox(session, conversation.account_id, conversation.inbox_id)
    task = READ_RECEIPT_JOBS.get(inbox.channel_type)
    if task is None:
        return
    seen = select(ConversationRead.last_read_message_id).where(
        ConversationRead.conversation_id == conversation.id, ConversationRead.user_id == agent.user_id
    )
    newest = (
        await session.execute(
            select(func.max(Message.id)).where(
                Message.conversation_id == conversation.id,
                Message.message_type == "incoming",
                Message.id > func.coalesce(seen.scalar_subquery(), 0),
            )
        )
    ).scalar_one_or_none()
    if newest is not None:
        args = {
            "account_id": conversation.account_id,
            "conversation_id": conversation.id,
            "message_id": newest,
        }
        await defer(session, task, args)


# --- messages -----------------------------------------------------------------------------------


async def message_views(
    session: AsyncSession, account_id: int, messages: Sequence[Message], *, no_attachments: bool = False
) -> list[MessageOut]:
    """Messages with senders and attachments: three statements at most, whatever their number.

    ``no_attachments``: the caller has just written these messages without any, so they are not
    looked up (one round trip less per incoming text message).
    """
    contact_ids = {m.sender_id for m in messages if m.sender_type == "contact" and m.sender_id}
    user_ids = [m.sender_id for m in messages if m.sender_type in ("user", "bot") and m.sender_id]
    contact_names: dict[int, str] = {}
    if contact_ids:
        rows = await session.execute(
            select(Contact.id, Contact.name).where(
                Contact.id.in_(contact_ids), Contact.account_id == account_id
            )
        )
        contact_names = {int(cid): str(name) for cid, name in rows.all()}
    user_names = await _user_names(session, user_ids)
    attachments: dict[int, list[AttachmentOut]] = {}
    if messages and not no_attachments:
        rows_ = await session.execute(
            select(Attachment)
            .where(Attachment.message_id.in_([m.id for m in messages]), Attachment.account_id == account_id)
            .order_by(Attachment.id)
        )
        for attachment in rows_.scalars():
            attachments.setdefault(attachment.message_id, []).append(
                AttachmentOut(
                    id=attachment.id,
                    file_type=attachment.file_type,
                    mime_type=attachment.mime_type,
                    file_name=attachment.file_name,
                    byte_size=attachment.byte_size,
                    data_url=f"/api/v1/accounts/{account_id}/attachments/{attachment.id}"
                    if attachment.storage_key
                    else None,
                    external_url=attachment.external_url,
                )
            )
    views = []
    for message in messages:
        sender: Sender | None = None
        if message.sender_type == "contact":
            sender = Sender(
                type="contact", id=message.sender_id, name=contact_names.get(message.sender_id or 0)
            )
        elif message.sender_type in ("user", "bot"):
            sender = Sender(
                type=message.sender_type, id=message.sender_id, name=user_names.get(message.sender_id or 0)
            )
        views.append(
            MessageOut(
                id=message.id,
                conversation_id=message.conversation_id,
                inbox_id=message.inbox_id,
                message_type=message.message_type,
                content=message.content,
                content_type=message.content_type,
                content_attributes=dict(message.content_attributes or {}),
                source_id=message.source_id,
                status=message.status,
                external_error=message.external_error,
                sender=sender,
                private=message.private,
                attachments=attachments.get(message.id, []),
                created_at=message.created_at,
            )
        )
    return views


async def list_messages(
    session: AsyncSession, agent: Agent, conversation_id: int, *, before: int | None = None, limit: int = 50
) -> tuple[list[MessageOut], str | None]:
    """The newest page (or the page before ``before``), oldest to newest within the page."""
    conversation = await get_conversation(session, agent, conversation_id)
    query = select(Message).where(Message.conversation_id == conversation.id)
    if before is not None:
        query = query.where(Message.id < before)
    rows = list((await session.execute(query.order_by(Message.id.desc()).limit(limit + 1))).scalars())
    page = rows[:limit]
    page.reverse()
    next_cursor = str(page[0].id) if len(rows) > limit else None
    return await message_views(session, agent.account_id, page), next_cursor


def _checked_upload(upload: Upload, storage: Storage) -> tuple[str, str]:
    """The upload's (file_type, mime_type), or a 4xx naming ``attachments``."""
    mime = upload.mime_type.split(";", 1)[0].strip().lower()
    file_type = ACCEPTED_UPLOADS.get(mime)
    if file_type is None:
        raise InvalidInput(f"files of type {mime or 'unknown'!r} are not accepted", field="attachments")
    if not upload.data:
        raise InvalidInput("attachments must not be empty files", field="attachments")
    if len(upload.data) > storage.max_bytes:
        raise PayloadTooLarge(
            f"attachment is larger than the limit of {storage.max_bytes} bytes", field="attachments"
        )
    magic = _MAGIC.get(mime)
    if magic is not None and not upload.data.startswith(magic):
        raise InvalidInput(f"the file's content is not {mime}", field="attachments")
    return file_type, mime


async def create_message(
    session: AsyncSession,
    agent: Agent,
    conversation_id: int,
    body: CreateMessage,
    uploads: Sequence[Upload],
    *,
    storage: Storage | None,
    extra_attributes: dict[str, Any] | None = None,
) -> MessageOut:
    """An agent's reply or private note. Replies wait as ``pending`` until a channel sends them.

    ``extra_attributes`` are stored beside the checked ones (an AI agent's sources and confidence).
    """
    conversation = await get_conversation(session, agent, conversation_id, for_update=True)
    if len(uploads) > MAX_ATTACHMENTS:
        raise InvalidInput(f"at most {MAX_ATTACHMENTS} attachments per message", field="attachments")
    content, attributes = checked_message(body, attachment_count=len(uploads))
    if uploads and storage is None:
        raise InvalidInput("attachments are not accepted here", field="attachments")
    checked = [_checked_upload(upload, storage) for upload in uploads] if storage else []
    inbox: Inbox = await inboxes.get_inbox(session, agent.account_id, conversation.inbox_id)
    if not body.private:
        for check in _OUTGOING_CHECKS.get(inbox.channel_type, ()):
            content, attributes = await check(session, inbox, body.content_type, content, attributes)
    stored = [await storage.put(upload.data) for upload in uploads] if storage else []
    message = Message(
        account_id=conversation.account_id,
        conversation_id=conversation.id,
        inbox_id=conversation.inbox_id,
        message_type="outgoing",
        content=content,
        content_type=body.content_type,
        content_attributes={**(extra_attributes or {}), **attributes},
        private=body.private,
        status="sent" if body.private or inbox.channel_type == "api" else "pending",
        sender_type="bot" if agent.is_bot else "user",
        sender_id=agent.user_id,
    )
    session.add(message)
    await session.flush()
    for upload, (file_type, mime), blob in zip(uploads, checked, stored, strict=True):
        session.add(
            Attachment(
                account_id=conversation.account_id,
                message_id=message.id,
                file_type=file_type,
                mime_type=mime,
                file_name=safe_filename(upload.file_name, default=f"{file_type}"),
                byte_size=blob.byte_size,
                storage_key=blob.key,
                sha256=blob.sha256,
            )
        )
    if not body.private:
        conversation.last_activity_at = _now()
    await session.flush()
    if not body.private:
        await _human_acted(session, conversation, agent, "reply")
    delivery_job = DELIVERY_JOBS.get(inbox.channel_type)
    if delivery_job is not None and message.status == "pending":
        await defer(session, delivery_job, {"account_id": message.account_id, "message_id": message.id})
    return await _announce(session, conversation, message)


async def _latest_conversation(
    session: AsyncSession, inbox: Inbox, contact_inbox: ContactInbox
) -> Conversation | None:
    """The contact's latest conversation in the inbox, row-locked and freshly loaded."""
    return (
        await session.execute(
            select(Conversation)
            .where(
                Conversation.account_id == inbox.account_id, Conversation.contact_inbox_id == contact_inbox.id
            )
            .order_by(Conversation.id.desc())
            .limit(1)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def _conversation_for_incoming(
    session: AsyncSession, inbox: Inbox, contact_inbox: ContactInbox, latest: Conversation | None
) -> tuple[Conversation, bool]:
    """The contact's current conversation in the inbox, reopened if need be, or a new one."""
    if latest is not None:
        reopen = "System reopened the conversation due to a new incoming message"
        if latest.status in ("open", "pending"):
            return latest, False
        if latest.status == "snoozed" or inbox.resolved_policy == "reopen":
            await _apply_status(session, latest, "open", None, reopen)
            return latest, False
    conversation = await _open_conversation(
        session,
        account_id=inbox.account_id,
        inbox_id=inbox.id,
        contact_id=contact_inbox.contact_id,
        contact_inbox_id=contact_inbox.id,
    )
    return conversation, True


class _Duplicate(Exception):
    pass


def _add_attachments(
    session: AsyncSession, account_id: int, message_id: int, attachments: Sequence[IncomingAttachment]
) -> None:
    """A channel's files on a message (already in storage; the row says where)."""
    for item in attachments:
        session.add(
            Attachment(
                account_id=account_id,
                message_id=message_id,
                file_type=item.file_type,
                mime_type=item.mime_type,
                file_name=safe_filename(item.file_name),
                byte_size=item.byte_size,
                storage_key=item.storage_key,
                sha256=item.sha256,
                external_url=item.external_url,
            )
        )


async def record_incoming_message(
    session: AsyncSession,
    *,
    account_id: int,
    inbox_id: int,
    contact_inbox: ContactInbox,
    content: str | None,
    content_type: str = "text",
    content_attributes: dict[str, Any] | None = None,
    source_id: str | None = None,
    attachments: Sequence[IncomingAttachment] = (),
) -> Message | None:
    """Store what a customer sent, once: ``None`` when ``source_id`` was already stored.

    Finds or opens the contact's conversation (a snoozed one reopens; a resolved one too when the
    inbox's ``resolved_policy`` is ``reopen``), bumps its activity and publishes the events.
    Input from channels is never refused, only made storable.
    """
    # Deliveries for one contact are serialised, so a retry cannot race its original. The lock and
    # the look-up for a stored copy share a round trip; a copy committed while this waited for the
    # lock is missed by the look-up (the statement's snapshot predates the wait), but not by the
    # INSERT ... ON CONFLICT below, and what was done before it is undone by the savepoint.
    lock = func.pg_advisory_xact_lock(func.hashtextextended(f"whatwut.contact_inbox:{contact_inbox.id}", 0))
    if source_id is None:
        await session.execute(select(lock))
    else:
        known = (
            select(Message.id)
            .where(Message.inbox_id == inbox_id, Message.source_id == source_id)
            .limit(1)
            .scalar_subquery()
        )
        if (await session.execute(select(lock, known))).one()[1] is not None:
            return None
    inbox: Inbox = await inboxes.get_inbox(session, account_id, inbox_id)

    async def insert_message(conversation: Conversation) -> Message | None:
        statement = (
            insert(Message)
            .values(
                account_id=account_id,
                conversation_id=conversation.id,
                inbox_id=inbox_id,
                message_type="incoming",
                content=sanitize_text(content) if content is not None else None,
                content_type=content_type if content_type in CONTENT_TYPES else "unsupported",
                content_attributes=sanitize_json(content_attributes or {}),
                private=False,
                status="sent",
                source_id=sanitize_text(source_id)[:255] if source_id is not None else None,
                sender_type="contact",
                sender_id=contact_inbox.contact_id,
            )
            .on_conflict_do_nothing(
                index_elements=[Message.inbox_id, Message.source_id],
                index_where=Message.source_id.is_not(None),
            )
            .returning(Message)
        )
        return (await session.execute(statement)).scalar_one_or_none()

    latest = await _latest_conversation(session, inbox, contact_inbox)
    if latest is not None and latest.status in ("open", "pending"):
        # The usual case writes nothing before the insert, so a duplicate has nothing to undo:
        # no savepoint (two round trips less).
        conversation, created = latest, False
        message = await insert_message(conversation)
        if message is None:
            return None
    else:
        # A reopened or new conversation is undone by the savepoint if the message turns out to
        # be a duplicate (its display id too, so the numbers stay gap-free).
        try:
            async with session.begin_nested():
                conversation, created = await _conversation_for_incoming(
                    session, inbox, contact_inbox, latest
                )
                message = await insert_message(conversation)
                if message is None:
                    raise _Duplicate
        except _Duplicate:
            return None
    now = _now()
    _add_attachments(session, account_id, message.id, attachments)
    conversation.last_activity_at = now
    conversation.last_incoming_at = now
    await session.flush()
    await contacts.record_activity(session, contact_inbox.contact_id, now)
    await _publish_message(session, message, "message.created", no_attachments=not attachments)
    for hook in _INCOMING_HOOKS:
        await hook(session, inbox, conversation, message, created)
    if created and conversation.status == "open":
        await auto_assign(session, conversation)
    return message


async def _locked_message(session: AsyncSession, account_id: int, message_id: int) -> Message | None:
    """The account's message, row-locked and freshly loaded, so concurrent receipts and sends serialise."""
    return (
        await session.execute(
            select(Message)
            .where(Message.id == message_id, Message.account_id == account_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).scalar_one_or_none()


async def update_delivery_status(
    session: AsyncSession,
    *,
    account_id: int,
    message_id: int,
    status: str,
    source_id: str | None = None,
    external_error: str | None = None,
) -> Message | None:
    """A channel's receipt: statuses only move forward (a late ``delivered`` never undoes ``read``)."""
    message = await _locked_message(session, account_id, message_id)
    if message is None:
        return None
    changed = False
    if source_id is not None and message.source_id != source_id:
        message.source_id = source_id
        changed = True
    if status == "failed":
        if message.status in ("pending", "sent"):
            message.status, message.external_error, changed = "failed", external_error, True
    elif _DELIVERY_RANK.get(status, -1) > _DELIVERY_RANK.get(message.status, 99):
        message.status, changed = status, True
    if changed:
        await session.flush()
        await _publish_message(session, message, "message.updated")
    return message


async def search_messages(
    session: AsyncSession, agent: Agent, q: str, *, cursor: str | None = None, limit: int = 25
) -> tuple[list[SearchHit], str | None]:
    """Messages matching ``q`` (web-search syntax) in the conversations this member may see."""
    visible = await visible_inbox_ids(session, agent)
    conditions: list[ColumnElement[bool]] = [
        Message.account_id == agent.account_id,
        Message.message_type != "activity",
        Message.content_tsv.op("@@")(_tsquery(q)),
    ]
    if visible is not None:
        conditions.append(Message.inbox_id.in_(visible) if visible else false())
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, int) or isinstance(after, bool):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        conditions.append(Message.id < after)
    # The page of ids on ``messages`` alone (the GIN index or the primary key, whichever is
    # cheaper), then ``display_id`` for those rows: joined first, the GIN plan looks dear.
    page_ids = select(Message.id).where(*conditions).order_by(Message.id.desc()).limit(limit + 1)
    rows = (
        await session.execute(
            select(Message, Conversation.display_id)
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id.in_(page_ids), Conversation.account_id == agent.account_id)
            .order_by(Message.id.desc())
        )
    ).all()
    hits = [
        SearchHit(
            id=message.id,
            conversation_id=message.conversation_id,
            display_id=display_id,
            inbox_id=message.inbox_id,
            message_type=message.message_type,
            content=message.content,
            private=message.private,
            created_at=message.created_at,
        )
        for message, display_id in rows[:limit]
    ]
    return hits, encode_cursor(hits[-1].id) if len(rows) > limit else None


async def get_attachment(session: AsyncSession, agent: Agent, attachment_id: int) -> Attachment:
    """An attachment of a conversation this member may see; 404 otherwise."""
    visible = await visible_inbox_ids(session, agent)
    query = (
        select(Attachment)
        .join(Message, Message.id == Attachment.message_id)
        .where(Attachment.id == attachment_id, Attachment.account_id == agent.account_id)
    )
    if visible is not None:
        query = query.where(Message.inbox_id.in_(visible) if visible else false())
    attachment = (await session.execute(query)).scalar_one_or_none()
    if attachment is None or attachment.storage_key is None:
        raise NotFound("attachment not found", field="attachment_id")
    return attachment


# --- for channels delivering replies ------------------------------------------------------------


@dataclass(frozen=True)
class OutgoingDelivery:
    """A reply as a channel needs it: the message (row-locked), its files, and whom to send it to."""

    message: Message
    attachments: list[Attachment]
    #: The customer's id on the channel (a WhatsApp ``wa_id``), or their phone's digits.
    recipient: str | None
    #: The ``source_id`` of the message ``in_reply_to`` names, when it is in the same conversation.
    quoted_source_id: str | None


async def outgoing_delivery(
    session: AsyncSession, account_id: int, message_id: int
) -> OutgoingDelivery | None:
    """Lock an outgoing message for sending (one sender at a time); ``None`` if it is gone."""
    message = await _locked_message(session, account_id, message_id)
    if message is None:
        return None
    row = (
        await session.execute(
            select(ContactInbox.source_id, Contact.phone_number)
            .select_from(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .outerjoin(ContactInbox, ContactInbox.id == Conversation.contact_inbox_id)
            .where(Conversation.id == message.conversation_id)
        )
    ).one_or_none()
    recipient = None
    if row is not None:
        recipient = row[0] or (re.sub(r"\D", "", row[1]) if row[1] else None)
    quoted = (message.content_attributes or {}).get("in_reply_to")
    quoted_source_id = None
    if isinstance(quoted, int):
        quoted_source_id = (
            await session.execute(
                select(Message.source_id).where(
                    Message.id == quoted, Message.conversation_id == message.conversation_id
                )
            )
        ).scalar_one_or_none()
    attachments = (
        await session.execute(
            select(Attachment).where(Attachment.message_id == message.id).order_by(Attachment.id)
        )
    ).scalars()
    return OutgoingDelivery(
        message=message,
        attachments=list(attachments),
        recipient=recipient,
        quoted_source_id=quoted_source_id,
    )


async def conversation_message(
    session: AsyncSession, account_id: int, conversation_id: int, message_id: int
) -> Message | None:
    """A message of this conversation (a channel resolving ``in_reply_to`` or a read receipt)."""
    return (
        await session.execute(
            select(Message).where(
                Message.id == message_id,
                Message.account_id == account_id,
                Message.conversation_id == conversation_id,
            )
        )
    ).scalar_one_or_none()


# --- for channels changing what customers sent (reactions, edits, revokes, late media) -----------


async def find_message_by_source(
    session: AsyncSession, account_id: int, inbox_id: int, source_id: str, *, for_update: bool = False
) -> Message | None:
    """The inbox's message with this channel id (a WhatsApp ``wamid``), if stored."""
    query = select(Message).where(
        Message.inbox_id == inbox_id, Message.source_id == source_id, Message.account_id == account_id
    )
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()


async def amend_message(
    session: AsyncSession,
    message: Message,
    *,
    content: str | None = None,
    replace_content: bool = False,
    content_attributes: dict[str, Any] | None = None,
    attachments: Sequence[IncomingAttachment] = (),
) -> MessageOut:
    """A channel's change to a stored message, published as ``message.updated``.

    ``content_attributes`` replaces the attributes (callers merge); ``replace_content`` sets
    ``content`` even to ``None`` (a revoked message); attachments are added.
    """
    if replace_content:
        message.content = sanitize_text(content) if content is not None else None
    if content_attributes is not None:
        message.content_attributes = sanitize_json(content_attributes)
    _add_attachments(session, message.account_id, message.id, attachments)
    await session.flush()
    return await _publish_message(session, message, "message.updated")
