"""Builders of Meta's WhatsApp Cloud API webhook payloads, as Meta documents them.

Shapes follow Meta's webhook reference (``object: whatsapp_business_account`` →
``entry[].changes[].value`` with ``metadata``, ``contacts[]``, ``messages[]`` / ``statuses[]``).
Every builder returns plain dicts; :func:`signed` turns one into the bytes and headers Meta sends.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
from typing import Any

WABA_ID = "102290129340398"
_serial = itertools.count(1)


def wamid() -> str:
    """A fresh message id shaped like Meta's."""
    return f"wamid.HBgL{secrets.token_hex(12).upper()}{next(_serial)}"


def now() -> str:
    return str(int(time.time()))


def delivery(
    phone_number_id: str,
    *,
    messages: list[dict[str, Any]] | None = None,
    statuses: list[dict[str, Any]] | None = None,
    contacts: list[dict[str, Any]] | None = None,
    display_phone_number: str = "15550783881",
    waba_id: str = WABA_ID,
) -> dict[str, Any]:
    """One webhook body with one change for ``phone_number_id``."""
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {"display_phone_number": display_phone_number, "phone_number_id": phone_number_id},
    }
    if contacts is not None:
        value["contacts"] = contacts
    if messages is not None:
        value["messages"] = messages
    if statuses is not None:
        value["statuses"] = statuses
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": waba_id, "changes": [{"value": value, "field": "messages"}]}],
    }


def contact(wa_id: str, name: str = "Sheena Nelson", **extra: Any) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id, **extra}


def message(
    sender: str, kind: str, content: Any = None, *, id: str | None = None, **extra: Any
) -> dict[str, Any]:
    """``messages[]`` item: ``{"from", "id", "timestamp", "type", <type>: content}``."""
    item: dict[str, Any] = {"from": sender, "id": id or wamid(), "timestamp": now(), "type": kind}
    if content is not None:
        item[kind] = content
    item.update(extra)
    return item


def text_message(sender: str, body: str, **extra: Any) -> dict[str, Any]:
    return message(sender, "text", {"body": body}, **extra)


def inbound(
    phone_number_id: str, sender: str, item: dict[str, Any], *, name: str = "Sheena Nelson"
) -> dict[str, Any]:
    """A delivery of one customer message with its ``contacts[]`` entry."""
    return delivery(phone_number_id, messages=[item], contacts=[contact(sender, name)])


def image(media_id: str, caption: str | None = None, mime_type: str = "image/jpeg") -> dict[str, Any]:
    body: dict[str, Any] = {
        "mime_type": mime_type,
        "sha256": hashlib.sha256(media_id.encode()).hexdigest(),
        "id": media_id,
    }
    if caption is not None:
        body["caption"] = caption
    return body


def audio(media_id: str, *, voice: bool = True) -> dict[str, Any]:
    return {"mime_type": "audio/ogg; codecs=opus", "sha256": "x", "id": media_id, "voice": voice}


def document(media_id: str, filename: str, caption: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "filename": filename,
        "mime_type": "application/pdf",
        "sha256": "x",
        "id": media_id,
    }
    if caption:
        body["caption"] = caption
    return body


def location(lat: float, lon: float, name: str | None = None, address: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"latitude": lat, "longitude": lon}
    if name:
        body["name"] = name
    if address:
        body["address"] = address
    return body


def contact_card(formatted_name: str, phone: str, email: str | None = None) -> list[dict[str, Any]]:
    card: dict[str, Any] = {
        "name": {"formatted_name": formatted_name, "first_name": formatted_name.split()[0]},
        "phones": [{"phone": phone, "wa_id": phone.lstrip("+").replace(" ", ""), "type": "CELL"}],
    }
    if email:
        card["emails"] = [{"email": email, "type": "WORK"}]
    return [card]


def button_reply(button_id: str, title: str) -> dict[str, Any]:
    return {"type": "button_reply", "button_reply": {"id": button_id, "title": title}}


def list_reply(row_id: str, title: str, description: str | None = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"id": row_id, "title": title}
    if description:
        reply["description"] = description
    return {"type": "list_reply", "list_reply": reply}


def reaction(target_wamid: str, emoji: str) -> dict[str, Any]:
    return {"message_id": target_wamid, "emoji": emoji}


def status(
    message_wamid: str,
    step: str,
    recipient: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """``statuses[]`` item (with the conversation and pricing blocks Meta adds)."""
    item: dict[str, Any] = {
        "id": message_wamid,
        "status": step,
        "timestamp": timestamp or now(),
        "recipient_id": recipient,
    }
    if step in ("sent", "delivered"):
        item["conversation"] = {
            "id": secrets.token_hex(16),
            "expiration_timestamp": str(int(time.time()) + 86400),
            "origin": {"type": "service"},
        }
        item["pricing"] = {"billable": True, "pricing_model": "PMP", "category": "service", "type": "regular"}
    if errors is not None:
        item["errors"] = errors
    return item


def meta_error(code: int, title: str, details: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "title": title, "message": title}
    if details:
        error["error_data"] = {"details": details}
    return error


def encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def signature(raw: bytes, app_secret: str) -> str:
    return "sha256=" + hmac.new(app_secret.encode(), raw, hashlib.sha256).hexdigest()


def signed(body: Any, app_secret: str) -> tuple[bytes, dict[str, str]]:
    """``(raw body, headers)`` exactly as Meta would POST them."""
    raw = encode(body)
    return raw, {"Content-Type": "application/json", "X-Hub-Signature-256": signature(raw, app_secret)}


# --- driving a live server ------------------------------------------------------------------------


def cloud_channel(phone_number_id: str | None = None, **overrides: str) -> dict[str, str]:
    """A ``whatsapp_cloud`` channel object for ``POST /inboxes`` with fresh ids and secrets."""
    number = phone_number_id or str(100000000000000 + secrets.randbelow(899999999999999))
    channel = {
        "type": "whatsapp_cloud",
        "phone_number": "+55 11 9" + number[-8:],
        "phone_number_id": number,
        "business_account_id": WABA_ID,
        "access_token": "EAAG" + secrets.token_hex(8),
        "app_secret": secrets.token_hex(16),
        "verify_token": secrets.token_hex(8),
    }
    channel.update(overrides)
    return channel


def wait_for(check: Any, *, timeout: float = 15.0, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll ``check()`` until it returns something truthy (jobs run asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)
