"""The WhatsApp sandbox: chat as a customer with the Demo account's Cloud API inbox, no Meta needed.

The sandbox inbox is an ordinary ``whatsapp_cloud`` inbox (``settings.sandbox = true``) whose
``graph_url`` points at the fake Graph API mounted in the same server. What a sandbox phone types
is delivered as a Cloud API webhook, signed with the inbox's app secret, to the real
``POST /webhooks/whatsapp/cloud`` over HTTP; what the business answers leaves through the real
outbound job to the fake Graph API, where the phones pick it up and answer with ``statuses``
webhooks (sent, delivered, and read while the phone's chat is on screen), as Meta does. Only the
Graph URL differs from production.

The phones' chats live in the server's memory: a restart starts them afresh (the conversations
stay in WhatWut, of course).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.channels.whatsapp import service as whatsapp
from whatwut.channels.whatsapp.fake_graph import GRAPH_VERSION, FakeGraphState
from whatwut.context import AppContext
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox
from whatwut.kit.errors import InvalidInput, NotFound

log = structlog.get_logger(__name__)

SANDBOX_INBOX_NAME = "WhatsApp sandbox"
#: The business number the sandbox phones write to (555-01xx numbers are reserved for fiction).
SANDBOX_BUSINESS_PHONE = "+12025550100"
SANDBOX_BUSINESS_NAME = "WhatWut Demo"
#: Where the fake Graph API is mounted inside the WhatWut app (demo mode only).
GRAPH_MOUNT = "/sandbox/graph"
WEBHOOK_PATH = "/webhooks/whatsapp/cloud"
DEFAULT_CUSTOMER_NAME = "Sandbox customer"
MAX_TEXT = 4096  # Meta's limit for a text message body
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # Meta's limit for images
IMAGE_TYPES = ("image/jpeg", "image/png")
_WA_ID = re.compile(r"^[0-9]{6,15}$")
_STATUS_RANK = {"pending": 0, "sent": 1, "delivered": 2, "read": 3}
#: A phone reports a message as read while its chat was polled this recently.
VIEWING_SECONDS = 3.0


def graph_url_for(base_url: str) -> str:
    """The sandbox inbox's ``graph_url`` for a server reachable at ``base_url``."""
    return f"{base_url.rstrip('/')}{GRAPH_MOUNT}/{GRAPH_VERSION}"


def local_base_url(host: str, port: int) -> str:
    """How the server reaches itself: a wildcard listen address is reached on loopback."""
    if host in ("0.0.0.0", "", "::", "[::]"):  # noqa: S104 (reading the address, not binding)
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def wa_id_of(phone: str, field: str = "from") -> str:
    """``"+1 555-0001"`` → ``"15550001"``: WhatsApp ids are the number's digits."""
    digits = re.sub(r"[\s().\-]", "", phone.strip()).removeprefix("+")
    if not _WA_ID.match(digits):
        raise InvalidInput(
            f"{field} must be a phone number with its country code, 6 to 15 digits (e.g. +15550001)",
            field=field,
        )
    return digits


# --- the sandbox inbox ------------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxInbox:
    """Where the sandbox delivers: the inbox and the Meta ids its webhooks carry."""

    account_id: int
    inbox_id: int
    phone_number_id: str
    business_account_id: str
    display_phone_number: str
    access_token: str


def _numeric_id() -> str:
    return str(10**14 + secrets.randbelow(9 * 10**14))


def is_sandbox(inbox: Inbox) -> bool:
    return inbox.channel_type == "whatsapp_cloud" and inbox.settings.get("sandbox") is True


