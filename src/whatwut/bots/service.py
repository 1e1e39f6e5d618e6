"""AI agents: who they are, which inboxes they answer, and the handoff between them and people.

The flow (Chatwoot's agent bots, with WhatWut's guarantees):

- A customer's first message in an inbox with an active agent opens the conversation ``pending``
  and handled by that agent (an ``agent_conversations`` span starts); every customer message of a
  conversation the agent handles becomes a signed webhook delivery, a job committed with the
  message, delivered in order per conversation (one procrastinate lock per conversation).
- The agent answers through the Agent API as a ``bot`` message, records each message's sentiment,
  or hands off (``open`` with a reason): the span ends with the reason, an activity line is written,
  auto-assignment picks an online person, and no further message goes to the agent.
- A person replying, assigning or changing the status takes over the same way.
- A webhook that keeps failing hands off too: a customer is never left with neither an answer nor
  a person.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.accounts.models import User
from whatwut.audit import service as audit
from whatwut.bots.models import AgentConversation, AiAgent, AiAgentDelivery, AiAgentInbox
from whatwut.bots.schemas import (
    AgentMessageCreate,
    AiAgentCreate,
    AiAgentOut,
    AiAgentUpdate,
    AssignedConversation,
    SentimentIn,
    SentimentOut,
)
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.conversations.models import Conversation, Message
from whatwut.conversations.schemas import CreateMessage, MessageOut
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox
from whatwut.jobs.service import defer
from whatwut.kit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.security.tokens import hash_token

DELIVER_JOB = "bots.deliver_webhook"
CHECK_ANSWERED_JOB = "bots.check_answered"
DEFAULT_ANSWER_TIMEOUT = 120
API_KEY_PREFIX = "wwb_"
TOKEN_TTL = timedelta(hours=12)
#: Attempts of one webhook delivery (1 s, 2 s, 4 s, 8 s apart) before the conversation goes to a
#: person: a customer on WhatsApp should not wait longer than that for someone to answer.
MAX_DELIVERY_ATTEMPTS = 5

#: What the activity line says for the reasons Wacanda gives (other bots' reasons are shown as sent).
HANDOFF_TEXT = {
    "human_request": "customer asked for a person",
    "negative_sentiment": "the customer seems upset",
    "low_confidence": "not confident enough to answer",
    "repeated_failure": "could not answer the same question twice",
    "escalation_keyword": "the message needs a person",
    "forbidden_topic": "a topic it does not handle",
    "llm_failure": "its language model failed",
    "unsafe_message": "a message it should not answer",
    "bot_unreachable": "the bot could not be reached",
    "bot_disabled": "the bot was disabled",
    "bot_error": "the bot failed to answer",
    "bot_silent": "the bot did not answer in time",
    "unsupported_content": "a message it cannot read",
}


def _now() -> datetime:
    return datetime.now(UTC)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    return secrets.token_urlsafe(32)


def sentiment_label(score: float) -> str:
    if score <= -0.25:
        return "negative"
    if score >= 0.25:
        return "positive"
    return "neutral"


# --- agents (the admin API) -------------------------------------------------------------------


async def agent_views(session: AsyncSession, agents: Sequence[AiAgent]) -> list[AiAgentOut]:
    inbox_ids: dict[int, list[int]] = {}
    if agents:
        rows = await session.execute(
            select(AiAgentInbox.ai_agent_id, AiAgentInbox.inbox_id)
            .where(AiAgentInbox.ai_agent_id.in_([a.id for a in agents]))
            .order_by(AiAgentInbox.inbox_id)
        )
        for agent_id, inbox_id in rows.all():
            inbox_ids.setdefault(int(agent_id), []).append(int(inbox_id))
    return [
        AiAgentOut(
            id=agent.id,
            account_id=agent.account_id,
            name=agent.name,
            type=agent.type,
            status=agent.status,
            webhook_url=str(agent.configuration.get("webhook_url", "")),
            description=str(agent.configuration.get("description", "")),
            answer_timeout_seconds=answer_timeout(agent),
            api_key_prefix=agent.api_key_prefix,
            inbox_ids=inbox_ids.get(agent.id, []),
            performance_metrics=dict(agent.performance_metrics or {}),
            created_at=agent.created_at,
        )
        for agent in agents
    ]


async def agent_view(session: AsyncSession, agent: AiAgent) -> AiAgentOut:
    (view,) = await agent_views(session, [agent])
    return view


async def create_agent(
    session: AsyncSession,
    context: AppContext,
    account_id: int,
    body: AiAgentCreate,
    *,
    actor_user_id: int | None,
) -> tuple[AiAgent, str, str]:
    """A new agent with its author identity; returns it with its API key and webhook secret (once)."""
    await accounts.get_account(session, account_id)
    existing = await session.scalar(
        select(AiAgent.id).where(AiAgent.account_id == account_id, AiAgent.name == body.name)
    )
    if existing is not None:
        raise Conflict(f"an AI agent named {body.name!r} already exists", field="name")
    user = await accounts.create_user(
        session, email=f"agent-{secrets.token_hex(8)}@bots.whatwut.invalid", name=body.name, password=None
    )
    user.is_bot = True
    api_key, webhook_secret = new_api_key(), new_webhook_secret()
    agent = AiAgent(
        account_id=account_id,
        name=body.name,
        type=body.type,
        configuration={
            "webhook_url": str(body.webhook_url),
            "description": body.description,
            "answer_timeout_seconds": body.answer_timeout_seconds,
        },
        secrets_encrypted=context.secrets.seal({"webhook_secret": webhook_secret}),
        api_key_hash=hash_token(api_key),
        api_key_prefix=api_key[:8],
        user_id=user.id,
        status="active",
        performance_metrics={},
    )
    session.add(agent)
    await session.flush()
    await audit.record(
        session, account_id, actor_user_id, "ai_agent.created", "ai_agent", agent.id, {"name": body.name}
    )
    return agent, api_key, webhook_secret


async def get_agent(
    session: AsyncSession, account_id: int, agent_id: int, *, for_update: bool = False
) -> AiAgent:
    query = select(AiAgent).where(AiAgent.id == agent_id, AiAgent.account_id == account_id)
    if for_update:
        query = query.with_for_update()
    agent = (await session.execute(query)).scalar_one_or_none()
    if agent is None:
        raise NotFound("AI agent not found", field="ai_agent_id")
    return agent


async def find_agent_by_name(session: AsyncSession, account_id: int, name: str) -> AiAgent | None:
    return (
        await session.execute(select(AiAgent).where(AiAgent.account_id == account_id, AiAgent.name == name))
    ).scalar_one_or_none()


async def list_agents(session: AsyncSession, account_id: int) -> list[AiAgent]:
    rows = await session.execute(select(AiAgent).where(AiAgent.account_id == account_id).order_by(AiAgent.id))
    return list(rows.scalars())


async def update_agent(
    session: AsyncSession, account_id: int, agent_id: int, body: AiAgentUpdate, *, actor_user_id: int | None
) -> AiAgent:
    agent = await get_agent(session, account_id, agent_id, for_update=True)
    sent = body.model_fields_set
    if "name" in sent and body.name is not None and body.name != agent.name:
        if await find_agent_by_name(session, account_id, body.name) is not None:
            raise Conflict(f"an AI agent named {body.name!r} already exists", field="name")
        agent.name = body.name
    configuration = dict(agent.configuration or {})
    if "webhook_url" in sent and body.webhook_url is not None:
        configuration["webhook_url"] = str(body.webhook_url)
    if "description" in sent and body.description is not None:
        configuration["description"] = body.description
    if "answer_timeout_seconds" in sent and body.answer_timeout_seconds is not None:
        configuration["answer_timeout_seconds"] = body.answer_timeout_seconds
    agent.configuration = configuration
    if "status" in sent and body.status is not None:
        agent.status = body.status
    await session.flush()
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "ai_agent.updated",
        "ai_agent",
        agent.id,
        body.model_dump(mode="json", exclude_unset=True),
    )
    return agent


async def rotate_credentials(
    session: AsyncSession, context: AppContext, agent: AiAgent, *, actor_user_id: int | None
) -> tuple[str, str]:
    """New API key and webhook secret (the old ones stop working at commit); returned once."""
    api_key, webhook_secret = new_api_key(), new_webhook_secret()
    agent.api_key_hash = hash_token(api_key)
    agent.api_key_prefix = api_key[:8]
    agent.secrets_encrypted = context.secrets.seal({"webhook_secret": webhook_secret})
    await session.flush()
    await audit.record(
        session, agent.account_id, actor_user_id, "ai_agent.credentials_rotated", "ai_agent", agent.id, {}
    )
    return api_key, webhook_secret


def api_key_matches(agent: AiAgent, api_key: str) -> bool:
    return bool(secrets.compare_digest(agent.api_key_hash, hash_token(api_key)))


async def delete_agent(
    session: AsyncSession, account_id: int, agent_id: int, *, actor_user_id: int | None
) -> None:
    """Delete the agent; conversations it was handling go to people first."""
    agent = await get_agent(session, account_id, agent_id, for_update=True)
    handled = await session.scalars(
        select(Conversation.id).where(
            Conversation.account_id == account_id, Conversation.ai_agent_id == agent.id
        )
    )
    for conversation_id in list(handled):
        conversation = await _conversation(session, agent, conversation_id)
        await _end(session, agent, conversation, reason="bot_disabled", detail=None)
    await session.delete(agent)
    await session.flush()
    await audit.record(session, account_id, actor_user_id, "ai_agent.deleted", "ai_agent", agent_id, {})


async def inbox_agent(session: AsyncSession, account_id: int, inbox_id: int) -> AiAgent | None:
    await inboxes.get_inbox(session, account_id, inbox_id)
    return (
        await session.execute(
            select(AiAgent)
            .join(AiAgentInbox, AiAgentInbox.ai_agent_id == AiAgent.id)
            .where(AiAgentInbox.inbox_id == inbox_id, AiAgentInbox.account_id == account_id)
        )
    ).scalar_one_or_none()


async def set_inbox_agent(
    session: AsyncSession, account_id: int, inbox_id: int, agent_id: int | None, *, actor_user_id: int | None
) -> AiAgent | None:
    """Attach ``agent_id`` to the inbox (replacing any other) or detach with None.

    Conversations already open are left with whoever handles them; new ones go to the new agent.
    """
    await inboxes.get_inbox(session, account_id, inbox_id)
    agent = None
    if agent_id is not None:
        try:
            agent = await get_agent(session, account_id, agent_id)
        except NotFound as exc:
            raise InvalidInput(exc.detail, field="ai_agent_id") from None
    current = await session.get(AiAgentInbox, inbox_id)
    if current is not None and (agent is None or current.ai_agent_id != agent.id):
        await session.delete(current)
        await session.flush()
        current = None
    if agent is not None and current is None:
        session.add(AiAgentInbox(inbox_id=inbox_id, account_id=account_id, ai_agent_id=agent.id))
        await session.flush()
    await audit.record(
        session, account_id, actor_user_id, "inbox.ai_agent_set", "inbox", inbox_id, {"ai_agent_id": agent_id}
    )
    return agent


async def list_deliveries(
    session: AsyncSession, account_id: int, agent_id: int, *, cursor: str | None, limit: int
) -> tuple[list[AiAgentDelivery], str | None]:
    await get_agent(session, account_id, agent_id)
    query = select(AiAgentDelivery).where(
        AiAgentDelivery.agent_id == agent_id, AiAgentDelivery.account_id == account_id
    )
    if cursor:
        (before,) = decode_cursor(cursor, 1)
        query = query.where(AiAgentDelivery.id < int(before))
    rows = list((await session.execute(query.order_by(AiAgentDelivery.id.desc()).limit(limit + 1))).scalars())
    return rows[:limit], encode_cursor(rows[limit - 1].id) if len(rows) > limit else None


async def conversation_spans(
    session: AsyncSession, account_id: int, conversation_id: int
) -> list[AgentConversation]:
    rows = await session.execute(
        select(AgentConversation)
        .where(
            AgentConversation.account_id == account_id, AgentConversation.conversation_id == conversation_id
        )
        .order_by(AgentConversation.id)
    )
    return list(rows.scalars())


# --- the Agent API ------------------------------------------------------------------------------


async def authenticate(session: AsyncSession, api_key: str) -> tuple[AiAgent, str, datetime]:
    """Exchange the agent's API key for a bearer token of its bot identity (401 otherwise)."""
    agent = (
        await session.execute(select(AiAgent).where(AiAgent.api_key_hash == hash_token(api_key)))
    ).scalar_one_or_none()
    if agent is None:
        raise NotAuthenticated("the API key is not valid")
    if agent.status != "active":
        raise NotAuthenticated("this AI agent is disabled")
    user = await session.get(User, agent.user_id)
    assert user is not None
    token, raw = await accounts.issue_token(
        session, user, kind="session", name=f"ai_agent:{agent.id}", account_id=agent.account_id, ttl=TOKEN_TTL
    )
    assert token.expires_at is not None
    return agent, raw, token.expires_at


