"""Delivering agents' replies to WhatsApp, and telling WhatsApp what agents have read.

A reply is written ``pending`` with its delivery job in the same transaction (the conversations
domain defers ``whatsapp.deliver_message``). The job locks the message, sends it through the
inbox's provider and stores the returned ``wamid`` as ``source_id`` with status ``sent``, all in
one transaction: a message that already has a ``source_id`` (or is no longer pending) is never
sent again. Throttling and outages raise :class:`RetryableGraphError` so the job retries with
backoff; anything WhatsApp refuses for good fails the message with a reason for the agent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.channels.whatsapp import templates
from whatwut.channels.whatsapp.graph import (
    GraphClient,
    GraphError,
    GraphTarget,
    PermanentGraphError,
    RetryableGraphError,
    describe,
)
from whatwut.channels.whatsapp.provider import CloudProvider, Location, MediaKind, MediaRef, WhatsAppProvider
from whatwut.channels.whatsapp.template_models import WhatsAppReadReceipt
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.conversations.models import Attachment, Message
from whatwut.db.engine import transaction
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox
from whatwut.kit.errors import NotFound
from whatwut.kit.storage import storage_for

log = structlog.get_logger(__name__)

DELIVER_JOB = "whatsapp.deliver_message"
MARK_READ_JOB = "whatsapp.mark_read"
_MEDIA_KINDS: dict[str, MediaKind] = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "file": "document",
    "sticker": "sticker",
}


class Undeliverable(Exception):
    """The reply cannot be sent as it is (no recipient, an unknown quoted message, ...)."""


class GaveUp(Exception):
    """Raised after the last attempt marked the message failed, so the job ends ``failed`` too."""


@dataclass(frozen=True)
class Outcome:
    """What one run of the delivery job did: ``sent``, ``failed``, ``skipped`` or ``gone``."""

    result: str
    source_id: str | None = None
    error: str | None = None


def _provider(context: AppContext, inbox: Inbox, graph: GraphClient) -> WhatsAppProvider:
    phone_number_id = str(inbox.settings.get("phone_number_id") or "")
    if not phone_number_id:
        raise Undeliverable("the inbox has no phone_number_id; edit the inbox's WhatsApp settings")
    return CloudProvider(graph, phone_number_id)


def graph_client(context: AppContext, inbox: Inbox) -> GraphClient:
    target = GraphTarget.for_inbox(context.settings, inbox.settings, inboxes.channel_secrets(context, inbox))
    return GraphClient(target, timeout=context.settings.whatsapp_graph_timeout_seconds)


async def _media_ref(context: AppContext, provider: WhatsAppProvider, attachment: Attachment) -> MediaRef:
    """Upload the stored file (WhatsApp then serves it by id), or pass a public link through."""
    if attachment.storage_key:
        try:
            data = await storage_for(context.settings).get(attachment.storage_key)
        except NotFound:
            raise Undeliverable(f"the file of {attachment.file_name!r} is missing from storage") from None
        media_id = await provider.upload_media(data, attachment.mime_type, attachment.file_name)
        return MediaRef(id=media_id)
    if attachment.external_url and attachment.external_url.startswith("https://"):
        return MediaRef(link=attachment.external_url)
    raise Undeliverable(f"the attachment {attachment.file_name!r} has no stored content to send")


def _interactive(content: str | None, attributes: dict[str, Any]) -> dict[str, Any]:
    """WhatsApp's ``interactive`` object for reply buttons or a list message."""
    body = {"text": content or " "}
    interactive: dict[str, Any] = {"type": attributes["type"], "body": body}
    if attributes.get("header"):
        interactive["header"] = {"type": "text", "text": attributes["header"]}
    if attributes.get("footer"):
        interactive["footer"] = {"text": attributes["footer"]}
    buttons = attributes.get("buttons") or []
    if attributes["type"] == "button":
        interactive["action"] = {
            "buttons": [{"type": "reply", "reply": {"id": b["id"], "title": b["title"]}} for b in buttons]
        }
    else:
        rows = []
        for button in buttons:
            row = {"id": button["id"], "title": button["title"]}
            if button.get("description"):
                row["description"] = button["description"]
            rows.append(row)
        section: dict[str, Any] = {"rows": rows}
        if attributes.get("section_title"):
            section["title"] = attributes["section_title"]
        interactive["action"] = {"button": attributes.get("button_text") or "Options", "sections": [section]}
    return interactive