async def ensure_sandbox_inbox(
    session: AsyncSession, context: AppContext, account_id: int, *, graph_url: str
) -> SandboxInbox:
    """The account's "WhatsApp sandbox" inbox, created once; its ``graph_url`` follows the server.

    It is a ``whatsapp_cloud`` inbox like any other (random Meta-shaped ids and secrets), so
    webhooks, jobs and replies run the production code; the account's administrators are members.
    """
    inbox = await inboxes.find_inbox_by_name(session, account_id, SANDBOX_INBOX_NAME)
    if inbox is not None and not is_sandbox(inbox):
        raise InvalidInput(
            f"the account already has an inbox named {SANDBOX_INBOX_NAME!r} that is not the sandbox",
            field="name",
        )
    if inbox is None:
        inbox = await inboxes.add_inbox(
            session,
            context,
            account_id,
            name=SANDBOX_INBOX_NAME,
            channel_type="whatsapp_cloud",
            settings={
                "phone_number": SANDBOX_BUSINESS_PHONE,
                "phone_number_id": _numeric_id(),
                "business_account_id": _numeric_id(),
                "sandbox": True,
                "graph_url": graph_url,
            },
            secrets={
                "access_token": "EAASANDBOX" + secrets.token_urlsafe(32),
                "app_secret": secrets.token_hex(16),
                "verify_token": secrets.token_urlsafe(16),
            },
        )
        await whatsapp.sync_instance(session, inbox)
    elif inbox.settings.get("graph_url") != graph_url:
        # The port can change between starts; the setting is ours (the channel API does not edit it).
        inbox.settings = {**inbox.settings, "graph_url": graph_url}
        await session.flush()
    members, _ = await accounts.list_members(session, account_id, limit=100)
    admins = {user.id for user, membership in members if membership.role == "administrator"}
    current = set(await inboxes.inbox_member_ids(session, inbox.id))
    if not admins <= current:
        await inboxes.set_members(session, account_id, inbox.id, current | admins, actor_user_id=None)
    return _target(context, inbox)


def _target(context: AppContext, inbox: Inbox) -> SandboxInbox:
    settings = inbox.settings
    return SandboxInbox(
        account_id=inbox.account_id,
        inbox_id=inbox.id,
        phone_number_id=str(settings["phone_number_id"]),
        business_account_id=str(settings["business_account_id"]),
        display_phone_number=str(settings["phone_number"]).removeprefix("+"),
        access_token=str(inboxes.channel_secrets(context, inbox).get("access_token", "")),
    )


async def app_secret(session: AsyncSession, context: AppContext, target: SandboxInbox) -> str:
    """The inbox's app secret as stored now (an administrator may have rotated it)."""
    try:
        inbox = await inboxes.get_inbox(session, target.account_id, target.inbox_id)
    except NotFound:
        raise NotFound("the WhatsApp sandbox inbox was deleted; restart with --demo", field="inbox") from None
    return str(inboxes.channel_secrets(context, inbox)["app_secret"])


# --- Meta's webhook format --------------------------------------------------------------------


def sign(body: bytes, secret: str) -> str:
    """``X-Hub-Signature-256`` as Meta computes it: HMAC-SHA256 of the raw body with the app secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def new_inbound_wamid(wa_id: str) -> str:
    raw = (
        b"\x18\x0b"
        + wa_id.encode()[:20]
        + b"\x15\x02\x00\x12\x18\x14"
        + secrets.token_hex(10).upper().encode()
    )
    return "wamid." + base64.b64encode(raw).decode().rstrip("=")


def _envelope(target: SandboxInbox, value: dict[str, Any]) -> dict[str, Any]:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": target.business_account_id,
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": target.display_phone_number,
                                "phone_number_id": target.phone_number_id,
                            },
                            **value,
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def message_webhook(
    target: SandboxInbox, *, wa_id: str, name: str, wamid: str, message: dict[str, Any], at: float
) -> dict[str, Any]:
    """A ``messages`` change as Meta delivers a customer's message (``message`` = type and body)."""
    return _envelope(
        target,
        {
            "contacts": [{"profile": {"name": name}, "wa_id": wa_id}],
            "messages": [{"from": wa_id, "id": wamid, "timestamp": str(int(at)), **message}],
        },
    )


def status_webhook(target: SandboxInbox, *, wa_id: str, wamid: str, status: str, at: float) -> dict[str, Any]:
    """A ``statuses`` change as Meta reports a business message's progress on the customer's phone."""
    entry: dict[str, Any] = {
        "id": wamid,
        "status": status,
        "timestamp": str(int(at)),
        "recipient_id": wa_id,
    }
    if status in ("sent", "delivered"):
        entry["conversation"] = {
            "id": hashlib.sha256(wa_id.encode()).hexdigest()[:32],
            "origin": {"type": "service"},
        }
        entry["pricing"] = {
            "billable": False,
            "pricing_model": "PMP",
            "category": "service",
            "type": "free_customer_service",
        }
    return _envelope(target, {"statuses": [entry]})


