"""Routes of AI agents: the account's admin API, and the Agent API a bot calls with its own token.

The Agent API keeps the original plan's paths (``/api/agents/...``, ``/api/conversations/...``);
a bot sees only the conversations it handles, and another account's ids answer 404.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.bots import service
from whatwut.bots.models import AiAgent
from whatwut.bots.schemas import (
    AgentAuth,
    AgentConversationOut,
    AgentMessageCreate,
    AgentStatusChange,
    AgentToken,
    AiAgentCreate,
    AiAgentCredentials,
    AiAgentOut,
    AiAgentUpdate,
    AssignedConversation,
    DeliveryOut,
    InboxAgentOut,
    InboxAgentUpdate,
    SentimentIn,
    SentimentOut,
)
from whatwut.conversations.schemas import MessageOut
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import NotAuthenticated
from whatwut.kit.schemas import Page, PageMeta

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Limit = Annotated[int, Query(ge=1, le=100)]
Cursor = Annotated[str | None, Query(max_length=512)]

admin_router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["ai agents"])
agent_router = APIRouter(tags=["agent api"])


# --- admin ------------------------------------------------------------------------------------


@admin_router.get("/ai_agents", summary="List the account's AI agents")
async def list_agents(member: AccountMember, session: DbSession) -> Page[AiAgentOut]:
    agents = await service.list_agents(session, member.account_id)
    return Page(data=await service.agent_views(session, agents), meta=PageMeta(next_cursor=None))


@admin_router.post(
    "/ai_agents",
    status_code=201,
    summary="Create an AI agent (administrators); its API key and webhook secret are shown once",
)
async def create_agent(
    admin: AccountAdmin, body: AiAgentCreate, session: DbSession, context: Context
) -> AiAgentCredentials:
    agent, api_key, secret = await service.create_agent(
        session, context, admin.account_id, body, actor_user_id=admin.user.id
    )
    view = await service.agent_view(session, agent)
    return AiAgentCredentials(**view.model_dump(), api_key=api_key, webhook_secret=secret)


@admin_router.get("/ai_agents/{ai_agent_id}", summary="Show an AI agent")
async def get_agent(member: AccountMember, ai_agent_id: Id, session: DbSession) -> AiAgentOut:
    return await service.agent_view(session, await service.get_agent(session, member.account_id, ai_agent_id))


@admin_router.patch("/ai_agents/{ai_agent_id}", summary="Rename, re-point, enable or disable an AI agent")
async def update_agent(
    admin: AccountAdmin, ai_agent_id: Id, body: AiAgentUpdate, session: DbSession
) -> AiAgentOut:
    agent = await service.update_agent(
        session, admin.account_id, ai_agent_id, body, actor_user_id=admin.user.id
    )
    return await service.agent_view(session, agent)


@admin_router.post(
    "/ai_agents/{ai_agent_id}/credentials",
    summary="Rotate the agent's API key and webhook secret (shown once)",
)
async def rotate_credentials(
    admin: AccountAdmin, ai_agent_id: Id, session: DbSession, context: Context
) -> AiAgentCredentials:
    agent = await service.get_agent(session, admin.account_id, ai_agent_id, for_update=True)
    api_key, secret = await service.rotate_credentials(session, context, agent, actor_user_id=admin.user.id)
    view = await service.agent_view(session, agent)
    return AiAgentCredentials(**view.model_dump(), api_key=api_key, webhook_secret=secret)


@admin_router.delete(
    "/ai_agents/{ai_agent_id}",
    status_code=204,
    summary="Delete an AI agent; the conversations it handles go to people",
)
async def delete_agent(admin: AccountAdmin, ai_agent_id: Id, session: DbSession) -> Response:
    await service.delete_agent(session, admin.account_id, ai_agent_id, actor_user_id=admin.user.id)
    return Response(status_code=204)


@admin_router.get(
    "/ai_agents/{ai_agent_id}/deliveries",
    summary="The agent's webhook deliveries, newest first (failures stay visible here)",
)
async def list_deliveries(
    admin: AccountAdmin, ai_agent_id: Id, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[DeliveryOut]:
    rows, next_cursor = await service.list_deliveries(
        session, admin.account_id, ai_agent_id, cursor=cursor, limit=limit
    )
    return Page(data=[DeliveryOut.model_validate(r) for r in rows], meta=PageMeta(next_cursor=next_cursor))


@admin_router.get("/inboxes/{inbox_id}/ai_agent", summary="The AI agent that answers this inbox first")
async def get_inbox_agent(member: AccountMember, inbox_id: Id, session: DbSession) -> InboxAgentOut:
    agent = await service.inbox_agent(session, member.account_id, inbox_id)
    return InboxAgentOut(
        inbox_id=inbox_id, ai_agent=await service.agent_view(session, agent) if agent else None
    )


@admin_router.put(
    "/inboxes/{inbox_id}/ai_agent",
    summary="Attach an AI agent to the inbox (`null` detaches); new conversations go to it first",
)
async def set_inbox_agent(
    admin: AccountAdmin, inbox_id: Id, body: InboxAgentUpdate, session: DbSession
) -> InboxAgentOut:
    agent = await service.set_inbox_agent(
        session, admin.account_id, inbox_id, body.ai_agent_id, actor_user_id=admin.user.id
    )
    return InboxAgentOut(
        inbox_id=inbox_id, ai_agent=await service.agent_view(session, agent) if agent else None
    )


@admin_router.get(
    "/conversations/{conversation_id}/ai_agent_spans",
    summary="When AI agents handled this conversation, and why each span ended",
)
async def conversation_spans(
    member: AccountMember, conversation_id: Id, session: DbSession
) -> Page[AgentConversationOut]:
    spans = await service.conversation_spans(session, member.account_id, conversation_id)
    return Page(data=[AgentConversationOut.model_validate(s) for s in spans], meta=PageMeta(next_cursor=None))


# --- the Agent API ----------------------------------------------------------------------------


async def current_agent(request: Request, session: DbSession) -> AiAgent:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("send `Authorization: Bearer <token from POST /api/agents/auth>`")
    return await service.agent_for_token(session, value.strip())


CurrentAgent = Annotated[AiAgent, Depends(current_agent)]


@agent_router.post("/api/agents/auth", summary="Exchange an AI agent's API key for a bearer token")
async def agent_auth(body: AgentAuth, session: DbSession) -> AgentToken:
    agent, token, expires_at = await service.authenticate(session, body.api_key)
    return AgentToken(
        access_token=token, expires_at=expires_at, agent=await service.agent_view(session, agent)
    )


@agent_router.get("/api/agents/me", summary="The calling AI agent")
async def agent_me(agent: CurrentAgent, session: DbSession) -> AiAgentOut:
    return await service.agent_view(session, agent)


@agent_router.get("/api/conversations/assigned", summary="The conversations the calling AI agent handles now")
async def assigned(
    agent: CurrentAgent, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[AssignedConversation]:
    page, next_cursor = await service.assigned_conversations(session, agent, cursor=cursor, limit=limit)
    return Page(data=page, meta=PageMeta(next_cursor=next_cursor))


@agent_router.post(
    "/api/conversations/{conversation_id}/messages",
    status_code=201,
    summary="Answer the customer (409 once a person handles the conversation)",
)
async def agent_message(
    agent: CurrentAgent, conversation_id: Id, body: AgentMessageCreate, session: DbSession
) -> MessageOut:
    return await service.post_message(session, agent, conversation_id, body)


@agent_router.put(
    "/api/conversations/{conversation_id}/messages/{message_id}/sentiment",
    summary="Record a customer message's sentiment (shown to agents)",
)
async def agent_sentiment(
    agent: CurrentAgent, conversation_id: Id, message_id: Id, body: SentimentIn, session: DbSession
) -> SentimentOut:
    return await service.record_sentiment(session, agent, conversation_id, message_id, body)


@agent_router.put(
    "/api/conversations/{conversation_id}/status",
    summary="`open` hands the conversation to people with a reason; `resolved` closes it",
)
async def agent_status(
    agent: CurrentAgent, conversation_id: Id, body: AgentStatusChange, session: DbSession
) -> AssignedConversation:
    conversation = await service.change_status(
        session, agent, conversation_id, body.status, body.reason, body.detail
    )
    return AssignedConversation(
        id=conversation.id,
        display_id=conversation.display_id,
        inbox_id=conversation.inbox_id,
        status=conversation.status,
        contact_id=conversation.contact_id,
        last_activity_at=conversation.last_activity_at,
    )
