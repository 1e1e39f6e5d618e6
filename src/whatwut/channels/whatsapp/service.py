"""WhatsApp instances, customers' WhatsApp identities and the WhatsApp side of messages.

Shared by every WhatsApp channel (Cloud API, WhatsApp Web, sandbox). No HTTP; callers own the
transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import Insert, insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.channels.whatsapp.models import WhatsAppContact, WhatsAppInstance, WhatsAppMessage
from whatwut.inboxes.models import Inbox

#: Which inboxes are WhatsApp numbers, and how they connect.
CONNECTION_TYPE_OF = {"whatsapp_cloud": "cloud_api", "whatsapp_web": "web", "whatsapp_sandbox": "sandbox"}


def _instance_values(inbox: Inbox) -> dict[str, Any]:
    settings = inbox.settings or {}
    phone = settings.get("phone_number")
    details = {k: settings[k] for k in ("phone_number_id", "business_account_id") if k in settings}
    return {
        "account_id": inbox.account_id,
        "name": inbox.name,
        "connection_type": CONNECTION_TYPE_OF[inbox.channel_type],
        "phone_number": str(phone)[:32] if phone else None,
        "settings": details,
    }


async def sync_instance(session: AsyncSession, inbox: Inbox) -> WhatsAppInstance | None:
    """Create or refresh the ``whatsapp_instances`` row of a WhatsApp inbox (others: ``None``).

    Called when an inbox is created or its channel changes. A new Cloud API instance is
    ``pending`` until a connection check reaches Meta.
    """
    if inbox.channel_type not in CONNECTION_TYPE_OF:
        return None
    values = _instance_values(inbox)
    statement = insert(WhatsAppInstance).values(
        inbox_id=inbox.id, instance_key=secrets.token_hex(16), status="pending", **values
    )
    statement = statement.on_conflict_do_update(index_elements=[WhatsAppInstance.inbox_id], set_=values)
    instance_id = (await session.execute(statement.returning(WhatsAppInstance.id))).scalar_one()
    return (
        await session.execute(
            select(WhatsAppInstance)
            .where(WhatsAppInstance.id == instance_id)
            .execution_options(populate_existing=True)
        )
    ).scalar_one()


#: What the inboxes API calls after creating an inbox.
on_inbox_created = sync_instance


async def instance_for(session: AsyncSession, inbox: Inbox) -> WhatsAppInstance | None:
    """The inbox's instance, created on first use for inboxes that predate it."""
    instance = (
        await session.execute(select(WhatsAppInstance).where(WhatsAppInstance.inbox_id == inbox.id))
    ).scalar_one_or_none()
    return instance if instance is not None else await sync_instance(session, inbox)


async def set_instance_status(
    session: AsyncSession, inbox_id: int, status: str, details: dict[str, Any] | None = None
) -> None:
    """Record a connection check's outcome (``connected`` / ``error``) and what it learned."""
    instance = (
        await session.execute(
            select(WhatsAppInstance).where(WhatsAppInstance.inbox_id == inbox_id).with_for_update()
        )
    ).scalar_one_or_none()
    if instance is None:
        return
    instance.status = status
    if details:
        instance.settings = {**(instance.settings or {}), **details}
    await session.flush()


async def remember_contact(
    session: AsyncSession,
    *,
    instance_id: int,
    contact_id: int,
    whatsapp_id: str,
    profile_name: str | None,
    business_user_id: str | None = None,
) -> None:
    """Upsert the customer's WhatsApp identity on this number (profile names change)."""
    await session.execute(
        _remember_contact(instance_id, contact_id, whatsapp_id, profile_name, business_user_id)
    )


def _remember_contact(
    instance_id: int,
    contact_id: int,
    whatsapp_id: str,
    profile_name: str | None,
    business_user_id: str | None,
) -> Insert:
    values: dict[str, Any] = {"contact_id": contact_id}
    if profile_name:
        values["profile_name"] = profile_name[:255]
    if business_user_id:
        values["business_user_id"] = business_user_id[:128]
    statement = insert(WhatsAppContact).values(
        whatsapp_instance_id=instance_id, whatsapp_id=whatsapp_id[:64], **values
    )
    return statement.on_conflict_do_update(
        index_elements=[WhatsAppContact.whatsapp_instance_id, WhatsAppContact.whatsapp_id], set_=values
    )


@dataclass(frozen=True)
class Sender:
    """The customer's WhatsApp identity, as :func:`remember_contact` takes it."""

    contact_id: int
    whatsapp_id: str
    profile_name: str | None = None
    business_user_id: str | None = None


async def record_message(
    session: AsyncSession,
    *,
    instance_id: int,
    message_id: int,
    whatsapp_message_id: str,
    media_type: str | None = None,
    media_id: str | None = None,
    media_mime_type: str | None = None,
    media_sha256: str | None = None,
    location_data: dict[str, Any] | None = None,
    contact_vcard: str | None = None,
    sender: Sender | None = None,
) -> None:
    """The WhatsApp side of a stored message (once per message).

    With ``sender``, :func:`remember_contact` is done in the same statement (one round trip).
    """
    statement = (
        insert(WhatsAppMessage)
        .values(
            message_id=message_id,
            whatsapp_instance_id=instance_id,
            whatsapp_message_id=whatsapp_message_id[:255],
            media_type=media_type,
            media_id=media_id[:64] if media_id else None,
            media_mime_type=media_mime_type[:255] if media_mime_type else None,
            media_sha256=media_sha256[:128] if media_sha256 else None,
            media_status="pending" if media_id else None,
            location_data=location_data,
            contact_vcard=contact_vcard,
        )
        .on_conflict_do_nothing()
    )
    if sender is not None:
        remembered = _remember_contact(
            instance_id, sender.contact_id, sender.whatsapp_id, sender.profile_name, sender.business_user_id
        )
        statement = statement.add_cte(remembered.cte("remembered"))
    await session.execute(statement)


async def get_message(
    session: AsyncSession, message_id: int, *, for_update: bool = False
) -> WhatsAppMessage | None:
    query = select(WhatsAppMessage).where(WhatsAppMessage.message_id == message_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query.execution_options(populate_existing=True))).scalar_one_or_none()
