"""Wacanda's answering routes under ``/functions/v1`` (the original plan's paths): one message in,
an answer with sources and confidence (or a handoff) out; agent status and configuration."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sse_starlette import EventSourceResponse

from wacanda.answering import service
from wacanda.answering.config import RAGConfig
from wacanda.answering.types import Reply
from wacanda.auth import CallerAccount
from wacanda.db import transaction
from wacanda.knowledge.api import Session, context_of

router = APIRouter(prefix="/functions/v1", tags=["answering"])
MAX_MESSAGE_CHARS = 20_000


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(max_length=MAX_MESSAGE_CHARS)
    session_id: int | None = Field(default=None, ge=1, lt=2**63)
    #: The caller's conversation id (WhatWut's); the same id continues the same session.
    conversation_id: str | None = Field(default=None, min_length=1, max_length=200)
    knowledge_base: str | list[str] | None = None

    def knowledge_bases(self) -> list[str]:
        if self.knowledge_base is None:
            return []
        return [self.knowledge_base] if isinstance(self.knowledge_base, str) else self.knowledge_base


class ChatIn(MessageIn):
    stream: bool = False


def _out(reply: Reply, session_id: int, message_id: int) -> dict[str, Any]:
    body = reply.as_json()
    body["handoff"] = {**body["handoff"], "detail": reply.handoff.detail or None}  # type: ignore[dict-item]
    return {"session_id": session_id, "message_id": message_id, **body}


async def _answer(request: Request, session: Any, account_id: int, body: MessageIn) -> dict[str, Any]:
    context = context_of(request)
    turn = await service.prepare(
        session,
        context.settings,
        context.embedder,
        account_id,
        session_id=body.session_id,
        external_id=body.conversation_id,
        knowledge_bases=body.knowledge_bases(),
    )
    reply = await turn.pipeline.reply(body.message, turn.memory)
    message_id = await service.record(session, turn, body.message, reply)
    return _out(reply, turn.chat.id, message_id)


@router.post("/rag-process", summary="Answer one message from the knowledge base, or hand off")
async def rag_process(
    request: Request, body: MessageIn, account_id: CallerAccount, session: Session
) -> dict[str, Any]:
    return await _answer(request, session, account_id, body)


@router.post(
    "/chat-response",
    summary="Answer within a chat session; `stream: true` sends SSE `delta` events then `reply`",
    response_model=None,
)
async def chat_response(
    request: Request, body: ChatIn, account_id: CallerAccount, session: Session
) -> dict[str, Any] | EventSourceResponse:
    if not body.stream:
        return await _answer(request, session, account_id, body)
    context = context_of(request)
    # Check the session and knowledge bases (and create the session) before the stream starts,
    # so a bad id is a 404 problem, not an error event.
    turn = await service.prepare(
        session,
        context.settings,
        context.embedder,
        account_id,
        session_id=body.session_id,
        external_id=body.conversation_id,
        knowledge_bases=body.knowledge_bases(),
    )
    chat_id = turn.chat.id
    await session.commit()
    return EventSourceResponse(_stream(request, account_id, chat_id, body), ping=15)


async def _stream(
    request: Request, account_id: int, chat_id: int, body: ChatIn
) -> AsyncIterator[dict[str, str]]:
    context = context_of(request)
    async with transaction(context.sessionmaker) as session:
        turn = await service.prepare(
            session,
            context.settings,
            context.embedder,
            account_id,
            session_id=chat_id,
            knowledge_bases=body.knowledge_bases(),
        )
        reply: Reply | None = None
        async for event in turn.pipeline.stream(body.message, turn.memory):
            if event.delta is not None:
                yield {"event": "delta", "data": json.dumps({"text": event.delta}, ensure_ascii=False)}
            elif event.reply is not None:
                reply = event.reply
        assert reply is not None
        message_id = await service.record(session, turn, body.message, reply)
    yield {"event": "reply", "data": json.dumps(_out(reply, chat_id, message_id), ensure_ascii=False)}


@router.get(
    "/agent-status",
    summary="The agent's configuration, model, activity counts and jobs waiting / running per queue",
)
async def agent_status(request: Request, account_id: CallerAccount, session: Session) -> dict[str, Any]:
    return await service.status(session, context_of(request).settings, account_id)


@router.post(
    "/agent-configure",
    summary="Change the agent's RAGConfig (only the fields sent); invalid values are refused whole",
)
async def agent_configure(
    request: Request, body: dict[str, Any], account_id: CallerAccount, session: Session
) -> dict[str, Any]:
    current = await service.load_config(session, account_id)
    try:
        config = RAGConfig.model_validate({**current.model_dump(), **body})
    except ValidationError as error:
        raise service.invalid_config(error) from error
    await service.save_config(session, account_id, config)
    return {"config": config.model_dump(mode="json")}