async def agent_for_token(session: AsyncSession, raw: str) -> AiAgent:
    """The active agent behind an Agent API bearer token; 401 for anyone else's token."""
    token, user = await accounts.resolve_token(session, raw)
    agent = (await session.execute(select(AiAgent).where(AiAgent.user_id == user.id))).scalar_one_or_none()
    if agent is None or token.account_id != agent.account_id:
        raise NotAuthenticated("this token is not an AI agent's (exchange the API key at /api/agents/auth)")
    if agent.status != "active":
        raise NotAuthenticated("this AI agent is disabled")
    return agent


def _actor(agent: AiAgent) -> conversations.Agent:
    return conversations.Agent(
        account_id=agent.account_id, user_id=agent.user_id, name=agent.name, role="administrator", is_bot=True
    )


async def _conversation(session: AsyncSession, agent: AiAgent, conversation_id: int) -> Conversation:
    return await conversations.get_conversation(session, _actor(agent), conversation_id, for_update=True)


async def _handled(session: AsyncSession, agent: AiAgent, conversation_id: int) -> Conversation:
    """The conversation if this agent handles it now: 404 if it never did, 409 once people have it."""
    conversation = await _conversation(session, agent, conversation_id)
    if conversation.ai_agent_id == agent.id:
        return conversation
    ever = await session.scalar(
        select(AgentConversation.id).where(
            AgentConversation.agent_id == agent.id, AgentConversation.conversation_id == conversation.id
        )
    )
    if ever is None:
        raise NotFound("conversation not found", field="conversation_id")
    raise Conflict("a person handles this conversation now", field="conversation_id")