# --- the phones ---------------------------------------------------------------------------------


@dataclass
class PhoneMessage:
    """One bubble in a phone's chat.

    ``direction``: ``from_phone`` (the customer typed it) or ``to_phone`` (the business sent it).
    ``status`` of a customer's message: ``pending`` → ``delivered`` (the webhook got its 200) →
    ``read`` (the business marked it read), or ``failed``; of a business message: the receipt the
    phone reported back (``sent`` → ``delivered`` → ``read``).
    """

    wamid: str
    direction: str
    type: str
    text: str | None
    at: float
    status: str = "pending"
    media_url: str | None = None
    caption: str | None = None
    reply_to: str | None = None
    options: list[str] = field(default_factory=list)
    #: title → (``button_reply`` | ``list_reply``, id) of the options of an interactive message.
    option_ids: dict[str, tuple[str, str]] = field(default_factory=dict)
    reactions: list[str] = field(default_factory=list)
    error: str | None = None
    webhook_status: int | None = None
    # Receipt bookkeeping of business messages (monotonic clock): when the phone "has" it, when to
    # report next, and how many more times to repeat the last receipt.
    due_at: float = 0.0
    next_try: float = 0.0
    resends_left: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "wamid": self.wamid,
            "direction": self.direction,
            "type": self.type,
            "text": self.text,
            "caption": self.caption,
            "media_url": self.media_url,
            "reply_to": self.reply_to,
            "options": list(self.options),
            "reactions": list(self.reactions),
            "status": self.status,
            "error": self.error,
            "at": self.at,
        }


@dataclass
class Phone:
    wa_id: str
    name: str
    messages: list[PhoneMessage] = field(default_factory=list)
    #: Bumped on every change, so the page's poll re-renders only when there is news.
    version: int = 0
    viewed_at: float = 0.0

    @property
    def number(self) -> str:
        return "+" + self.wa_id

    def find(self, wamid: str) -> PhoneMessage | None:
        for message in reversed(self.messages):
            if message.wamid == wamid:
                return message
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def describe_business_message(body: dict[str, Any], media_url: Callable[[str], str]) -> PhoneMessage:
    """How a phone shows a ``POST /{phone_number_id}/messages`` body (Meta's send format)."""
    kind = str(body.get("type") or "text")
    part = _dict(body.get(kind))
    message = PhoneMessage(wamid="", direction="to_phone", type=kind, text=None, at=time.time())
    context = body.get("context")
    if isinstance(context, dict) and isinstance(context.get("message_id"), str):
        message.reply_to = context["message_id"]
    if kind == "text":
        message.text = str(part.get("body", ""))
    elif kind in ("image", "video", "audio", "document", "sticker"):
        if isinstance(part.get("id"), str):
            message.media_url = media_url(part["id"])
        elif isinstance(part.get("link"), str):
            message.media_url = part["link"]
        message.caption = part.get("caption") if isinstance(part.get("caption"), str) else None
        message.text = part.get("filename") if isinstance(part.get("filename"), str) else None
    elif kind == "location":
        place = ", ".join(str(part[k]) for k in ("name", "address") if part.get(k))
        message.text = f"📍 {place or 'Location'} ({part.get('latitude')}, {part.get('longitude')})"
    elif kind == "template":
        language = _dict(part.get("language"))
        values = [
            str(parameter.get("text", ""))
            for component in part.get("components") or []
            if isinstance(component, dict)
            for parameter in component.get("parameters") or []
            if isinstance(parameter, dict)
        ]
        message.text = f"Template {part.get('name')} ({language.get('code', '')})" + (
            ": " + ", ".join(values) if values else ""
        )
    elif kind == "interactive":
        inner = _dict(part.get("body"))
        message.text = str(inner.get("text", ""))
        action = _dict(part.get("action"))
        for button in action.get("buttons") or []:
            reply = button.get("reply") if isinstance(button, dict) else None
            if isinstance(reply, dict) and reply.get("title"):
                message.options.append(str(reply["title"]))
                message.option_ids[str(reply["title"])] = ("button_reply", str(reply.get("id", "")))
        for section in action.get("sections") or []:
            for row in (section.get("rows") or []) if isinstance(section, dict) else []:
                if isinstance(row, dict) and row.get("title"):
                    message.options.append(str(row["title"]))
                    message.option_ids[str(row["title"])] = ("list_reply", str(row.get("id", "")))
    else:
        message.text = f"[{kind}]"
    return message


