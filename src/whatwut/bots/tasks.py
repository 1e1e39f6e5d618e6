"""Delivering signed webhooks to AI agents: one job per customer message, in order per conversation.

Each run counts an attempt in its own committed transaction, then posts outside any transaction;
the result is recorded in a second one. After ``MAX_DELIVERY_ATTEMPTS`` failures the conversation
is handed to people instead of raising (so the customer is never left waiting on a dead bot).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import structlog
from sqlalchemy import select

from whatwut.bots import service
from whatwut.bots.models import AiAgent, AiAgentDelivery
from whatwut.bots.signing import AGENT_HEADER, EVENT_HEADER, EVENT_ID_HEADER, SIGNATURE_HEADER, sign
from whatwut.context import get_current
from whatwut.conversations.models import Conversation
from whatwut.db.engine import transaction
from whatwut.jobs.registry import Backoff, job

log = structlog.get_logger(__name__)
TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class DeliveryFailed(Exception):
    """Raised so procrastinate retries the delivery with backoff (the job keeps its place in line)."""


@job(
    service.DELIVER_JOB,
    retry=Backoff(max_attempts=service.MAX_DELIVERY_ATTEMPTS + 1, base_seconds=1.0, max_seconds=60.0),
)
async def deliver_webhook(account_id: int, delivery_id: int) -> str:
    context = get_current()
    async with transaction(context.sessionmaker) as session:
        delivery = (
            await session.execute(
                select(AiAgentDelivery)
                .where(AiAgentDelivery.id == delivery_id, AiAgentDelivery.account_id == account_id)
                .with_for_update()
            )
        ).scalar_one_or_none()
        if delivery is None or delivery.status != "pending":
            return "done"
        agent = await session.get(AiAgent, delivery.agent_id)
        handling = await session.scalar(
            select(Conversation.ai_agent_id).where(Conversation.id == delivery.conversation_id)
        )
        if agent is None or handling != agent.id:
            # Handed off (or taken over) before this message's turn: it is the people's now.
            delivery.status = "failed"
            delivery.last_error = "not sent: the conversation is handled by people now"
            return "skipped"
        delivery.attempts += 1
        attempt = delivery.attempts
        url = str(agent.configuration.get("webhook_url", ""))
        secret = service.webhook_secret(context, agent)
        body = json.dumps(delivery.payload, separators=(",", ":"), ensure_ascii=False).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(secret, body),
            EVENT_HEADER: delivery.event,
            EVENT_ID_HEADER: delivery.event_id,
            AGENT_HEADER: str(agent.id),
            "User-Agent": "WhatWut-Webhooks/1",
        }
    error: str | None = None
    status: int | None = None
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False) as http:
            response = await http.post(url, content=body, headers=headers)
        status = response.status_code
        if not 200 <= status < 300:
            error = f"HTTP {status}: {response.text[:500]}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000] or type(exc).__name__
    async with transaction(context.sessionmaker) as session:
        delivery = (
            await session.execute(
                select(AiAgentDelivery).where(AiAgentDelivery.id == delivery_id).with_for_update()
            )
        ).scalar_one()
        delivery.response_status = status
        if error is None:
            delivery.status = "delivered"
            delivery.last_error = None
            delivery.delivered_at = datetime.now(UTC)
            agent = await session.get(AiAgent, delivery.agent_id)
            if agent is not None:
                await service.watch_answer(session, agent, delivery)
            return "delivered"
        delivery.last_error = error[:2000]
        log.warning("bots.webhook_failed", delivery_id=delivery_id, attempt=attempt, error=error[:200])
        if attempt >= service.MAX_DELIVERY_ATTEMPTS:
            await service.give_up(session, delivery, error)
            return "handed_off"
    raise DeliveryFailed(error)


@job(service.CHECK_ANSWERED_JOB)
async def check_answered(account_id: int, delivery_id: int) -> bool:
    """The agent's time to answer a delivered message is up: people get it if nothing came."""
    async with transaction(get_current().sessionmaker) as session:
        return await service.check_answered(session, account_id, delivery_id)