def _contacts(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    cards = []
    for person in attributes.get("contacts") or []:
        card: dict[str, Any] = {"name": {"formatted_name": person["name"], "first_name": person["name"]}}
        if person.get("phone_number"):
            card["phones"] = [{"phone": person["phone_number"], "type": "CELL"}]
        if person.get("email"):
            card["emails"] = [{"email": person["email"], "type": "WORK"}]
        cards.append(card)
    return cards


async def send_reply(
    session: AsyncSession,
    context: AppContext,
    provider: WhatsAppProvider,
    delivery: conversations.OutgoingDelivery,
) -> str:
    """Send one reply in the payload its content type calls for; the first ``wamid``."""
    message = delivery.message
    to = delivery.recipient
    if not to:
        raise Undeliverable("the contact has no WhatsApp number in this inbox")
    attributes: dict[str, Any] = dict(message.content_attributes or {})
    reply_to = delivery.quoted_source_id
    kind = message.content_type
    if kind == "reaction":
        if not reply_to:
            raise Undeliverable("the message reacted to is not a WhatsApp message of this conversation")
        return await provider.send_reaction(to, reply_to, message.content or "")
    if kind == "location":
        location = Location(
            latitude=float(attributes["latitude"]),
            longitude=float(attributes["longitude"]),
            name=attributes.get("name"),
            address=attributes.get("address"),
        )
        return await provider.send_location(to, location, reply_to=reply_to)
    if kind == "contact_card":
        return await provider.send_contacts(to, _contacts(attributes), reply_to=reply_to)
    if kind == "interactive":
        return await provider.send_interactive(
            to, _interactive(message.content, attributes), reply_to=reply_to
        )
    if kind == "template":
        spec = dict(attributes.get("template") or {})
        found = await templates.find_template(
            session, message.inbox_id, str(spec.get("name")), str(spec.get("language"))
        )
        try:
            name, language, components = templates.send_components(spec, found)
        except ValueError as exc:
            raise Undeliverable(str(exc)) from None
        return await provider.send_template(to, name, language, components, reply_to=reply_to)
    if delivery.attachments:
        return await _send_media(context, provider, to, message, delivery.attachments, reply_to)
    if not message.content:
        raise Undeliverable("the reply is empty")
    preview = bool(attributes.get("preview_url"))
    return await provider.send_text(to, message.content, preview_url=preview, reply_to=reply_to)


async def _send_media(
    context: AppContext,
    provider: WhatsAppProvider,
    to: str,
    message: Message,
    attachments: Sequence[Attachment],
    reply_to: str | None,
) -> str:
    """One WhatsApp message per file; the text rides as the first captionable file's caption."""
    caption_left = message.content
    first: str | None = None
    for attachment in attachments:
        kind = (
            "sticker"
            if message.content_type == "sticker"
            else _MEDIA_KINDS.get(attachment.file_type, "document")
        )
        media = await _media_ref(context, provider, attachment)
        caption = caption_left if kind in ("image", "video", "document") else None
        wamid = await provider.send_media(
            to,
            kind,
            media,
            caption=caption,
            file_name=attachment.file_name,
            reply_to=reply_to if first is None else None,
        )
        if caption:
            caption_left = None
        first = first or wamid
    if caption_left:
        await provider.send_text(to, caption_left)
    assert first is not None
    return first


async def deliver_message(
    context: AppContext, *, account_id: int, message_id: int, final_attempt: bool
) -> Outcome:
    """Send a pending reply once; see the module docstring for what happens on errors."""
    gave_up: GraphError | None = None
    async with transaction(context.sessionmaker) as session:
        delivery = await conversations.outgoing_delivery(session, account_id, message_id)
        if delivery is None:
            return Outcome("gone")
        message = delivery.message
        if (
            message.private
            or message.message_type != "outgoing"
            or message.source_id
            or message.status != "pending"
        ):
            return Outcome("skipped", source_id=message.source_id)
        try:
            inbox = await inboxes.get_inbox(session, account_id, message.inbox_id)
        except NotFound:
            return Outcome("gone")
        reason: str | None = None
        try:
            async with graph_client(context, inbox) as graph:
                wamid = await send_reply(session, context, _provider(context, inbox, graph), delivery)
        except Undeliverable as exc:
            reason = f"WhatWut could not send this message: {exc}"
        except PermanentGraphError as exc:
            reason = describe(exc)
        except RetryableGraphError as exc:
            if not final_attempt:
                log.info(
                    "whatsapp.delivery_retry", message_id=message_id, code=exc.code, status=exc.http_status
                )
                raise
            reason, gave_up = describe(exc), exc
        if reason is not None:
            await conversations.update_delivery_status(
                session, account_id=account_id, message_id=message_id, status="failed", external_error=reason
            )
            log.warning("whatsapp.delivery_failed", message_id=message_id, reason=reason)
            outcome = Outcome("failed", error=reason)
        else:
            await conversations.update_delivery_status(
                session, account_id=account_id, message_id=message_id, status="sent", source_id=wamid
            )
            outcome = Outcome("sent", source_id=wamid)
    if gave_up is not None:
        raise GaveUp(f"message {message_id}: {gave_up}") from gave_up
    return outcome


async def mark_failed(context: AppContext, *, account_id: int, message_id: int, reason: str) -> None:
    """Fail a reply whose last attempt broke in an unexpected way, so it does not stay pending."""
    async with transaction(context.sessionmaker) as session:
        await conversations.update_delivery_status(
            session, account_id=account_id, message_id=message_id, status="failed", external_error=reason
        )


# --- read receipts --------------------------------------------------------------------------------


async def mark_read(context: AppContext, *, account_id: int, conversation_id: int, message_id: int) -> bool:
    """Tell WhatsApp the customer's messages up to ``message_id`` were read; once per message.

    WhatsApp marks earlier messages of the chat read too, so nothing is sent when a later
    incoming message was already reported. Returns whether a receipt was sent.
    """
    async with transaction(context.sessionmaker) as session:
        message = await conversations.conversation_message(session, account_id, conversation_id, message_id)
        if message is None or message.message_type != "incoming" or not message.source_id:
            return False
        later = await session.execute(
            select(func.max(WhatsAppReadReceipt.message_id)).where(
                WhatsAppReadReceipt.conversation_id == conversation_id
            )
        )
        newest = later.scalar_one_or_none()
        if newest is not None and newest >= message_id:
            return False
        claimed = await session.execute(
            insert(WhatsAppReadReceipt)
            .values(message_id=message_id, account_id=account_id, conversation_id=conversation_id)
            .on_conflict_do_nothing()
            .returning(WhatsAppReadReceipt.message_id)
        )
        if claimed.first() is None:
            return False
        inbox = await inboxes.get_inbox(session, account_id, message.inbox_id)
        try:
            async with graph_client(context, inbox) as graph:
                await _provider(context, inbox, graph).mark_read(message.source_id)
        except (PermanentGraphError, Undeliverable) as exc:
            # A receipt Meta refuses (too old, unknown id) is not worth retrying; the claim stays.
            log.info("whatsapp.read_receipt_refused", message_id=message_id, error=str(exc))
            return False
    return True