async def assigned_conversations(
    session: AsyncSession, agent: AiAgent, *, cursor: str | None, limit: int
) -> tuple[list[AssignedConversation], str | None]:
    query = select(Conversation).where(
        Conversation.account_id == agent.account_id, Conversation.ai_agent_id == agent.id
    )
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        query = query.where(Conversation.id > int(after))
    rows = list((await session.execute(query.order_by(Conversation.id).limit(limit + 1))).scalars())
    page = [
        AssignedConversation(
            id=c.id,
            display_id=c.display_id,
            inbox_id=c.inbox_id,
            status=c.status,
            contact_id=c.contact_id,
            last_activity_at=c.last_activity_at,
        )
        for c in rows[:limit]
    ]
    return page, encode_cursor(rows[limit - 1].id) if len(rows) > limit else None


async def post_message(
    session: AsyncSession, agent: AiAgent, conversation_id: int, body: AgentMessageCreate
) -> MessageOut:
    """The agent's answer, sent through the inbox's channel like a person's reply."""
    conversation = await _handled(session, agent, conversation_id)
    if body.in_reply_to is not None:
        replied = await conversations.conversation_message(
            session, agent.account_id, conversation.id, body.in_reply_to
        )
        if replied is None:
            raise InvalidInput("in_reply_to is not a message of this conversation", field="in_reply_to")
    extra: dict[str, Any] = {
        "ai_agent": {"id": agent.id, "name": agent.name},
        "sources": [s.model_dump(exclude_none=True) for s in body.sources],
    }
    if body.confidence is not None:
        extra["confidence"] = round(body.confidence, 3)
    if body.in_reply_to is not None:
        extra["answers_message_id"] = body.in_reply_to
    view = await conversations.create_message(
        session,
        _actor(agent),
        conversation.id,
        CreateMessage(content=body.content),
        [],
        storage=None,
        extra_attributes=extra,
    )
    await _count(session, agent.id, "answers")
    return view


