"""Meta's WhatsApp Cloud API webhook payloads, parsed tolerantly.

Meta adds fields and message types over time (business-scoped ``user_id``s, ``edit``, ``revoke``,
pricing, ...), and a well-signed delivery must never fail because of them: every model keeps
unknown fields, and every field is *lenient* — a value of the wrong shape becomes ``None``
instead of an error. Two layers:

- :func:`split_delivery` walks the raw JSON just enough to route and deduplicate (phone number
  id, message ids, statuses); the webhook's request path uses only this.
- :class:`InboundMessage` / :class:`StatusUpdate` are what the processing job reads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)

T = TypeVar("T")

WHATSAPP_OBJECT = "whatsapp_business_account"
#: Longest id kept as a deduplication key (Meta's wamids are ~60 characters).
MAX_KEY_LENGTH = 255
#: Meta's phone number ids are numeric; anything else cannot be one of our inboxes.
_PHONE_NUMBER_ID = re.compile(r"^[0-9]{1,32}$")


def _lenient(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return None


#: A field whose badly shaped value is dropped (``None``) rather than failing the whole payload.
Lenient = Annotated[T | None, WrapValidator(_lenient), Field(default=None)]


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)


class Profile(_Tolerant):
    name: Lenient[str]


class WebhookContact(_Tolerant):
    """``value.contacts[]``: who wrote (``wa_id``; newer payloads add a business-scoped ``user_id``)."""

    wa_id: Lenient[str]
    user_id: Lenient[str]
    profile: Lenient[Profile]


class Text(_Tolerant):
    body: Lenient[str]


class Media(_Tolerant):
    """image, audio, video, document, sticker: Meta's media id, to fetch with the token."""

    id: Lenient[str]
    mime_type: Lenient[str]
    sha256: Lenient[str]
    caption: Lenient[str]
    filename: Lenient[str]
    url: Lenient[str]
    #: audio: ``true`` for a voice note recorded in WhatsApp.
    voice: Lenient[bool]
    #: sticker: animated or not.
    animated: Lenient[bool]


class Location(_Tolerant):
    latitude: Lenient[float]
    longitude: Lenient[float]
    name: Lenient[str]
    address: Lenient[str]
    url: Lenient[str]


class Reaction(_Tolerant):
    message_id: Lenient[str]
    #: Empty (or absent) when the customer removes their reaction.
    emoji: Lenient[str]


class Reply(_Tolerant):
    id: Lenient[str]
    title: Lenient[str]
    description: Lenient[str]


class Interactive(_Tolerant):
    type: Lenient[str]
    button_reply: Lenient[Reply]
    list_reply: Lenient[Reply]
    nfm_reply: Lenient[dict[str, Any]]


class Button(_Tolerant):
    """A template's quick-reply button pressed."""

    payload: Lenient[str]
    text: Lenient[str]


class Context(_Tolerant):
    """What a message replies to (``id``), or a forwarded flag; ``referred_product`` for catalogs."""

    id: Lenient[str]
    from_: Lenient[str] = Field(default=None, alias="from")
    forwarded: Lenient[bool]
    frequently_forwarded: Lenient[bool]
    referred_product: Lenient[dict[str, Any]]


class Revoke(_Tolerant):
    original_message_id: Lenient[str]


class ProductItem(_Tolerant):
    product_retailer_id: Lenient[str]
    quantity: Lenient[float]
    item_price: Lenient[float]
    currency: Lenient[str]


class Order(_Tolerant):
    catalog_id: Lenient[str]
    text: Lenient[str]
    product_items: Lenient[list[ProductItem]]


class MetaError(_Tolerant):
    code: Lenient[int]
    title: Lenient[str]
    message: Lenient[str]
    error_data: Lenient[dict[str, Any]]

    def describe(self) -> str:
        details = (self.error_data or {}).get("details") if isinstance(self.error_data, dict) else None
        parts = [p for p in (self.title, details or self.message) if p]
        text = ": ".join(dict.fromkeys(parts)) or "unknown error"
        return f"{text} (code {self.code})" if self.code is not None else text


class InboundMessage(_Tolerant):
    """``value.messages[]``: one message a customer sent (any type, known or not)."""

    id: Lenient[str]
    from_: Lenient[str] = Field(default=None, alias="from")
    from_user_id: Lenient[str]
    timestamp: Lenient[str]
    type: Lenient[str]
    text: Lenient[Text]
    image: Lenient[Media]
    audio: Lenient[Media]
    video: Lenient[Media]
    document: Lenient[Media]
    sticker: Lenient[Media]
    location: Lenient[Location]
    contacts: Lenient[list[dict[str, Any]]]
    interactive: Lenient[Interactive]
    button: Lenient[Button]
    reaction: Lenient[Reaction]
    edit: Lenient[Edit]
    revoke: Lenient[Revoke]
    order: Lenient[Order]
    referral: Lenient[dict[str, Any]]
    context: Lenient[Context]
    system: Lenient[dict[str, Any]]
    errors: Lenient[list[MetaError]]

    def media(self) -> tuple[str, Media] | None:
        """``(kind, media)`` for image/audio/video/document/sticker messages with a media id."""
        kind = self.type or ""
        item = getattr(self, kind, None) if kind in MEDIA_KINDS else None
        return (kind, item) if isinstance(item, Media) and item.id else None


