"""API shapes of AI agents: the admin API (per account) and the Agent API (the bot's own calls)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field

from whatwut.kit.schemas import Input, Output

Name = Annotated[str, Field(min_length=1, max_length=255)]
Reason = Annotated[str, Field(min_length=1, max_length=255)]


class AiAgentCreate(Input):
    name: Name
    type: Literal["wacanda", "webhook"] = "wacanda"
    webhook_url: AnyHttpUrl
    description: Annotated[str, Field(max_length=1000)] = ""
    #: Seconds the agent has to answer or hand off a delivered message before people get it.
    answer_timeout_seconds: Annotated[int, Field(ge=5, le=3600)] = 120


class AiAgentUpdate(Input):
    name: Name | None = None
    webhook_url: AnyHttpUrl | None = None
    description: Annotated[str, Field(max_length=1000)] | None = None
    answer_timeout_seconds: Annotated[int, Field(ge=5, le=3600)] | None = None
    status: Literal["active", "disabled"] | None = None


class AiAgentOut(Output):
    id: int
    account_id: int
    name: str
    type: str
    status: str
    webhook_url: str
    description: str
    answer_timeout_seconds: int
    api_key_prefix: str
    inbox_ids: list[int]
    performance_metrics: dict[str, Any]
    created_at: datetime


class AiAgentCredentials(AiAgentOut):
    """Shown once, when the agent is created or its credentials are rotated."""

    api_key: str
    webhook_secret: str


class InboxAgentUpdate(Input):
    """Attach an agent to an inbox (``null`` detaches it)."""

    ai_agent_id: Annotated[int, Field(ge=1, le=2**63 - 1)] | None


class InboxAgentOut(Output):
    inbox_id: int
    ai_agent: AiAgentOut | None


class DeliveryOut(Output):
    id: int
    agent_id: int
    conversation_id: int
    message_id: int | None
    event_id: str
    event: str
    status: str
    attempts: int
    response_status: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class AgentConversationOut(Output):
    id: int
    agent_id: int
    conversation_id: int
    started_at: datetime
    ended_at: datetime | None
    handoff_reason: str | None
    satisfaction_score: float | None


# --- the Agent API --------------------------------------------------------------------------------


class AgentAuth(Input):
    api_key: Annotated[str, Field(min_length=1, max_length=200)]


class AgentToken(Output):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    agent: AiAgentOut


class Source(Input):
    document: Annotated[str, Field(max_length=500)]
    heading: Annotated[str, Field(max_length=500)] = ""
    number: Annotated[int, Field(ge=1, le=100)] | None = None


class AgentMessageCreate(Input):
    """A bot's reply: the text sent to the customer, with what it was built from."""

    content: Annotated[str, Field(min_length=1, max_length=4096)]
    sources: Annotated[list[Source], Field(max_length=20)] = []
    confidence: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] | None = None
    #: The customer message this answers (it must be in the conversation).
    in_reply_to: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = None


class SentimentIn(Input):
    """A customer message's sentiment, from -1 (angry) to 1 (delighted)."""

    score: Annotated[float, Field(ge=-1.0, le=1.0, allow_inf_nan=False)]
    label: Literal["negative", "neutral", "positive"] | None = None


class SentimentOut(Output):
    message_id: int
    score: float
    label: str


class AgentStatusChange(Input):
    """``open`` hands the conversation to people (with the reason); ``resolved`` closes it."""

    status: Literal["open", "resolved"]
    reason: Reason | None = None
    detail: Annotated[str, Field(max_length=1000)] | None = None


class AssignedConversation(Output):
    id: int
    display_id: int
    inbox_id: int
    status: str
    contact_id: int
    last_activity_at: datetime
