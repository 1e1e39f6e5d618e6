"""``POST /webhooks/whatwut``: WhatWut's signed webhook for a customer message.

Checks the signature (HMAC-SHA256 of ``"{t}.{body}"`` with the bot's secret, at most five
minutes old) before reading anything; then queues the answer as a job for the conversation, so
two quick messages are answered in order, and answers 202 at once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from wacanda.bot.credentials import credentials_for
from wacanda.context import get_current
from wacanda.db import transaction
from wacanda.errors import InvalidInput, NotAuthenticated
from wacanda.jobs import REPLIES_QUEUE, defer

router = APIRouter(tags=["whatwut bot"])
log = structlog.get_logger(__name__)
ANSWER_JOB = "wacanda.answer_whatwut_message"
MAX_BODY = 256 * 1024
TOLERANCE_SECONDS = 300


def verify(secret: str, header: str, body: bytes, *, now: float | None = None) -> bool:
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, mac = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or not mac:
        return False
    if abs((now or time.time()) - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, mac)


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63:
        raise InvalidInput(f"{field} must be a positive integer", field=field)
    return value


@router.post(
    "/webhooks/whatwut",
    status_code=202,
    summary="WhatWut's signed webhook: a customer message to answer (queued, answered in order)",
)
async def whatwut_webhook(request: Request) -> JSONResponse:
    settings = get_current().settings
    agent_header = request.headers.get("x-whatwut-agent-id", "")
    agent_id = int(agent_header) if agent_header.isdigit() and len(agent_header) < 19 else None
    credentials = credentials_for(settings, agent_id)
    body = await request.body()
    if credentials is None or not verify(
        credentials.webhook_secret, request.headers.get("x-whatwut-signature", ""), body
    ):
        raise NotAuthenticated("the webhook signature is not valid")
    if len(body) > MAX_BODY:
        raise InvalidInput("the webhook body is too large", field="body")
    try:
        payload = json.loads(body)
    except ValueError:
        raise InvalidInput("the body is not JSON", field="body") from None
    if not isinstance(payload, dict):
        raise InvalidInput("the body must be a JSON object", field="body")
    event = payload.get("event")
    if event != "message_created":
        return JSONResponse({"status": "ignored", "event": str(event)[:64]}, status_code=202)
    event_id = str(payload.get("id") or request.headers.get("x-whatwut-event-id") or "")[:64]
    account, conversation, message = (_object(payload, key) for key in ("account", "conversation", "message"))
    args = {
        "account_id": _int(account.get("id"), "account.id"),
        "agent_id": agent_id,
        "conversation_id": _int(conversation.get("id"), "conversation.id"),
        "message_id": _int(message.get("id"), "message.id"),
        "content": str(message.get("content") or "")[:20_000],
        "content_type": str(message.get("content_type") or "text")[:32],
    }
    context = get_current()
    try:
        async with transaction(context.sessionmaker) as session:
            await defer(
                session,
                ANSWER_JOB,
                args,
                lock=f"whatwut.conversation:{args['conversation_id']}",
                queueing_lock=f"whatwut.event:{event_id}" if event_id else None,
                queue_name=REPLIES_QUEUE,
            )
    except IntegrityError:
        return JSONResponse({"status": "duplicate", "event_id": event_id}, status_code=202)
    log.info("wacanda.bot.queued", conversation_id=args["conversation_id"], message_id=args["message_id"])
    return JSONResponse({"status": "queued", "event_id": event_id}, status_code=202)