class Edit(_Tolerant):
    """``type: edit``: the customer changed a message they sent (``message`` is its new content)."""

    original_message_id: Lenient[str]
    message: Lenient[InboundMessage]


InboundMessage.model_rebuild()

MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")


class Conversation(_Tolerant):
    id: Lenient[str]
    origin: Lenient[dict[str, Any]]
    expiration_timestamp: Lenient[str]


class StatusUpdate(_Tolerant):
    """``value.statuses[]``: what happened to a message the business sent."""

    id: Lenient[str]
    status: Lenient[str]
    timestamp: Lenient[str]
    recipient_id: Lenient[str]
    recipient_user_id: Lenient[str]
    conversation: Lenient[Conversation]
    pricing: Lenient[dict[str, Any]]
    biz_opaque_callback_data: Lenient[str]
    errors: Lenient[list[MetaError]]


# --- the request path: route and deduplicate without building models ------------------------------


@dataclass
class ChangeEvents:
    """What one ``entry[].changes[]`` item holds for its phone number: raw events with their keys."""

    phone_number_id: str
    #: ``(kind, key, payload)``: kind ``message`` keyed by wamid, ``status`` by ``wamid:status``.
    events: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    ignored: int = 0


@dataclass
class Delivery:
    """A webhook body split for routing: its object, entry ids, and the events per phone number."""

    object: str | None
    business_account_ids: list[str] = field(default_factory=list)
    changes: list[ChangeEvents] = field(default_factory=list)
    #: Changes Meta sent that carry nothing WhatWut stores (other fields, malformed items).
    ignored: int = 0

    @property
    def phone_number_ids(self) -> list[str]:
        return list(dict.fromkeys(change.phone_number_id for change in self.changes))


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _key(value: Any) -> str | None:
    if isinstance(value, str) and value and len(value) <= MAX_KEY_LENGTH:
        return value
    return None


def split_delivery(body: dict[str, Any]) -> Delivery:
    """Walk a parsed webhook body; never raises, whatever its shape.

    Each message becomes one ``message`` event carrying the ``metadata`` and the sender's entry of
    ``contacts[]``; each status one ``status`` event. Items without a usable id are counted as
    ignored (there is nothing to deduplicate them by, and Meta never sends them).
    """
    kind = body.get("object")
    delivery = Delivery(object=kind if isinstance(kind, str) else None)
    for entry in _dicts(body.get("entry")):
        entry_id = entry.get("id")
        if isinstance(entry_id, str | int) and not isinstance(entry_id, bool):
            delivery.business_account_ids.append(str(entry_id))
        for change in _dicts(entry.get("changes")):
            value = change.get("value")
            if not isinstance(value, dict) or change.get("field", "messages") != "messages":
                delivery.ignored += 1
                continue
            metadata = value.get("metadata")
            phone_number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
            if isinstance(phone_number_id, int) and not isinstance(phone_number_id, bool):
                phone_number_id = str(phone_number_id)
            if not isinstance(phone_number_id, str) or not _PHONE_NUMBER_ID.match(phone_number_id):
                delivery.ignored += 1
                continue
            delivery.changes.append(_change_events(phone_number_id, value, metadata))
    return delivery


def _change_events(phone_number_id: str, value: dict[str, Any], metadata: Any) -> ChangeEvents:
    result = ChangeEvents(phone_number_id=phone_number_id)
    contacts = _dicts(value.get("contacts"))
    by_wa_id = {c.get("wa_id"): c for c in contacts if isinstance(c.get("wa_id"), str)}
    for message in _dicts(value.get("messages")):
        key = _key(message.get("id"))
        if key is None:
            result.ignored += 1
            continue
        sender = by_wa_id.get(message.get("from")) or (contacts[0] if len(contacts) == 1 else None)
        payload: dict[str, Any] = {"message": message, "metadata": metadata}
        if sender is not None:
            payload["contact"] = sender
        result.events.append(("message", key, payload))
    for status in _dicts(value.get("statuses")):
        wamid, step = _key(status.get("id")), status.get("status")
        if wamid is None or not isinstance(step, str) or not step or len(step) > 32:
            result.ignored += 1
            continue
        result.events.append(("status", f"{wamid}:{step}", {"status": status, "metadata": metadata}))
    return result