async def record_sentiment(
    session: AsyncSession, agent: AiAgent, conversation_id: int, message_id: int, body: SentimentIn
) -> SentimentOut:
    """Store a customer message's sentiment on it (agents see a badge) and as the conversation's mood."""
    conversation = await _conversation(session, agent, conversation_id)
    ever = conversation.ai_agent_id == agent.id or await session.scalar(
        select(AgentConversation.id).where(
            AgentConversation.agent_id == agent.id, AgentConversation.conversation_id == conversation.id
        )
    )
    if not ever:
        raise NotFound("conversation not found", field="conversation_id")
    message = await conversations.conversation_message(session, agent.account_id, conversation.id, message_id)
    if message is None:
        raise NotFound("message not found", field="message_id")
    if message.message_type != "incoming":
        raise InvalidInput("only customer messages have a sentiment", field="message_id")
    score = round(body.score, 3)
    label = body.label or sentiment_label(score)
    message.content_attributes = {
        **(message.content_attributes or {}),
        "sentiment": {"score": score, "label": label},
    }
    latest = await session.scalar(
        select(func.max(Message.id)).where(
            Message.conversation_id == conversation.id, Message.message_type == "incoming"
        )
    )
    if latest == message.id:
        conversation.additional_attributes = {
            **(conversation.additional_attributes or {}),
            "mood": {"score": score, "label": label, "message_id": message.id},
        }
    await session.flush()
    await conversations.publish_message_updated(session, message)
    if latest == message.id:
        await conversations.publish_conversation_updated(session, conversation)
    return SentimentOut(message_id=message.id, score=score, label=label)


