"""Inbound WhatsApp Cloud API: accepting Meta's webhooks fast, then turning them into conversations.

Two halves, on purpose:

- **Accepting** (the request path, :func:`accept_delivery`): route each change by
  ``metadata.phone_number_id`` to its inbox, check ``X-Hub-Signature-256`` against that inbox's
  app secret, and write every message and status as a raw ``whatsapp_inbound_events`` row plus one
  processing job, in one statement per inbox (routes are cached for :data:`ROUTE_TTL_SECONDS`).
  The unique ``(inbox_id, kind, event_key)`` turns Meta's retries into no-ops at once.
- **Processing** (the job, :func:`process_event`): one event per transaction, idempotent. Messages
  become contacts, conversations and messages; statuses move outgoing messages forward;
  reactions, edits and revokes change the message they point at.

No HTTP objects here; the API layer turns the errors raised into responses.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from whatwut.channels.whatsapp import service as whatsapp
from whatwut.channels.whatsapp.cloud.webhook import (
    WHATSAPP_OBJECT,
    InboundMessage,
    MetaError,
    StatusUpdate,
    WebhookContact,
    split_delivery,
)
from whatwut.channels.whatsapp.models import WhatsAppInboundEvent, WhatsAppInstance
from whatwut.contacts import service as contacts
from whatwut.conversations import service as conversations
from whatwut.conversations.models import Message
from whatwut.conversations.schemas import sanitize_json
from whatwut.inboxes.models import Inbox
from whatwut.jobs.service import DEFAULT_QUEUE, defer
from whatwut.kit.errors import NotAuthenticated, WhatWutError
from whatwut.security.crypto import SecretBox
from whatwut.settings import Settings

log = structlog.get_logger(__name__)

#: Inbox types that receive Cloud API webhooks (the sandbox speaks the same protocol).
CLOUD_CHANNEL_TYPES = ("whatsapp_cloud", "whatsapp_sandbox")
PROCESS_TASK = "whatsapp_cloud.process_inbound"
MEDIA_TASK = "whatsapp_cloud.fetch_media"
#: An event whose message is not stored yet (a status racing its send job, a reaction arriving
#: before its message) is looked at again this many times, 1 s, 2 s, 4 s ... apart, then dropped.
MAX_WAITS = 6
_SIGNATURE = re.compile(r"^sha256=([0-9a-fA-F]{64})$")


# --- secrets -----------------------------------------------------------------------------------


class _OpenedSecrets:
    """Decrypted channel secrets by ciphertext: decrypting on every webhook costs more than routing.

    Keyed by the sealed value itself, so a changed secret is a new key (never a stale answer).
    """

    def __init__(self, limit: int = 4096) -> None:
        self._opened: dict[str, dict[str, Any]] = {}
        self._limit = limit

    def open(self, box: SecretBox, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        found = self._opened.get(sealed)
        if found is None:
            found = box.open(sealed)
            if len(self._opened) >= self._limit:
                self._opened.clear()
            self._opened[sealed] = found
        return found


_secrets = _OpenedSecrets()


def _env_secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


async def verify_token_matches(session: AsyncSession, box: SecretBox, settings: Settings, token: str) -> bool:
    """Meta's subscription handshake: the token of any Cloud API inbox, or the instance-wide one."""
    candidates: list[str] = []
    instance_token = _env_secret(settings.whatsapp_webhook_verify_token)
    if instance_token:
        candidates.append(instance_token)
    rows = await session.execute(
        select(Inbox.secrets_encrypted).where(Inbox.channel_type.in_(CLOUD_CHANNEL_TYPES))
    )
    for (sealed,) in rows.all():
        value = _secrets.open(box, sealed).get("verify_token")
        if isinstance(value, str) and value:
            candidates.append(value)
    given = token.encode()
    # Compare with every candidate (no early exit): the time taken does not say which matched.
    matched = [hmac.compare_digest(given, candidate.encode()) for candidate in candidates]
    return any(matched)


