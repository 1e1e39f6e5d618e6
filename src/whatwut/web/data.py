"""The pages' reads and writes, through the domains' services (never their tables).

Each function takes the signed-in :class:`PageMember` and acts as that member would through the
API: the same visibility rules, the same activity lines and events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.canned_responses import service as canned
from whatwut.contacts import service as contacts
from whatwut.conversations import service as conversations
from whatwut.conversations.schemas import ConversationOut, CreateMessage, MessageOut
from whatwut.inboxes import service as inboxes
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.labels import service as labels
from whatwut.web.filters import Filters
from whatwut.web.security import PageMember, PageNotFound
from whatwut.web.views import (
    AgentView,
    AttachmentView,
    ConversationRow,
    ConversationView,
    InboxView,
    LabelView,
    MessageView,
    SentimentView,
    SourceView,
)

LIST_PAGE = 25
#: Channels with WhatsApp's 24-hour customer-service window.
WINDOWED_CHANNELS = ("whatsapp_cloud", "whatsapp_sandbox")
MESSAGES_PAGE = 50
#: Members listed in the assign dropdown; accounts larger than this assign through the API.
MAX_AGENTS = 200


@dataclass(frozen=True)
class Sidebar:
    inboxes: list[InboxView]
    labels: list[LabelView]

    @property
    def label_colors(self) -> dict[str, str]:
        return {label.title: label.color for label in self.labels}

    def inbox(self, inbox_id: int) -> InboxView:
        for inbox in self.inboxes:
            if inbox.id == inbox_id:
                return inbox
        return InboxView(id=inbox_id, name="Inbox", channel_type="api")


def agent_of(member: PageMember) -> conversations.Agent:
    return conversations.Agent(
        account_id=member.account_id,
        user_id=member.user.id,
        name=member.user.name,
        role=member.role,
        is_bot=member.user.is_bot,
    )


async def sidebar(session: AsyncSession, member: PageMember) -> Sidebar:
    rows, _next = await inboxes.list_inboxes(
        session, member.account_id, user_id=member.user.id, role=member.role, limit=100
    )
    inbox_views = [InboxView(id=i.id, name=i.name, channel_type=i.channel_type) for i in rows]
    return Sidebar(inboxes=inbox_views, labels=await _labels(session, member))


async def _labels(session: AsyncSession, member: PageMember) -> list[LabelView]:
    rows, _next = await labels.list_labels(session, member.account_id, limit=100)
    return [LabelView(title=label.title, color=label.color) for label in rows]


async def canned_responses(session: AsyncSession, member: PageMember) -> list[dict[str, str]]:
    """Short codes and texts for the composer's ``/`` menu."""
    rows, _next = await canned.list_canned_responses(session, member.account_id, limit=100)
    return [{"short_code": row.short_code, "content": row.content} for row in rows]


def _service_filters(filters: Filters) -> conversations.ConversationFilters:
    return conversations.ConversationFilters(
        status=filters.status,
        assignee_type=filters.assignee_type,
        inbox_id=filters.inbox_id,
        labels=(filters.label,) if filters.label else (),
        q=filters.q,
    )


def _preview(conversation: ConversationOut) -> tuple[str, bool]:
    last = conversation.last_message
    if last is None:
        return "", False
    text = " ".join(last.content.split()) if last.content else f"[{last.content_type.replace('_', ' ')}]"
    if last.message_type == "activity":
        return text, False
    if last.private:
        return f"Note: {text}", True
    return text, last.message_type == "outgoing"


def _row(conversation: ConversationOut, bar: Sidebar) -> ConversationRow:
    preview, outgoing = _preview(conversation)
    return ConversationRow(
        id=conversation.id,
        display_id=conversation.display_id,
        status=conversation.status,
        contact_name=conversation.contact.name or conversation.contact.phone_number or "Unknown contact",
        contact_phone=conversation.contact.phone_number,
        inbox_name=bar.inbox(conversation.inbox_id).name,
        last_activity_at=conversation.last_activity_at,
        preview=preview,
        preview_outgoing=outgoing,
        unread=conversation.unread_count,
        labels=tuple(conversation.labels),
        assignee_name=conversation.assignee.name if conversation.assignee else None,
        priority=conversation.priority,
        bot_handled=conversation.ai_agent_id is not None,
        mood=_sentiment(conversation.additional_attributes.get("mood")),
    )


def _sentiment(value: object) -> SentimentView | None:
    """The ``{"label", "score"}`` an AI agent recorded, if well formed (attributes are JSON)."""
    if not isinstance(value, dict):
        return None
    label, score = value.get("label"), value.get("score")
    if label not in ("negative", "neutral", "positive") or not isinstance(score, int | float):
        return None
    return SentimentView(label=str(label), score=float(score))