async def change_status(
    session: AsyncSession,
    agent: AiAgent,
    conversation_id: int,
    status: str,
    reason: str | None,
    detail: str | None,
) -> Conversation:
    """``open``: hand off to people with a reason; ``resolved``: the agent closes the conversation."""
    conversation = await _handled(session, agent, conversation_id)
    if status == "open":
        await _end(session, agent, conversation, reason=reason or "handoff", detail=detail)
    else:
        await _close_span(session, agent, conversation, reason or "resolved")
        conversation.ai_agent_id = None
        await conversations.set_status(
            session, conversation, "resolved", f"{agent.name} resolved the conversation"
        )
        await conversations.publish_conversation_updated(session, conversation)
    return conversation


# --- taking, ending and delivering ----------------------------------------------------------------


_COUNT = text(
    "UPDATE ai_agents SET performance_metrics = jsonb_set(performance_metrics, ARRAY[CAST(:key AS text)], "
    "to_jsonb(COALESCE((performance_metrics ->> CAST(:key AS text))::bigint, 0) + 1)) WHERE id = :id"
)


async def _count(session: AsyncSession, agent_id: int, key: str) -> None:
    """Bump one of ``performance_metrics``'s counters atomically."""
    await session.execute(_COUNT, {"key": key, "id": agent_id})


#: The customer messages whose sentiment estimates a span's satisfaction: how they feel at its end.
SATISFACTION_MESSAGES = 3

# The mean sentiment (-1..1) of the customer's last messages of the open span, as 0..1; NULL when
# the bot recorded no sentiment for any of them.
_SPAN_SATISFACTION = text(
    """
    SELECT (avg(score) + 1) / 2 FROM (
        SELECT (m.content_attributes -> 'sentiment' ->> 'score')::float AS score
          FROM messages m
         WHERE m.conversation_id = :conversation AND m.message_type = 'incoming'
           AND m.created_at >= :started AND m.content_attributes ? 'sentiment'
         ORDER BY m.created_at DESC, m.id DESC
         LIMIT :last
    ) recent
    """
)


