"""What WhatWut asks of a WhatsApp connection, whichever kind it is.

:class:`WhatsAppProvider` is the narrow interface the outbound jobs talk to; :class:`CloudProvider`
implements it over Meta's Graph API (WhatsApp Web gets its own implementation later). Each send
returns the channel's message id (a ``wamid``), which becomes the message's ``source_id``.
Arguments are already WhatsApp's vocabulary (``image``/``document``/..., interactive objects,
template components), so no caller needs to know which implementation it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

from whatwut.channels.whatsapp.graph import GraphClient

MediaKind = Literal["image", "audio", "video", "document", "sticker"]
#: Media kinds WhatsApp shows a caption for.
CAPTIONED: frozenset[str] = frozenset({"image", "video", "document"})


@dataclass(frozen=True)
class MediaRef:
    """Media to send: an id from :meth:`WhatsAppProvider.upload_media`, or a public link."""

    id: str | None = None
    link: str | None = None


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class WhatsAppProvider(Protocol):
    """Sends to one WhatsApp number (``to``: the customer's WhatsApp id, digits only)."""

    async def send_text(
        self, to: str, body: str, *, preview_url: bool = False, reply_to: str | None = None
    ) -> str: ...

    async def send_media(
        self,
        to: str,
        kind: MediaKind,
        media: MediaRef,
        *,
        caption: str | None = None,
        file_name: str | None = None,
        reply_to: str | None = None,
    ) -> str: ...

    async def send_location(self, to: str, location: Location, *, reply_to: str | None = None) -> str: ...

    async def send_reaction(self, to: str, message_id: str, emoji: str) -> str: ...

    async def send_interactive(
        self, to: str, interactive: dict[str, Any], *, reply_to: str | None = None
    ) -> str: ...

    async def send_contacts(
        self, to: str, contacts: list[dict[str, Any]], *, reply_to: str | None = None
    ) -> str: ...

    async def send_template(
        self,
        to: str,
        name: str,
        language: str,
        components: list[dict[str, Any]],
        *,
        reply_to: str | None = None,
    ) -> str: ...

    async def mark_read(self, message_id: str) -> None: ...

    async def upload_media(self, data: bytes, mime_type: str, file_name: str) -> str: ...


# --- Cloud API wire payloads (pure: tested against what the fake Graph server records) ----------


def envelope(to: str, kind: str, content: dict[str, Any], reply_to: str | None = None) -> dict[str, Any]:
    """``{"messaging_product": "whatsapp", "recipient_type": "individual", "to", "type", <type>: ...}``."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": kind,
        kind: content,
    }
    if reply_to:
        payload["context"] = {"message_id": reply_to}
    return payload


def media_object(
    kind: MediaKind, media: MediaRef, caption: str | None, file_name: str | None
) -> dict[str, Any]:
    content: dict[str, Any] = {"id": media.id} if media.id else {"link": media.link}
    if caption and kind in CAPTIONED:
        content["caption"] = caption
    if file_name and kind == "document":
        content["filename"] = file_name
    return content


def location_object(location: Location) -> dict[str, Any]:
    content: dict[str, Any] = {"latitude": location.latitude, "longitude": location.longitude}
    if location.name:
        content["name"] = location.name
    if location.address:
        content["address"] = location.address
    return content


class CloudProvider:
    """:class:`WhatsAppProvider` over the Cloud API for one business phone number."""

    def __init__(self, graph: GraphClient, phone_number_id: str) -> None:
        self.graph = graph
        self.phone_number_id = phone_number_id

    async def _send(self, to: str, kind: str, content: dict[str, Any], reply_to: str | None) -> str:
        return await self.graph.send_message(self.phone_number_id, envelope(to, kind, content, reply_to))

    async def send_text(
        self, to: str, body: str, *, preview_url: bool = False, reply_to: str | None = None
    ) -> str:
        return await self._send(to, "text", {"preview_url": preview_url, "body": body}, reply_to)

    async def send_media(
        self,
        to: str,
        kind: MediaKind,
        media: MediaRef,
        *,
        caption: str | None = None,
        file_name: str | None = None,
        reply_to: str | None = None,
    ) -> str:
        return await self._send(to, kind, media_object(kind, media, caption, file_name), reply_to)

    async def send_location(self, to: str, location: Location, *, reply_to: str | None = None) -> str:
        return await self._send(to, "location", location_object(location), reply_to)

    async def send_reaction(self, to: str, message_id: str, emoji: str) -> str:
        return await self._send(to, "reaction", {"message_id": message_id, "emoji": emoji}, None)

    async def send_interactive(
        self, to: str, interactive: dict[str, Any], *, reply_to: str | None = None
    ) -> str:
        return await self._send(to, "interactive", interactive, reply_to)

    async def send_contacts(
        self, to: str, contacts: list[dict[str, Any]], *, reply_to: str | None = None
    ) -> str:
        payload = envelope(to, "contacts", {}, reply_to)
        payload["contacts"] = contacts
        return await self.graph.send_message(self.phone_number_id, payload)

    async def send_template(
        self,
        to: str,
        name: str,
        language: str,
        components: list[dict[str, Any]],
        *,
        reply_to: str | None = None,
    ) -> str:
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = components
        return await self._send(to, "template", template, reply_to)

    async def mark_read(self, message_id: str) -> None:
        await self.graph.mark_read(self.phone_number_id, message_id)

    async def upload_media(self, data: bytes, mime_type: str, file_name: str) -> str:
        return await self.graph.upload_media(self.phone_number_id, data, mime_type, file_name)
