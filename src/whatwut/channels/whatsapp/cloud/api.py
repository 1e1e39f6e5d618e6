"""Meta's webhook endpoints for the WhatsApp Cloud API (the handshake and the deliveries)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from whatwut.channels.whatsapp.cloud import ingest, service
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import NotPermitted

log = structlog.get_logger(__name__)

router = APIRouter(prefix="/webhooks/whatsapp/cloud", tags=["whatsapp webhooks"])


@router.get(
    "",
    response_class=PlainTextResponse,
    summary="Meta's subscription handshake: echo hub.challenge when hub.verify_token is ours",
)
async def verify_subscription(
    session: DbSession,
    context: Context,
    mode: Annotated[str | None, Query(alias="hub.mode", max_length=64)] = None,
    verify_token: Annotated[str | None, Query(alias="hub.verify_token", max_length=4096)] = None,
    challenge: Annotated[str | None, Query(alias="hub.challenge", max_length=1024)] = None,
) -> PlainTextResponse:
    token_ok = bool(verify_token) and await service.verify_token_matches(
        session, context.secrets, context.settings, verify_token or ""
    )
    if mode != "subscribe" or not token_ok or challenge is None:
        log.warning("whatsapp.webhook_handshake_refused", mode=mode, has_token=bool(verify_token))
        raise NotPermitted("hub.verify_token does not match any WhatsApp inbox", field="hub.verify_token")
    return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})


@router.post(
    "",
    summary="Meta's deliveries: messages and statuses, signed with X-Hub-Signature-256",
    responses={
        200: {"description": "Accepted (stored, a duplicate, or deliberately ignored)"},
        400: {"description": "The body is not JSON"},
        401: {"description": "Missing or wrong signature; nothing stored"},
        413: {"description": "The body is too large"},
        503: {"description": "The batch it was written with failed; nothing stored, re-send"},
    },
)
async def receive_delivery(
    request: Request,
    context: Context,
    signature: Annotated[str | None, Header(alias="X-Hub-Signature-256")] = None,
) -> JSONResponse:
    # Served by ingest.CloudWebhookFastPath before FastAPI routes anything; this route documents
    # the endpoint and answers the same way where that middleware is not installed.
    raw = await request.body()
    return await ingest.receive_delivery(context, ingest.committer_for(context), raw, signature)