async def _close_span(session: AsyncSession, agent: AiAgent, conversation: Conversation, reason: str) -> None:
    """End the bot's open span with its reason and an estimated satisfaction: no survey is sent,
    the score reads the sentiment the bot recorded on the customer's last messages."""
    span = (
        await session.execute(
            select(AgentConversation).where(
                AgentConversation.conversation_id == conversation.id, AgentConversation.ended_at.is_(None)
            )
        )
    ).scalar_one_or_none()
    if span is None:
        return
    satisfaction = await session.scalar(
        _SPAN_SATISFACTION,
        {"conversation": conversation.id, "started": span.started_at, "last": SATISFACTION_MESSAGES},
    )
    span.ended_at, span.handoff_reason = _now(), reason[:255]
    span.satisfaction_score = None if satisfaction is None else round(float(satisfaction), 3)
    await session.flush()


def handoff_text(agent_name: str, reason: str, detail: str | None) -> str:
    why = HANDOFF_TEXT.get(reason, reason.replace("_", " "))
    return f"{agent_name} handed the conversation to a human: {why}"


async def _end(
    session: AsyncSession, agent: AiAgent, conversation: Conversation, *, reason: str, detail: str | None
) -> None:
    """The handoff: span ended with the reason, activity line, ``open``, auto-assignment, events."""
    await _close_span(session, agent, conversation, reason)
    conversation.ai_agent_id = None
    attributes = dict(conversation.additional_attributes or {})
    attributes["handoff"] = {
        "reason": reason,
        "detail": detail,
        "ai_agent_id": agent.id,
        "at": _now().isoformat(),
    }
    conversation.additional_attributes = attributes
    await session.flush()
    text_ = handoff_text(agent.name, reason, detail)
    if not await conversations.set_status(session, conversation, "open", text_):
        await conversations.write_activity(session, conversation, text_)
    if conversation.assignee_id is None:
        await conversations.auto_assign(session, conversation)
    await conversations.publish_conversation_updated(session, conversation)
    await _count(session, agent.id, "handoffs")


async def on_incoming(
    session: AsyncSession, inbox: Inbox, conversation: Conversation, message: Message, created: bool
) -> None:
    """A customer wrote: a new conversation in an inbox with an agent goes to it (``pending``);
    a message of a conversation an agent handles becomes a webhook delivery."""
    if message.message_type != "incoming":
        return
    if conversation.ai_agent_id is None:
        if not created:
            return
        agent = (
            await session.execute(
                select(AiAgent)
                .join(AiAgentInbox, AiAgentInbox.ai_agent_id == AiAgent.id)
                .where(AiAgentInbox.inbox_id == inbox.id, AiAgent.status == "active")
            )
        ).scalar_one_or_none()
        if agent is None:
            return
        conversation.ai_agent_id = agent.id
        conversation.status = "pending"
        session.add(
            AgentConversation(account_id=agent.account_id, agent_id=agent.id, conversation_id=conversation.id)
        )
        await session.flush()
        await conversations.publish_conversation_updated(session, conversation)
        await _count(session, agent.id, "conversations")
    else:
        handling = await session.get(AiAgent, conversation.ai_agent_id)
        if handling is None:
            conversation.ai_agent_id = None
            return
        agent = handling
        if agent.status != "active":
            await _end(session, agent, conversation, reason="bot_disabled", detail=None)
            return
    await _queue_delivery(session, agent, inbox, conversation, message)


async def _queue_delivery(
    session: AsyncSession, agent: AiAgent, inbox: Inbox, conversation: Conversation, message: Message
) -> None:
    event_id = uuid.uuid4().hex
    (view,) = await conversations.message_views(session, agent.account_id, [message])
    payload: dict[str, Any] = {
        "event": "message_created",
        "id": event_id,
        "account": {"id": agent.account_id},
        "agent": {"id": agent.id, "name": agent.name},
        "inbox": {"id": inbox.id, "name": inbox.name, "channel_type": inbox.channel_type},
        "conversation": {
            "id": conversation.id,
            "display_id": conversation.display_id,
            "status": conversation.status,
            "contact_id": conversation.contact_id,
        },
        "message": {
            "id": message.id,
            "content": message.content,
            "content_type": message.content_type,
            "created_at": view.created_at.isoformat(),
            "sender": view.sender.model_dump(mode="json") if view.sender else None,
        },
    }
    delivery = AiAgentDelivery(
        account_id=agent.account_id,
        agent_id=agent.id,
        conversation_id=conversation.id,
        message_id=message.id,
        event_id=event_id,
        event="message_created",
        payload=payload,
        status="pending",
        attempts=0,
    )
    session.add(delivery)
    await session.flush()
    await defer(
        session,
        DELIVER_JOB,
        {"account_id": agent.account_id, "delivery_id": delivery.id},
        lock=f"ai_agent.conversation:{conversation.id}",
    )