def _sources(value: object) -> tuple[SourceView, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(
        SourceView(
            number=item["number"] if isinstance(item.get("number"), int) else None,
            document=str(item.get("document", "")),
            heading=str(item.get("heading", "")),
        )
        for item in value[:20]
        if isinstance(item, dict) and item.get("document")
    )


async def conversation_rows(
    session: AsyncSession, member: PageMember, filters: Filters, bar: Sidebar, cursor: str | None = None
) -> tuple[list[ConversationRow], str | None]:
    try:
        page, next_cursor = await conversations.list_conversations(
            session, agent_of(member), _service_filters(filters), cursor=cursor, limit=LIST_PAGE
        )
    except (InvalidInput, NotFound):
        # A stale cursor or an inbox this member cannot see: show nothing rather than an error page.
        return [], None
    return [_row(c, bar) for c in page], next_cursor


async def tab_counts(session: AsyncSession, member: PageMember, filters: Filters) -> dict[str, int]:
    try:
        counts = await conversations.conversation_counts(session, agent_of(member), _service_filters(filters))
    except (InvalidInput, NotFound):
        return {}
    return {"me": counts.mine_count, "unassigned": counts.unassigned_count, "all": counts.all_count}


def _message(message: MessageOut) -> MessageView:
    return MessageView(
        id=message.id,
        message_type=message.message_type,
        content=message.content,
        created_at=message.created_at,
        content_type=message.content_type,
        private=message.private,
        status=message.status,
        error=message.external_error,
        sender_name=message.sender.name if message.sender else None,
        attachments=tuple(
            AttachmentView(file_type=a.file_type, file_name=a.file_name, url=a.data_url or a.external_url)
            for a in message.attachments
        ),
        sender_type=message.sender.type if message.sender else None,
        sources=_sources(message.content_attributes.get("sources")),
        confidence=confidence
        if isinstance(confidence := message.content_attributes.get("confidence"), float)
        else None,
        sentiment=_sentiment(message.content_attributes.get("sentiment")),
    )


async def messages(
    session: AsyncSession, member: PageMember, conversation_id: int, before: int | None = None
) -> tuple[list[MessageView], str | None]:
    try:
        page, older = await conversations.list_messages(
            session, agent_of(member), conversation_id, before=before, limit=MESSAGES_PAGE
        )
    except NotFound:
        raise PageNotFound from None
    return [_message(m) for m in page], older


async def conversation(
    session: AsyncSession,
    member: PageMember,
    conversation_id: int,
    bar: Sidebar,
    *,
    with_messages: bool = True,
) -> ConversationView:
    """The open conversation; 404 (as a page) for one this member may not see."""
    agent = agent_of(member)
    try:
        found = await conversations.conversation_view(session, agent, conversation_id)
    except NotFound:
        raise PageNotFound from None
    email: str | None = None
    try:
        email = (await contacts.get_contact(session, member.account_id, found.contact.id)).email
    except NotFound:
        email = None
    view = ConversationView(
        id=found.id,
        display_id=found.display_id,
        status=found.status,
        contact_name=found.contact.name or found.contact.phone_number or "Unknown contact",
        contact_phone=found.contact.phone_number,
        contact_email=email,
        inbox=bar.inbox(found.inbox_id),
        assignee_id=found.assignee.id if found.assignee else None,
        assignee_name=found.assignee.name if found.assignee else None,
        labels=tuple(found.labels),
        priority=found.priority,
        snoozed_until=found.snoozed_until,
        created_at=found.created_at,
    )
    if view.inbox.channel_type in WINDOWED_CHANNELS:
        view.window_open = found.service_window.open
        view.window_expires_at = found.service_window.expires_at
    if with_messages:
        view.messages, view.older_cursor = await messages(session, member, conversation_id)
    return view


async def mark_read(session: AsyncSession, member: PageMember, conversation_id: int) -> None:
    await conversations.mark_read(session, agent_of(member), conversation_id)


async def assignable_agents(session: AsyncSession, member: PageMember, inbox_id: int) -> list[AgentView]:
    """Members who can see the inbox (administrators see them all), for the assign dropdown."""
    rows, _next = await accounts.list_members(session, member.account_id, limit=MAX_AGENTS)
    inbox_members = set(await inboxes.inbox_member_ids(session, inbox_id))
    return [
        AgentView(id=user.id, name=user.name, email=user.email, availability=membership.availability)
        for user, membership in rows
        if membership.role == "administrator" or user.id in inbox_members
    ]


async def send_message(
    session: AsyncSession, member: PageMember, conversation_id: int, content: str, *, private: bool
) -> None:
    body = CreateMessage(content=content, private=private)
    await conversations.create_message(session, agent_of(member), conversation_id, body, [], storage=None)


SNOOZE_CHOICES = ("1h", "tomorrow", "next_week")


def snooze_until(choice: str, now: datetime | None = None) -> datetime:
    """When a snooze menu choice ends: in an hour, tomorrow 09:00 or next Monday 09:00 (UTC)."""
    now = now or datetime.now(UTC)
    if choice == "1h":
        return now + timedelta(hours=1)
    morning = now.replace(hour=9, minute=0, second=0, microsecond=0)
    if choice == "tomorrow":
        return morning + timedelta(days=1)
    if choice == "next_week":
        return morning + timedelta(days=7 - now.weekday())
    raise InvalidInput("choose how long to snooze", field="snooze")


async def change_status(
    session: AsyncSession, member: PageMember, conversation_id: int, status: str | None, snooze: str | None
) -> None:
    if snooze:
        await conversations.change_status(
            session, agent_of(member), conversation_id, "snoozed", snooze_until(snooze)
        )
        return
    if status not in ("open", "pending", "resolved"):
        raise InvalidInput("status must be open, pending or resolved", field="status")
    await conversations.change_status(session, agent_of(member), conversation_id, status)


async def assign(
    session: AsyncSession, member: PageMember, conversation_id: int, assignee_id: int | None
) -> None:
    await conversations.assign(
        session,
        agent_of(member),
        conversation_id,
        assignee_id=assignee_id,
        change_assignee=True,
        team_id=None,
        change_team=False,
    )


async def change_labels(
    session: AsyncSession,
    member: PageMember,
    conversation_id: int,
    current: Sequence[str],
    *,
    add: str | None,
    remove: str | None,
) -> None:
    titles = [t for t in current if t != remove]
    if add and add not in titles:
        titles.append(add)
    await conversations.set_conversation_labels(session, agent_of(member), conversation_id, titles)