def signature_matches(raw: bytes, signature: str, secret: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex>`` is HMAC-SHA256 of the raw body with the app secret."""
    found = _SIGNATURE.match(signature.strip())
    if found is None:
        return False
    expected = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, found.group(1).lower())


def sign(raw: bytes, secret: str) -> str:
    """The header value Meta would send (tests, the sandbox)."""
    return "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()


# --- accepting a delivery (the request path) ----------------------------------------------------


@dataclass(frozen=True)
class Route:
    inbox_id: int
    account_id: int
    phone_number_id: str
    app_secret: str | None


@dataclass
class Accepted:
    """What a delivery led to: new events stored, duplicates recognised, things ignored."""

    stored: int = 0
    duplicates: int = 0
    ignored: int = 0
    reasons: list[str] = field(default_factory=list)


_ROUTES = text(
    "SELECT id, account_id, settings ->> 'phone_number_id' AS phone_number_id, secrets_encrypted "
    "FROM inboxes WHERE channel_type IN ('whatsapp_cloud', 'whatsapp_sandbox') "
    "AND settings ->> 'phone_number_id' = ANY(CAST(:ids AS text[])) "
    "ORDER BY (channel_type = 'whatsapp_cloud') DESC, id"
)

#: Store the events of many deliveries and defer one job per inbox for the new ones, in ONE
#: statement (one round trip). ``ord`` is each event's place in arrival order: rows are inserted in
#: key order (two concurrent batches sharing keys lock them in the same order, so they never
#: deadlock), while each job lists its ``event_ids`` in arrival order (the order they are processed
#: in). Duplicates, in the table or within the batch, insert nothing and defer nothing. Keys
#: already stored are filtered out before the insert: a unique-index insert of a key whose row a
#: processing job is updating would wait for that job's transaction. A
#: data-modifying CTE is atomic with the rest of the statement, and the statement runs in the
#: batch's transaction, so an event never commits without its job. The row type is
#: procrastinate's, as :func:`whatwut.jobs.service.defer` writes it. Returns one row per stored
#: event, and one row (``job_ids``) for the jobs.
_STORE_AND_DEFER = text(
    "WITH input AS ("
    " SELECT * FROM jsonb_to_recordset(CAST(:events AS jsonb))"
    " AS e(ord int, inbox_id bigint, account_id bigint, kind text, key text, payload jsonb)),"
    " stored AS ("
    " INSERT INTO whatsapp_inbound_events (inbox_id, account_id, kind, event_key, payload)"
    " SELECT inbox_id, account_id, kind, key, payload FROM input i WHERE NOT EXISTS (SELECT FROM"
    " whatsapp_inbound_events w WHERE w.inbox_id = i.inbox_id AND w.kind = i.kind AND w.event_key = i.key)"
    " ORDER BY inbox_id, kind, key, ord"
    " ON CONFLICT (inbox_id, kind, event_key) DO NOTHING"
    " RETURNING id, inbox_id, account_id, kind, event_key),"
    " first AS (SELECT inbox_id, kind, key, min(ord) AS ord FROM input GROUP BY 1, 2, 3),"
    " per_inbox AS (SELECT s.inbox_id, s.account_id, array_agg(s.id ORDER BY f.ord) AS ids"
    " FROM stored s JOIN first f ON f.inbox_id = s.inbox_id AND f.kind = s.kind AND f.key = s.event_key"
    " GROUP BY 1, 2),"
    " jobs AS (SELECT procrastinate_defer_jobs_v1(array_agg(ROW(CAST(:queue AS text),"
    " CAST(:task AS text), 0, NULL, NULL, jsonb_build_object('account_id', account_id,"
    " 'inbox_id', inbox_id, 'event_ids', to_jsonb(ids)), NULL)::procrastinate_job_to_defer_v1))"
    " AS job_ids FROM per_inbox HAVING count(*) > 0)"
    " SELECT inbox_id, kind, event_key, NULL AS job_ids FROM stored"
    " UNION ALL SELECT NULL, NULL, NULL, job_ids FROM jobs"
)

#: How long a process trusts a cached route. Routing is the only read on the request path, and it
#: rarely changes: an inbox's new app secret is picked up at once (a signature that the cached
#: secret refuses is checked again against the database), while an old secret still verifies for
#: at most this long, in each server process. Unknown phone number ids are never cached, so a new
#: inbox receives its first delivery.
ROUTE_TTL_SECONDS = 5.0


class _RouteCache:
    """Routes by (engine, instance-wide secret, phone number id), each fresh for ``ttl`` seconds.

    An expired route is still answered (``stale``) for another ``ttl`` while one lookup refreshes
    it in the background: under a burst, expiry must not send every request in flight to the
    database at once.
    """

    def __init__(self, ttl: float = ROUTE_TTL_SECONDS, limit: int = 4096) -> None:
        self.ttl = ttl
        self._routes: dict[tuple[Any, str | None, str], tuple[Route, float]] = {}
        self._limit = limit

    def get(self, key: tuple[Any, str | None, str]) -> tuple[Route, bool] | None:
        """``(route, stale)``, or ``None`` when unknown or expired for too long."""
        found = self._routes.get(key)
        if found is None:
            return None
        now = time.monotonic()
        if found[1] + self.ttl <= now:
            return None
        return found[0], found[1] <= now

    def put(self, key: tuple[Any, str | None, str], route: Route) -> None:
        if len(self._routes) >= self._limit:
            self._routes.clear()
        self._routes[key] = (route, time.monotonic() + self.ttl)

    def drop(self, key: tuple[Any, str | None, str]) -> None:
        self._routes.pop(key, None)


_routes_cache = _RouteCache()


async def find_routes(
    engine: AsyncEngine,
    box: SecretBox,
    settings: Settings,
    phone_number_ids: Sequence[str],
    *,
    fresh: bool = False,
) -> dict[str, Route]:
    """The inbox (and its app secret) of each phone number id; unknown ones are absent.

    Answered from the route cache when every id is in it (and not ``fresh``); otherwise one query
    on a connection of its own, shared by every request that asks for the same ids meanwhile (a
    burst arriving at an empty cache would otherwise send each request in flight to the database).
    """
    if not phone_number_ids:
        return {}
    if not fresh:
        cached = _cached_routes(engine, settings, phone_number_ids)
        if cached is not None and not cached[1]:
            return cached[0]
    loop = asyncio.get_running_loop()
    key = (engine, id(loop), _env_secret(settings.whatsapp_app_secret), tuple(phone_number_ids))
    lookup = _lookups.get(key)
    if lookup is None:
        lookup = _lookups[key] = loop.create_task(_look_up_routes(engine, box, settings, phone_number_ids))
        lookup.add_done_callback(lambda _: _lookups.pop(key, None))
    return dict(await asyncio.shield(lookup))


_lookups: dict[tuple[Any, ...], asyncio.Task[dict[str, Route]]] = {}


async def _look_up_routes(
    engine: AsyncEngine, box: SecretBox, settings: Settings, phone_number_ids: Sequence[str]
) -> dict[str, Route]:
    fallback = _env_secret(settings.whatsapp_app_secret)
    routes: dict[str, Route] = {}
    async with engine.connect() as conn:
        rows = (await conn.execute(_ROUTES, {"ids": list(phone_number_ids)})).all()
        await conn.rollback()
    for inbox_id, account_id, phone_number_id, sealed in rows:
        if phone_number_id in routes:
            continue
        secret = _secrets.open(box, sealed).get("app_secret") or fallback
        routes[phone_number_id] = Route(int(inbox_id), int(account_id), phone_number_id, secret)
    for phone_number_id in phone_number_ids:
        key = (engine, fallback, phone_number_id)
        route = routes.get(phone_number_id)
        if route is None:
            _routes_cache.drop(key)  # the inbox is gone (or never was): not routed any more
        else:
            _routes_cache.put(key, route)
    return routes


_refreshing: set[tuple[Any, tuple[str, ...]]] = set()


def _refresh_soon(engine: AsyncEngine, box: SecretBox, settings: Settings, ids: Sequence[str]) -> None:
    """Look stale routes up again in the background, once per process at a time."""
    key = (engine, tuple(ids))
    if key in _refreshing:
        return
    _refreshing.add(key)

    async def refresh() -> None:
        try:
            await find_routes(engine, box, settings, ids, fresh=True)
        except Exception:
            log.warning("whatsapp.route_refresh_failed", exc_info=True)
        finally:
            _refreshing.discard(key)

    task = asyncio.get_running_loop().create_task(refresh())
    _background.add(task)
    task.add_done_callback(_background.discard)


_background: set[asyncio.Task[None]] = set()


def _cached_routes(
    engine: AsyncEngine, settings: Settings, phone_number_ids: Sequence[str]
) -> tuple[dict[str, Route], bool] | None:
    """The routes of all these ids from the cache and whether any is stale, or ``None`` when any
    of them is not cached."""
    fallback = _env_secret(settings.whatsapp_app_secret)
    routes: dict[str, Route] = {}
    stale = False
    for phone_number_id in phone_number_ids:
        found = _routes_cache.get((engine, fallback, phone_number_id))
        if found is None:
            return None
        routes[phone_number_id] = found[0]
        stale = stale or found[1]
    return routes, stale


class MalformedBody(WhatWutError):
    """The webhook body is not a JSON object (400, as Meta's senders expect for bad syntax)."""

    status_code = 400
    title = "Malformed body"
    type_slug = "malformed-body"


def parse_body(raw: bytes) -> dict[str, Any]:
    """The webhook body as JSON, or 400: not JSON, truncated, NaN, too deep, not an object."""

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    try:
        body = json.loads(raw, parse_constant=no_constants)
    except (ValueError, RecursionError, UnicodeDecodeError):
        raise MalformedBody("the body is not valid JSON", field="body") from None
    if not isinstance(body, dict):
        raise MalformedBody("the body must be a JSON object", field="body")
    return body


#: Events of one delivery for one inbox: ``(route, [(kind, key, payload), ...])``.
InboxEvents = tuple[Route, list[tuple[str, str, dict[str, Any]]]]


def events_json(batch: Sequence[InboxEvents]) -> str:
    """The events of a batch as one JSON parameter, numbered in arrival order.

    Only text PostgreSQL can store goes in (no NUL, no lone surrogate).
    """
    rows: list[dict[str, Any]] = []
    for route, events in batch:
        for kind, key, payload in events:
            rows.append(
                {
                    "ord": len(rows),
                    "inbox_id": route.inbox_id,
                    "account_id": route.account_id,
                    "kind": kind,
                    "key": key,
                    "payload": payload,
                }
            )
    encoded = json.dumps(rows, ensure_ascii=False, separators=(",", ":"))
    try:
        encoded.encode("utf-8")
        clean = "\\u0000" not in encoded
    except UnicodeEncodeError:
        clean = False
    if not clean:
        encoded = json.dumps(sanitize_json(rows), ensure_ascii=False, separators=(",", ":"))
        encoded = encoded.replace("\\u0000", "")
    return encoded


async def store_events(conn: AsyncConnection, batch: Sequence[InboxEvents]) -> set[tuple[int, str, str]]:
    """Insert a batch's events and defer their jobs (one statement, the caller's transaction).

    Returns the ``(inbox_id, kind, key)`` of the events that were new.
    """
    result = await conn.execute(
        _STORE_AND_DEFER, {"events": events_json(batch), "queue": DEFAULT_QUEUE, "task": PROCESS_TASK}
    )
    return {(int(row[0]), row[1], row[2]) for row in result.all() if row[0] is not None}


#: Writes the events of one delivery (``[(route, events), ...]``) and answers how many were new
#: per item, once they are committed with their jobs; :class:`~.ingest.GroupCommit` in the server.
StoreEvents = Callable[[list[InboxEvents]], Awaitable[list[int]]]


async def accept_delivery(
    engine: AsyncEngine,
    box: SecretBox,
    settings: Settings,
    raw: bytes,
    signature: str | None,
    store: StoreEvents,
) -> Accepted:
    """Verify and store one webhook delivery; raises 401 (signature) or 400 (body).

    Nothing is written unless the signature matches the app secret of an inbox the delivery is
    for (or ``WHATSAPP_APP_SECRET``). Changes for inboxes whose secret did not sign the delivery
    are skipped. Deliveries that carry nothing for WhatWut (another ``object``, an unknown phone
    number id, other webhook fields) are accepted and ignored: Meta expects a 200 for them.
    Returns once ``store`` has committed the events (with their jobs).
    """
    if not signature:
        raise NotAuthenticated("X-Hub-Signature-256 is missing", field="X-Hub-Signature-256")
    if _SIGNATURE.match(signature.strip()) is None:
        raise NotAuthenticated("X-Hub-Signature-256 must be sha256=<hex digest>", field="X-Hub-Signature-256")
    body = parse_body(raw)
    delivery = split_delivery(body)
    accepted = Accepted(ignored=delivery.ignored)
    fallback = _env_secret(settings.whatsapp_app_secret)
    found = _cached_routes(engine, settings, delivery.phone_number_ids)
    cached = found[0] if found is not None else None
    if found is not None and found[1]:
        _refresh_soon(engine, box, settings, delivery.phone_number_ids)
    routes = cached or await find_routes(engine, box, settings, delivery.phone_number_ids, fresh=True)
    signed_by, secrets_seen = _signers(raw, signature, routes, fallback)
    if cached and any(route.app_secret not in signed_by for route in routes.values()):
        # A cached secret may be stale (the inbox's app secret just changed): ask the database.
        routes = await find_routes(engine, box, settings, delivery.phone_number_ids, fresh=True)
        signed_by, secrets_seen = _signers(raw, signature, routes, fallback)
    if not signed_by:
        if not secrets_seen:
            # Nothing here is ours and no secret could check it: nothing to store, nothing to trust.
            accepted.reasons.append("no inbox for this delivery")
            accepted.ignored += sum(len(c.events) or 1 for c in delivery.changes)
            return accepted
        raise NotAuthenticated("X-Hub-Signature-256 does not match", field="X-Hub-Signature-256")
    if delivery.object != WHATSAPP_OBJECT:
        accepted.reasons.append(f"object {delivery.object!r} is not {WHATSAPP_OBJECT}")
        accepted.ignored += len(delivery.changes) or 1
        return accepted
    per_inbox: dict[int, InboxEvents] = {}
    for change in delivery.changes:
        accepted.ignored += change.ignored
        route = routes.get(change.phone_number_id)
        if route is None:
            accepted.reasons.append(f"unknown phone_number_id {change.phone_number_id}")
            accepted.ignored += len(change.events) or 1
            continue
        if route.app_secret not in signed_by:
            accepted.reasons.append(f"phone_number_id {change.phone_number_id} is signed by another app")
            accepted.ignored += len(change.events) or 1
            continue
        per_inbox.setdefault(route.inbox_id, (route, []))[1].extend(change.events)
    batch = [item for item in per_inbox.values() if item[1]]
    if not batch:
        return accepted
    for (_route, events), stored in zip(batch, await store(batch), strict=True):
        accepted.stored += stored
        accepted.duplicates += len(events) - stored
    return accepted


def _signers(
    raw: bytes, signature: str, routes: dict[str, Route], fallback: str | None
) -> tuple[set[str], set[str]]:
    """The secrets (of these routes, or the instance-wide one) that signed the delivery, and all tried."""
    secrets_seen = {route.app_secret for route in routes.values() if route.app_secret}
    if fallback:
        secrets_seen.add(fallback)
    signed_by = {secret for secret in secrets_seen if signature_matches(raw, signature, secret)}
    return signed_by, secrets_seen


# --- processing (the job) -----------------------------------------------------------------------

WAITING = "waiting"


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(value: str | None) -> str | None:
    """Meta's Unix-seconds timestamp as ISO 8601 (``None`` when absent or nonsense)."""
    if not value or not value.isdigit() or len(value) > 12:
        return None
    return datetime.fromtimestamp(int(value), UTC).isoformat()


@dataclass
class Rendered:
    """A WhatsApp message as WhatWut stores it."""

    content: str | None
    content_type: str
    attributes: dict[str, Any] = field(default_factory=dict)
    media_type: str | None = None
    media_id: str | None = None
    media_mime_type: str | None = None
    media_sha256: str | None = None
    location_data: dict[str, Any] | None = None
    contact_vcard: str | None = None


_MEDIA_CONTENT_TYPES = {
    "image": "image",
    "audio": "audio",
    "video": "video",
    "document": "file",
    "sticker": "sticker",
}


def _describe_errors(errors: list[MetaError] | None) -> str | None:
    if not errors:
        return None
    return "; ".join(error.describe() for error in errors)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _name_of(card: dict[str, Any]) -> dict[str, Any]:
    name = card.get("name")
    return name if isinstance(name, dict) else {}


def _vcard(card: dict[str, Any]) -> str:
    """A vCard 3.0 of one ``contacts[]`` item (name, phones, emails, organisation)."""

    def esc(value: Any) -> str:
        return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace(",", "\\,").replace(";", "\\;")

    name = _name_of(card)
    formatted = name.get("formatted_name") or " ".join(
        str(name[k]) for k in ("first_name", "last_name") if name.get(k)
    )
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{esc(formatted or 'Unknown')}"]
    if name.get("last_name") or name.get("first_name"):
        lines.append(f"N:{esc(name.get('last_name', ''))};{esc(name.get('first_name', ''))};;;")
    org = card.get("org")
    if isinstance(org, dict) and org.get("company"):
        lines.append(f"ORG:{esc(org['company'])}")
    for phone in _items(card.get("phones")):
        if isinstance(phone, dict) and phone.get("phone"):
            kind = esc(phone.get("type") or "CELL").upper()
            wa = f";waid={esc(phone['wa_id'])}" if phone.get("wa_id") else ""
            lines.append(f"TEL;type={kind}{wa}:{esc(phone['phone'])}")
    for email in _items(card.get("emails")):
        if isinstance(email, dict) and email.get("email"):
            lines.append(f"EMAIL;type={esc(email.get('type') or 'INTERNET').upper()}:{esc(email['email'])}")
    lines.append("END:VCARD")
    return "\r\n".join(lines)


def _card_contact(card: dict[str, Any]) -> dict[str, Any]:
    name = _name_of(card)
    formatted = str(name.get("formatted_name") or name.get("first_name") or "Unknown")[:256]
    entry: dict[str, Any] = {"name": formatted}
    phones = [p for p in _items(card.get("phones")) if isinstance(p, dict) and p.get("phone")]
    if phones:
        entry["phone_number"] = str(phones[0]["phone"])[:32]
        if phones[0].get("wa_id"):
            entry["wa_id"] = str(phones[0]["wa_id"])[:64]
    emails = [e for e in _items(card.get("emails")) if isinstance(e, dict) and e.get("email")]
    if emails:
        entry["email"] = str(emails[0]["email"])[:320]
    return entry


def render(message: InboundMessage) -> Rendered:
    """Content, content type and attributes of any message type Meta sends (unknown ones too)."""
    kind = message.type or "unknown"
    media = message.media()
    if kind == "text" and message.text is not None and message.text.body is not None:
        return Rendered(message.text.body, "text")
    if media is not None:
        media_kind, item = media
        attributes: dict[str, Any] = {"media": {"id": item.id, "mime_type": item.mime_type}}
        if media_kind == "audio" and item.voice:
            attributes["voice"] = True
        if media_kind == "sticker" and item.animated is not None:
            attributes["animated"] = item.animated
        if item.filename:
            attributes["filename"] = item.filename
        return Rendered(
            item.caption,
            _MEDIA_CONTENT_TYPES[media_kind],
            attributes,
            media_type=media_kind,
            media_id=item.id,
            media_mime_type=item.mime_type,
            media_sha256=item.sha256,
        )
    if kind == "location" and message.location is not None:
        loc = message.location
        if loc.latitude is not None and loc.longitude is not None:
            data = loc.model_dump(exclude_none=True)
            label = loc.name or loc.address or f"{loc.latitude}, {loc.longitude}"
            return Rendered(label, "location", data, location_data=data)
    if kind == "contacts" and message.contacts:
        cards = message.contacts[:10]
        entries = [_card_contact(card) for card in cards]
        return Rendered(
            ", ".join(entry["name"] for entry in entries),
            "contact_card",
            {"contacts": entries},
            contact_vcard="\r\n".join(_vcard(card) for card in cards),
        )
    if kind == "interactive" and message.interactive is not None:
        interactive = message.interactive
        reply = interactive.button_reply or interactive.list_reply
        if reply is not None:
            reply_type = "button_reply" if interactive.button_reply is not None else "list_reply"
            attributes = {"interactive_reply": {"type": reply_type, **reply.model_dump(exclude_none=True)}}
            return Rendered(reply.title or reply.id, "text", attributes)
        if interactive.nfm_reply is not None:
            nfm = interactive.nfm_reply
            body = nfm.get("body") if isinstance(nfm.get("body"), str) else None
            return Rendered(
                body or "Form submitted", "text", {"interactive_reply": {"type": "nfm_reply", **nfm}}
            )
    if kind == "button" and message.button is not None:
        button = message.button
        return Rendered(
            button.text or button.payload, "text", {"button": button.model_dump(exclude_none=True)}
        )
    if kind == "order" and message.order is not None:
        order = message.order
        items = order.product_items or []
        summary = order.text or f"Order of {len(items)} item{'s' if len(items) != 1 else ''}"
        return Rendered(summary, "text", {"order": order.model_dump(exclude_none=True)})
    if kind == "system" and message.system is not None:
        body = message.system.get("body")
        return Rendered(str(body) if body else "WhatsApp system message", "text", {"system": message.system})
    reason = _describe_errors(message.errors)
    detail = f"Message type {kind!r} is not supported"
    if kind == "unsupported":
        detail = "The customer sent a message WhatsApp Cloud API does not deliver"
    return Rendered(
        f"{detail}{': ' + reason if reason else ''}",
        "unsupported",
        {
            "unsupported": {
                "type": kind,
                "errors": [e.model_dump(exclude_none=True) for e in message.errors or []],
            }
        },
    )


def _common_attributes(message: InboundMessage, contact: WebhookContact) -> dict[str, Any]:
    """Context every message may carry: forwarded flags, ad referral, business-scoped ids, errors."""
    attributes: dict[str, Any] = {}
    context = message.context
    if context is not None:
        if context.id:
            attributes["in_reply_to_external_id"] = context.id
        if context.forwarded:
            attributes["forwarded"] = True
        if context.frequently_forwarded:
            attributes["frequently_forwarded"] = True
        if context.referred_product:
            attributes["referred_product"] = context.referred_product
    if message.referral:
        attributes["referral"] = message.referral
    whatsapp_ids = {
        "from_user_id": message.from_user_id,
        "user_id": contact.user_id,
        "parent_user_id": (message.model_extra or {}).get("parent_user_id"),
    }
    kept = {k: v for k, v in whatsapp_ids.items() if isinstance(v, str) and v}
    if kept:
        attributes["whatsapp"] = kept
    sent_at = _timestamp(message.timestamp)
    if sent_at:
        attributes["sent_at"] = sent_at
    errors = _describe_errors(message.errors)
    if errors and message.type != "unsupported":
        attributes["errors"] = errors
    return attributes


async def _find(
    session: AsyncSession, inbox: Inbox, wamid: str | None, *, lock: bool = True
) -> Message | None:
    if not wamid:
        return None
    return await conversations.find_message_by_source(
        session, inbox.account_id, inbox.id, wamid, for_update=lock
    )


async def _process_reaction(session: AsyncSession, inbox: Inbox, message: InboundMessage, sender: str) -> str:
    reaction = message.reaction
    if reaction is None or not reaction.message_id:
        return "ignored: reaction without message_id"
    target = await _find(session, inbox, reaction.message_id)
    if target is None:
        return WAITING
    attributes = dict(target.content_attributes or {})
    reactions = [r for r in _items(attributes.get("reactions")) if isinstance(r, dict)]
    at = message.timestamp or ""
    mine = next((r for r in reactions if r.get("from") == sender), None)
    if mine is not None and str(mine.get("timestamp") or "") > at:
        return "ignored: an older reaction"  # a later reaction by the same person already arrived
    reactions = [r for r in reactions if r.get("from") != sender]
    if reaction.emoji:
        reactions.append({"emoji": reaction.emoji, "from": sender, "source_id": message.id, "timestamp": at})
    attributes["reactions"] = reactions
    await conversations.amend_message(session, target, content_attributes=attributes)
    return "applied"


async def _process_revoke(session: AsyncSession, inbox: Inbox, message: InboundMessage) -> str:
    original_id = message.revoke.original_message_id if message.revoke else None
    if not original_id:
        return "ignored: revoke without original_message_id"
    target = await _find(session, inbox, original_id)
    if target is None:
        return WAITING
    if (target.content_attributes or {}).get("deleted"):
        return "duplicate"
    attributes = {**(target.content_attributes or {}), "deleted": True}
    attributes["deleted_at"] = _timestamp(message.timestamp) or _now().isoformat()
    await conversations.amend_message(
        session, target, content=None, replace_content=True, content_attributes=attributes
    )
    return "applied"


async def _process_edit(session: AsyncSession, inbox: Inbox, message: InboundMessage) -> str:
    edit = message.edit
    if edit is None or not edit.original_message_id:
        return "ignored: edit without original_message_id"
    target = await _find(session, inbox, edit.original_message_id)
    if target is None:
        return WAITING
    attributes = dict(target.content_attributes or {})
    history = [h for h in _items(attributes.get("edit_history")) if isinstance(h, dict)]
    if any(h.get("source_id") == message.id for h in history):
        return "duplicate"
    new = render(edit.message) if edit.message is not None else Rendered(None, "text")
    history.append(
        {"content": target.content, "source_id": message.id, "edited_at": _timestamp(message.timestamp)}
    )
    attributes.update(edited=True, edit_history=history)
    await conversations.amend_message(
        session, target, content=new.content, replace_content=True, content_attributes=attributes
    )
    return "applied"


@dataclass
class Batch:
    """What a job's events share, looked up once per batch instead of once per event.

    Only the inbox's WhatsApp instance id: it is fixed for the inbox's life (the row is created
    once, and goes only with the inbox, whose own row every event still reads).
    """

    instance_ids: dict[int, int | None] = field(default_factory=dict)


async def _instance_id(session: AsyncSession, inbox: Inbox, batch: Batch | None) -> int | None:
    if batch is not None and inbox.id in batch.instance_ids:
        return batch.instance_ids[inbox.id]
    stored = (
        await session.execute(select(WhatsAppInstance.id).where(WhatsAppInstance.inbox_id == inbox.id))
    ).scalar_one_or_none()
    if stored is None:
        # Created in this event's transaction: not remembered, it is not committed yet.
        instance = await whatsapp.instance_for(session, inbox)
        return instance.id if instance is not None else None
    if batch is not None:
        batch.instance_ids[inbox.id] = stored
    return int(stored)


async def _process_message(
    session: AsyncSession,
    inbox: Inbox,
    event: WhatsAppInboundEvent,
    *,
    last_try: bool,
    batch: Batch | None = None,
) -> str:
    payload = event.payload
    message = InboundMessage.model_validate(payload.get("message") or {})
    contact = WebhookContact.model_validate(payload.get("contact") or {})
    sender = contact.wa_id or message.from_ or contact.user_id or message.from_user_id
    if not sender or not message.id:
        return "ignored: no sender"
    kind = message.type
    if kind == "reaction":
        outcome = await _process_reaction(session, inbox, message, sender)
        return "ignored: reacted-to message not found" if outcome == WAITING and last_try else outcome
    if kind == "revoke":
        outcome = await _process_revoke(session, inbox, message)
        return "ignored: revoked message not found" if outcome == WAITING and last_try else outcome
    if kind == "edit":
        outcome = await _process_edit(session, inbox, message)
        if outcome != WAITING or not last_try:
            return outcome
        # The original never arrived: keep the edited text as a message of its own.
        edited = (
            message.edit.message
            if message.edit and message.edit.message
            else InboundMessage.model_validate({})
        )
        rendered = render(edited)
        rendered.attributes.update(
            edited=True, original_message_id=message.edit.original_message_id if message.edit else None
        )
    else:
        rendered = render(message)
    attributes = {**_common_attributes(message, contact), **rendered.attributes}
    quoted = await _find(session, inbox, attributes.get("in_reply_to_external_id"), lock=False)
    if quoted is not None:
        attributes["in_reply_to"] = quoted.id
    profile_name = contact.profile.name if contact.profile else None
    phone = sender if sender.isdigit() else None
    # One customer's events one at a time, before any row lock: two ids of the same person (a
    # ``wa_id`` and a ``from`` spelled differently) would otherwise lock the contact and the
    # conversation counter in opposite orders.
    person = re.sub(r"\D", "", sender) or sender
    await session.execute(
        select(
            func.pg_advisory_xact_lock(
                func.hashtextextended(f"whatsapp.sender:{inbox.account_id}:{person}", 0)
            )
        )
    )
    _contact, contact_inbox = await contacts.find_or_create_by_source(
        session, inbox.account_id, inbox.id, sender, name=profile_name or phone or sender, phone_number=phone
    )
    stored = await conversations.record_incoming_message(
        session,
        account_id=inbox.account_id,
        inbox_id=inbox.id,
        contact_inbox=contact_inbox,
        content=rendered.content,
        content_type=rendered.content_type,
        content_attributes=attributes,
        source_id=message.id,
    )
    instance_id = await _instance_id(session, inbox, batch)
    identity = whatsapp.Sender(
        contact_id=contact_inbox.contact_id,
        whatsapp_id=sender,
        profile_name=profile_name,
        business_user_id=contact.user_id or message.from_user_id,
    )
    if stored is None:
        if instance_id is not None:
            await whatsapp.remember_contact(
                session,
                instance_id=instance_id,
                contact_id=identity.contact_id,
                whatsapp_id=identity.whatsapp_id,
                profile_name=identity.profile_name,
                business_user_id=identity.business_user_id,
            )
        return "duplicate"
    if instance_id is not None:
        await whatsapp.record_message(
            session,
            sender=identity,
            instance_id=instance_id,
            message_id=stored.id,
            whatsapp_message_id=message.id,
            media_type=rendered.media_type,
            media_id=rendered.media_id,
            media_mime_type=rendered.media_mime_type,
            media_sha256=rendered.media_sha256,
            location_data=sanitize_json(rendered.location_data) if rendered.location_data else None,
            contact_vcard=rendered.contact_vcard.replace("\x00", "") if rendered.contact_vcard else None,
        )
    if rendered.media_id:
        await defer(
            session,
            MEDIA_TASK,
            {"account_id": inbox.account_id, "inbox_id": inbox.id, "message_id": stored.id},
        )
    return "stored"


_DELIVERY_STEPS = ("sent", "delivered", "read", "failed")


async def _process_status(
    session: AsyncSession, inbox: Inbox, event: WhatsAppInboundEvent, *, last_try: bool
) -> str:
    status = StatusUpdate.model_validate(event.payload.get("status") or {})
    if status.status not in _DELIVERY_STEPS:
        return f"ignored: status {status.status!r}"
    target = await _find(session, inbox, status.id, lock=False)
    if target is None:
        if last_try:
            log.info(
                "whatsapp.status_for_unknown_message",
                inbox_id=inbox.id,
                wamid=status.id,
                status=status.status,
            )
            return "ignored: message not found"
        return WAITING
    if target.message_type != "outgoing":
        return "ignored: not an outgoing message"
    error = _describe_errors(status.errors) if status.status == "failed" else None
    await conversations.update_delivery_status(
        session,
        account_id=inbox.account_id,
        message_id=target.id,
        status=status.status,
        external_error=error
        or ("WhatsApp could not deliver the message" if status.status == "failed" else None),
    )
    return "applied"


async def process_event(
    session: AsyncSession, event_id: int, *, batch: Batch | None = None, durable: bool = True
) -> str | None:
    """Apply one stored event; ``None`` when it is already done (or another job holds it).

    Returns the outcome; :data:`WAITING` means "the message it refers to is not stored yet, look
    again later" (the event stays unprocessed, its ``attempts`` counted). With ``durable=False``
    the transaction's commit does not wait for the WAL flush (set in the same round trip as the
    event's lock; see :func:`process_in_transaction`).
    """
    # The event (locked) and its inbox (not locked) in one round trip.
    query = (
        select(WhatsAppInboundEvent, Inbox)
        .outerjoin(
            Inbox,
            (Inbox.id == WhatsAppInboundEvent.inbox_id)
            & (Inbox.account_id == WhatsAppInboundEvent.account_id),
        )
        .where(WhatsAppInboundEvent.id == event_id, WhatsAppInboundEvent.processed_at.is_(None))
        .with_for_update(of=WhatsAppInboundEvent, skip_locked=True)
    )
    if not durable:
        # ``set_config(..., true)`` is ``SET LOCAL``; evaluated for the row the statement returns,
        # which is the only case where this transaction writes anything.
        query = query.add_columns(func.set_config("synchronous_commit", "off", True))
    found = (await session.execute(query)).one_or_none()
    if found is None:
        return None
    event, inbox = found[0], found[1]
    last_try = event.attempts + 1 >= MAX_WAITS
    if inbox is None:
        outcome = "ignored: inbox gone"
    elif event.kind == "message":
        outcome = await _process_message(session, inbox, event, last_try=last_try, batch=batch)
    else:
        outcome = await _process_status(session, inbox, event, last_try=last_try)
    if outcome == WAITING:
        # Look again later; the follow-up job commits with this attempt, so it cannot be lost.
        event.attempts += 1
        await defer(
            session,
            PROCESS_TASK,
            {"account_id": event.account_id, "inbox_id": event.inbox_id, "event_ids": [event.id]},
            scheduled_at=_now() + wait_delay(event.attempts),
        )
    else:
        event.processed_at = _now()
        event.outcome = outcome[:500]
        if outcome.startswith("ignored"):
            log.info("whatsapp.event_ignored", event_id=event.id, inbox_id=event.inbox_id, why=outcome)
    await session.flush()
    return outcome


async def process_in_transaction(
    session: AsyncSession, event_id: int, batch: Batch | None = None
) -> str | None:
    """:func:`process_event` as a job runs it, in a transaction of its own.

    Its commit does not wait for the WAL flush (``synchronous_commit = off``): the raw event is
    already durable, and procrastinate marks the job done with a flushing commit, which writes
    this one too. A crash in between leaves the job ``doing``; it runs again (``jobs.retry_stalled``)
    and skips the events already applied.
    """
    return await process_event(session, event_id, batch=batch, durable=False)


def wait_delay(attempts: int) -> timedelta:
    """1 s, 2 s, 4 s ... (at most 30 s) before looking at a waiting event again."""
    return timedelta(seconds=min(2 ** max(attempts - 1, 0), 30))