async def on_human_action(
    session: AsyncSession, conversation: Conversation, actor: conversations.Agent, action: str
) -> None:
    """A person replied, assigned or changed the status: they take over from the agent."""
    agent = await session.get(AiAgent, conversation.ai_agent_id or 0)
    conversation.ai_agent_id = None
    if agent is None:
        return
    await _close_span(session, agent, conversation, f"human_takeover:{action}")
    await session.flush()
    text_ = f"{actor.name} took over the conversation from {agent.name}"
    if action in ("reply", "assign") and conversation.status == "pending":
        await conversations.set_status(session, conversation, "open", text_)
    else:
        await conversations.write_activity(session, conversation, text_)
    await conversations.publish_conversation_updated(session, conversation)
    await _count(session, agent.id, "takeovers")


async def give_up(session: AsyncSession, delivery: AiAgentDelivery, error: str) -> None:
    """The webhook failed for good: the conversation goes to people, now."""
    delivery.status = "failed"
    delivery.last_error = error[:2000]
    agent = await session.get(AiAgent, delivery.agent_id)
    conversation = (
        await session.execute(
            select(Conversation).where(Conversation.id == delivery.conversation_id).with_for_update()
        )
    ).scalar_one_or_none()
    if agent is not None:
        await _count(session, agent.id, "webhook_failures")
    if agent is not None and conversation is not None and conversation.ai_agent_id == agent.id:
        await _end(session, agent, conversation, reason="bot_unreachable", detail=error[:500])
    await session.flush()


def answer_timeout(agent: AiAgent) -> int:
    value = agent.configuration.get("answer_timeout_seconds", DEFAULT_ANSWER_TIMEOUT)
    return int(value) if isinstance(value, int) else DEFAULT_ANSWER_TIMEOUT


async def watch_answer(session: AsyncSession, agent: AiAgent, delivery: AiAgentDelivery) -> None:
    """After a delivery, check in ``answer_timeout_seconds`` that the agent answered or handed off."""
    await defer(
        session,
        CHECK_ANSWERED_JOB,
        {"account_id": agent.account_id, "delivery_id": delivery.id},
        scheduled_at=_now() + timedelta(seconds=answer_timeout(agent)),
    )


async def check_answered(session: AsyncSession, account_id: int, delivery_id: int) -> bool:
    """A delivered message the agent left unanswered goes to people (True when it did)."""
    delivery = await session.scalar(
        select(AiAgentDelivery).where(
            AiAgentDelivery.id == delivery_id, AiAgentDelivery.account_id == account_id
        )
    )
    if delivery is None or delivery.message_id is None:
        return False
    conversation = (
        await session.execute(
            select(Conversation).where(Conversation.id == delivery.conversation_id).with_for_update()
        )
    ).scalar_one_or_none()
    if conversation is None or conversation.ai_agent_id != delivery.agent_id:
        return False
    answered = await session.scalar(
        select(func.count())
        .select_from(Message)
        .where(
            Message.conversation_id == conversation.id,
            Message.id > delivery.message_id,
            Message.sender_type == "bot",
        )
    )
    later = await session.scalar(
        select(func.count())
        .select_from(AiAgentDelivery)
        .where(AiAgentDelivery.conversation_id == conversation.id, AiAgentDelivery.id > delivery.id)
    )
    if answered or later:
        return False
    agent = await session.get(AiAgent, delivery.agent_id)
    assert agent is not None
    await _end(session, agent, conversation, reason="bot_silent", detail=None)
    return True


def webhook_secret(context: AppContext, agent: AiAgent) -> str:
    return str(context.secrets.open(agent.secrets_encrypted)["webhook_secret"])


conversations.register_incoming_hook(on_incoming)
conversations.register_human_action_hook(on_human_action)
