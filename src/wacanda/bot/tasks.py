"""Answering a WhatWut customer message: one job per message, in order per conversation.

The pipeline runs through the answering service (the session's memory is keyed by the WhatWut
conversation), then the Agent API gets the message's sentiment and either the answer with its
sources or the handoff with its reason. Once WhatWut says people handle the conversation (409)
the job stops: nothing is ever sent after a handoff.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import procrastinate
import structlog

from wacanda.answering import service
from wacanda.answering.types import Reply
from wacanda.bot.api import ANSWER_JOB
from wacanda.bot.credentials import credentials_for
from wacanda.context import get_current
from wacanda.db import transaction
from wacanda.jobs import REPLIES_QUEUE, queue
from wacanda.whatwut_client import HandledByPeople, WhatWutClient, WhatWutError

log = structlog.get_logger(__name__)
MAX_TEXT = 4096


def whatsapp_text(reply: Reply) -> str:
    """The answer as the customer reads it: the text, then its numbered sources."""
    text = reply.answer or ""
    lines = []
    for citation in reply.citations:
        name = citation.title or citation.document
        heading = f" — {citation.heading}" if citation.heading and citation.heading != name else ""
        lines.append(f"[{citation.number}] {name}{heading}")
    if lines:
        text = f"{text}\n\nSources:\n" + "\n".join(lines)
    return text[:MAX_TEXT]


def sources(reply: Reply) -> list[dict[str, Any]]:
    return [
        {"number": c.number, "document": c.document[:500], "heading": c.heading[:500]}
        for c in reply.citations[:20]
    ]


MAX_ATTEMPTS = 5
CALL_RETRIES = (0.5, 1.0, 2.0, 4.0)
T = TypeVar("T")


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """An Agent API call, retried a few times when WhatWut errs: the turn is already recorded, so
    a hiccup should not re-run the pipeline (the job's own retry would)."""
    for wait in CALL_RETRIES:
        try:
            return await call()
        except WhatWutError:
            await asyncio.sleep(wait)
    return await call()


@queue.task(
    name=ANSWER_JOB,
    queue=REPLIES_QUEUE,
    retry=procrastinate.RetryStrategy(max_attempts=MAX_ATTEMPTS, exponential_wait=1),
    pass_context=True,
)
async def answer_whatwut_message(
    job_context: procrastinate.JobContext,
    account_id: int,
    agent_id: int | None,
    conversation_id: int,
    message_id: int,
    content: str,
    content_type: str = "text",
) -> str:
    context = get_current()
    credentials = credentials_for(context.settings, agent_id)
    if credentials is None:
        log.warning("wacanda.bot.unknown_agent", agent_id=agent_id)
        return "unknown agent"
    client = WhatWutClient(credentials)
    try:
        if not content.strip() and content_type != "text":
            await client.hand_off(conversation_id, "unsupported_content", f"a {content_type} message")
            return "handed off"
        try:
            async with transaction(context.sessionmaker) as session:
                turn = await service.prepare(
                    session,
                    context.settings,
                    context.embedder,
                    account_id,
                    external_id=f"whatwut:{conversation_id}",
                )
                reply = await turn.pipeline.reply(content, turn.memory)
                await service.record(session, turn, content, reply)
        except Exception as exc:
            attempts = job_context.job.attempts if job_context.job else 0
            if attempts + 1 < MAX_ATTEMPTS:
                raise
            # The last try failed too: a person answers rather than nobody.
            log.exception("wacanda.bot.answer_failed", conversation_id=conversation_id)
            await client.hand_off(conversation_id, "bot_error", f"{type(exc).__name__}")
            return "handed off"
        # The turn is recorded: WhatWut's hiccups are retried here, not by re-running the pipeline.
        await _patiently(lambda: client.record_sentiment(conversation_id, message_id, reply.sentiment))
        if reply.answer and not reply.handoff.needed:
            await _patiently(
                lambda: client.post_message(
                    conversation_id,
                    whatsapp_text(reply),
                    sources=sources(reply),
                    confidence=reply.confidence,
                    in_reply_to=message_id,
                )
            )
            return "answered"
        if reply.message:
            await _patiently(
                lambda: client.post_message(
                    conversation_id,
                    (reply.message or "")[:MAX_TEXT],
                    confidence=reply.confidence,
                    in_reply_to=message_id,
                )
            )
        if reply.handoff.needed:
            reason = reply.handoff.reason.value if reply.handoff.reason else "handoff"
            await _patiently(lambda: client.hand_off(conversation_id, reason, reply.handoff.detail or None))
            return "handed off"
        return "apologised"
    except HandledByPeople:
        return "handled by people"
    finally:
        await client.close()