class Sandbox:
    """The sandbox of one server process: its phones, and the way to the real webhook endpoint.

    Built by :func:`whatwut.channels.whatsapp.sandbox.install_sandbox`; it listens to the fake
    Graph API for what the business sends, and reports receipts from a small background task.
    """

    def __init__(
        self,
        target: SandboxInbox,
        *,
        base_url: str,
        graph: FakeGraphState,
        context: Callable[[], AppContext],
        receipt_delay: float = 0.5,
    ) -> None:
        self.target = target
        self.base_url = base_url.rstrip("/")
        self.graph = graph
        self.receipt_delay = receipt_delay
        self._context = context
        self.phones: dict[str, Phone] = {}
        self._by_wamid: dict[str, Phone] = {}
        self._read_scan = 0
        self._secret: tuple[str, float] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        graph.add_token(target.access_token)
        graph.add_phone_number(target.phone_number_id, SANDBOX_BUSINESS_PHONE, SANDBOX_BUSINESS_NAME)
        graph.on_message.append(self._on_business_message)

    # --- phones ---

    def phone(self, wa_id: str, name: str | None = None) -> Phone:
        phone = self.phones.get(wa_id)
        if phone is None:
            phone = self.phones[wa_id] = Phone(wa_id=wa_id, name=name or DEFAULT_CUSTOMER_NAME)
        elif name:
            phone.name = name
        return phone

    def media_url(self, media_id: str) -> str:
        return f"{GRAPH_MOUNT}/_media/{media_id}"

    def chat(self, wa_id: str, *, viewing: bool) -> Phone:
        """The phone's chat, with the business's read marks applied; ``viewing`` = it is on screen."""
        phone = self.phone(wa_id)
        self._apply_read_marks()
        if viewing:
            phone.viewed_at = time.monotonic()
            if any(m.direction == "to_phone" and m.status != "read" for m in phone.messages):
                self._kick()
        return phone

    # --- what the customer sends ---

    async def send(
        self,
        phone_number: str,
        *,
        name: str | None = None,
        text: str | None = None,
        image: tuple[bytes, str, str | None] | None = None,
        reply_to: str | None = None,
    ) -> PhoneMessage:
        """Deliver what the customer typed as a signed webhook to the real endpoint, over HTTP."""
        wa_id = wa_id_of(phone_number)
        name = (name or "").strip()[:100] or None
        text = (text or "").strip() or None
        if text is not None and len(text) > MAX_TEXT:
            raise InvalidInput(f"text must be at most {MAX_TEXT} characters", field="text")
        if image is None and text is None:
            raise InvalidInput("type a message (or attach an image)", field="text")
        phone = self.phone(wa_id, name)
        body: dict[str, Any]
        media_url = None
        if image is not None:
            content, mime, file_name = image
            if mime not in IMAGE_TYPES:
                raise InvalidInput("the image must be a JPEG or PNG", field="image")
            if not content or len(content) > MAX_IMAGE_BYTES:
                raise InvalidInput("the image must be between 1 byte and 5 MB", field="image")
            media_id = self.graph.add_media(content, mime, file_name)
            image_part: dict[str, Any] = {
                "id": media_id,
                "mime_type": mime,
                "sha256": base64.b64encode(hashlib.sha256(content).digest()).decode(),
            }
            if text:
                image_part["caption"] = text
            body = {"type": "image", "image": image_part}
            media_url = self.media_url(media_id)
        else:
            body = {"type": "text", "text": {"body": text}}
        if reply_to:
            body["context"] = {"from": self.target.display_phone_number, "id": reply_to}
        return await self._send_body(phone, body, text=text, reply_to=reply_to, media_url=media_url)

    async def _send_body(
        self,
        phone: Phone,
        body: dict[str, Any],
        *,
        text: str | None,
        reply_to: str | None = None,
        media_url: str | None = None,
    ) -> PhoneMessage:
        wamid = new_inbound_wamid(phone.wa_id)
        message = PhoneMessage(
            wamid=wamid,
            direction="from_phone",
            type=str(body["type"]),
            text=text,
            at=time.time(),
            reply_to=reply_to,
        )
        if media_url is not None:
            message.text, message.caption, message.media_url = None, text, media_url
        payload = message_webhook(
            self.target, wa_id=phone.wa_id, name=phone.name, wamid=wamid, message=body, at=message.at
        )
        phone.messages.append(message)
        self._by_wamid[wamid] = phone
        phone.version += 1
        status, detail = await self._deliver(payload)
        message.webhook_status = status
        if status == 200:
            message.status = "delivered"
        else:
            message.status, message.error = "failed", detail
        phone.version += 1
        log.info("sandbox.message_sent", wa_id=phone.wa_id, wamid=wamid, webhook_status=status)
        return message

    async def react(self, phone_number: str, wamid: str, emoji: str) -> PhoneMessage:
        """The customer reacts to a business message (Meta's ``reaction`` message type)."""
        wa_id = wa_id_of(phone_number)
        phone = self.phone(wa_id)
        target = phone.find(wamid)
        if target is None:
            raise NotFound("no such message in this phone's chat", field="message_id")
        body = {"type": "reaction", "reaction": {"message_id": wamid, "emoji": emoji}}
        payload = message_webhook(
            self.target,
            wa_id=wa_id,
            name=phone.name,
            wamid=new_inbound_wamid(wa_id),
            message=body,
            at=time.time(),
        )
        status, _ = await self._deliver(payload)
        if status == 200:
            target.reactions = [emoji] if emoji else []
            phone.version += 1
        return target

    async def choose(self, phone_number: str, wamid: str, title: str) -> PhoneMessage:
        """The customer taps a reply button or list row of the business's interactive message."""
        wa_id = wa_id_of(phone_number)
        phone = self.phone(wa_id)
        asked = phone.find(wamid)
        if asked is None or title not in asked.option_ids:
            raise NotFound("no such option in this phone's chat", field="title")
        kind, option_id = asked.option_ids[title]
        reply = {"id": option_id, "title": title}
        body = {
            "type": "interactive",
            "interactive": {"type": kind, kind: reply},
            "context": {"from": self.target.display_phone_number, "id": wamid},
        }
        return await self._send_body(phone, body, text=title, reply_to=wamid)

    # --- what the business sends (the fake Graph API calls this for every accepted send) ---

    def _on_business_message(self, phone_number_id: str, body: dict[str, Any], wamid: str) -> None:
        if phone_number_id != self.target.phone_number_id:
            return
        try:
            wa_id = wa_id_of(str(body.get("to", "")), field="to")
        except InvalidInput:
            return
        phone = self.phone(wa_id)
        if body.get("type") == "reaction":
            part = body.get("reaction") or {}
            reacted = phone.find(str(part.get("message_id", "")))
            if reacted is not None:
                emoji = str(part.get("emoji") or "")
                reacted.reactions = [emoji] if emoji else []
                phone.version += 1
            return
        message = describe_business_message(body, self.media_url)
        message.wamid = wamid
        message.due_at = time.monotonic() + self.receipt_delay
        phone.messages.append(message)
        self._by_wamid[wamid] = phone
        phone.version += 1
        self._kick()

    def _apply_read_marks(self) -> None:
        """The business's ``{"status": "read", "message_id"}`` calls turn the customer's ticks blue."""
        requests = self.graph.requests_to("messages", "POST")
        for request in requests[self._read_scan :]:
            body = request.json
            if request.status != 200 or not isinstance(body, dict) or body.get("status") != "read":
                continue
            wamid = str(body.get("message_id", ""))
            phone = self._by_wamid.get(wamid)
            marked = phone.find(wamid) if phone else None
            if phone is None or marked is None or marked.direction != "from_phone":
                continue
            # Meta marks everything up to that message read.
            for message in phone.messages:
                if (
                    message.direction == "from_phone"
                    and message.status == "delivered"
                    and message.at <= marked.at
                ):
                    message.status = "read"
                    phone.version += 1
        self._read_scan = len(requests)

    # --- receipts ---

    def _kick(self) -> None:
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run_receipts())

    def _wanted_receipt(self, phone: Phone, message: PhoneMessage, now: float) -> str:
        if now < message.due_at:
            return "pending"  # still "in flight" to the phone
        return "read" if now - phone.viewed_at <= VIEWING_SECONDS else "delivered"

    async def _run_receipts(self) -> None:
        """Report ``sent`` → ``delivered`` → ``read`` for business messages, like the phone's WhatsApp.

        Each receipt is reported again twice, seconds apart (receipts never move a message
        backwards), in case it reached WhatWut before the send job had stored the ``wamid``.
        """
        try:
            while True:
                now = time.monotonic()
                busy = False
                for phone in list(self.phones.values()):
                    viewing = now - phone.viewed_at <= VIEWING_SECONDS
                    for message in [m for m in phone.messages if m.direction == "to_phone"]:
                        wanted = self._wanted_receipt(phone, message, now)
                        if now >= message.next_try:
                            if _STATUS_RANK[wanted] > _STATUS_RANK[message.status]:
                                await self._report_up_to(phone, message, wanted)
                            elif message.resends_left:
                                message.resends_left -= 1
                                message.next_try = now + 4.0
                                await self._report(phone, message, message.status)
                        busy = busy or message.status == "pending" or message.resends_left > 0
                        busy = busy or (viewing and message.status != "read")
                if not busy:
                    return
                await asyncio.sleep(0.25)
        except Exception:  # a background task must not die silently
            log.exception("sandbox.receipts_failed")

    async def _report_up_to(self, phone: Phone, message: PhoneMessage, wanted: str) -> None:
        for status in ("sent", "delivered", "read"):
            below = _STATUS_RANK[message.status] < _STATUS_RANK[status] <= _STATUS_RANK[wanted]
            if below and not await self._report(phone, message, status):
                message.next_try = time.monotonic() + 5.0  # WhatWut refused it: try later
                return
        message.resends_left, message.next_try = 2, time.monotonic() + 2.0

    async def _report(self, phone: Phone, message: PhoneMessage, status: str) -> bool:
        payload = status_webhook(
            self.target, wa_id=phone.wa_id, wamid=message.wamid, status=status, at=time.time()
        )
        code, _ = await self._deliver(payload)
        if code != 200:
            return False
        if _STATUS_RANK[status] > _STATUS_RANK[message.status]:
            message.status = status
            phone.version += 1
        return True

    # --- HTTP to the real endpoint ---

    async def _app_secret(self) -> str:
        if self._secret is not None and time.monotonic() - self._secret[1] < 10:
            return self._secret[0]
        context = self._context()
        async with context.sessionmaker() as session:
            secret = await app_secret(session, context, self.target)
        self._secret = (secret, time.monotonic())
        return secret

    async def _deliver(self, payload: dict[str, Any]) -> tuple[int, str | None]:
        """POST the webhook, signed, to this server's ``/webhooks/whatsapp/cloud``."""
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        signature = sign(body, await self._app_secret())
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30)
        try:
            response = await self._http.post(
                self.base_url + WEBHOOK_PATH,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": signature,
                    "User-Agent": "facebookexternalua",
                },
            )
        except httpx.HTTPError as exc:
            log.warning("sandbox.webhook_unreachable", url=self.base_url + WEBHOOK_PATH, error=str(exc))
            return 0, f"the webhook endpoint did not answer: {exc}"
        detail = None if response.status_code == 200 else response.text[:300]
        return response.status_code, detail

    async def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        if self._http is not None:
            await self._http.aclose()
