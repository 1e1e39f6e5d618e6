"""Helpers for the web UI's tests: sign in through the login form, and customers who write in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import httpx

from tests.support import PASSWORD, LiveServer
from whatwut.contacts import service as contacts
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.db.engine import transaction
from whatwut.inboxes import service as inboxes

T = TypeVar("T")

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_csrf(html: str) -> str:
    """The first CSRF token in a page's forms."""
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF field"
    return match.group(1)


def form_csrf_for(html: str, action: str) -> str:
    """The CSRF token of the form posting to ``action``."""
    pattern = re.compile(
        r'action="' + re.escape(action) + r'".*?name="csrf_token" value="([^"]+)"', re.DOTALL
    )
    match = pattern.search(html)
    assert match, f"no form posts to {action}"
    return match.group(1)


def sign_in(client: httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    """Fill in and post the login form, as a browser would."""
    page = client.get("/login")
    assert page.status_code == 200, page.text
    return client.post(
        "/login", data={"email": email, "password": password, "csrf_token": form_csrf(page.text), "next": "/"}
    )


def page_csrf_header(html: str) -> str:
    """The session's CSRF token as the page hands it to htmx (``hx-headers``)."""
    match = re.search(r'"X-CSRF-Token": "([^"]+)"', html)
    assert match, "the page does not give htmx a CSRF token"
    return match.group(1)


def run_in_thread(fn: Callable[..., T], *args: object) -> T:
    """Run blocking setup (which starts its own event loop) off Playwright's running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(fn, *args).result()


def _run(live: LiveServer, work: Callable[[AppContext], Awaitable[T]]) -> T:
    return run_in_thread(live.run, work)  # type: ignore[return-value]


@dataclass(frozen=True)
class Incoming:
    conversation_id: int
    message_id: int
    contact_id: int


def add_inbox(live: LiveServer, account_id: int, name: str | None = None, channel_type: str = "api") -> int:
    async def create(context: AppContext) -> int:
        async with transaction(context.sessionmaker) as session:
            inbox = await inboxes.add_inbox(
                session,
                context.secrets,
                account_id,
                name=name or f"Inbox {uuid.uuid4().hex[:6]}",
                channel_type=channel_type,
                settings={},
            )
            return inbox.id

    return _run(live, create)


def customer_writes(
    live: LiveServer,
    account_id: int,
    inbox_id: int,
    text: str,
    *,
    phone: str = "+14155550100",
    name: str = "Dana Customer",
) -> Incoming:
    """A customer message arriving on the inbox's channel, through the conversations service."""

    async def record(context: AppContext) -> Incoming:
        async with transaction(context.sessionmaker) as session:
            contact, contact_inbox = await contacts.find_or_create_by_source(
                session, account_id, inbox_id, phone.lstrip("+"), name=name, phone_number=phone
            )
            message = await conversations.record_incoming_message(
                session,
                account_id=account_id,
                inbox_id=inbox_id,
                contact_inbox=contact_inbox,
                content=text,
                source_id=f"wamid.{uuid.uuid4().hex}",
            )
            assert message is not None
            return Incoming(message.conversation_id, message.id, contact.id)

    return _run(live, record)
