"""The "check connection" action: ask Meta about the inbox's number with the inbox's token.

Creating an inbox never calls Meta; this does. It answers a report rather than an error: a bad
token is an expected outcome an administrator must read (``ok: false`` with Meta's reason), and
the instance's ``status`` becomes ``connected`` or ``error`` either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit import service as audit
from whatwut.channels.whatsapp import service as whatsapp
from whatwut.channels.whatsapp.graph import GraphClient, GraphError, GraphTarget, describe
from whatwut.channels.whatsapp.templates import CLOUD_CHANNEL_TYPES
from whatwut.context import AppContext
from whatwut.inboxes import service as inboxes
from whatwut.kit.errors import InvalidInput

#: Phone-number fields worth keeping on the instance (shown in the inbox settings).
KEPT_FIELDS = ("display_phone_number", "verified_name", "quality_rating", "code_verification_status")


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    status: str
    phone: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    code: int | None = None
    retryable: bool = False


async def check_connection(
    session: AsyncSession, context: AppContext, account_id: int, inbox_id: int, *, actor_user_id: int | None
) -> CheckResult:
    """``GET {graph}/{phone_number_id}`` with the inbox's token; records the outcome."""
    inbox = await inboxes.get_inbox(session, account_id, inbox_id)
    if inbox.channel_type not in CLOUD_CHANNEL_TYPES:
        raise InvalidInput("only WhatsApp Cloud API inboxes have a connection to check", field="inbox_id")
    phone_number_id = str(inbox.settings.get("phone_number_id") or "")
    if not phone_number_id:
        raise InvalidInput("the inbox has no phone_number_id", field="channel.phone_number_id")
    await whatsapp.instance_for(session, inbox)
    target = GraphTarget.for_inbox(context.settings, inbox.settings, inboxes.channel_secrets(context, inbox))
    checked_at = datetime.now(UTC).isoformat()
    try:
        async with GraphClient(target, timeout=context.settings.whatsapp_graph_timeout_seconds) as graph:
            phone = await graph.phone_number(phone_number_id)
    except GraphError as exc:
        result = CheckResult(
            ok=False, status="error", error=describe(exc), code=exc.code, retryable=exc.retryable
        )
        details: dict[str, Any] = {"last_check_at": checked_at, "last_error": result.error}
    else:
        result = CheckResult(ok=True, status="connected", phone=phone)
        details = {k: phone[k] for k in KEPT_FIELDS if k in phone}
        details |= {"last_check_at": checked_at, "last_error": None}
    await whatsapp.set_instance_status(session, inbox.id, result.status, details)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "whatsapp.connection_checked",
        "inbox",
        inbox.id,
        {"ok": result.ok, "code": result.code},
    )
    return result
