"""Helpers for the WhatsApp outbound tests: a live server pointed at the fake Graph API, Cloud API
inboxes, customers who wrote in, and waiting for jobs to finish."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.conversation_support import Db, messages
from tests.support import Actor, LiveServer, start_live_server, unique
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer
from whatwut.contacts import service as contacts
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.db.engine import transaction

#: Fast retries so the backoff tests take a second, not minutes.
OUTBOUND_SETTINGS: dict[str, object] = {
    "WHATSAPP_SEND_RETRY_SECONDS": "0.2",
    "WHATSAPP_SEND_MAX_ATTEMPTS": "3",
    "WHATWUT_WORKER_POLL_SECONDS": "0.1",
}


@contextmanager
def live_with_graph(database_url: str, data_dir: Any, graph: FakeGraphServer) -> Iterator[LiveServer]:
    overrides = {"WHATSAPP_GRAPH_URL": graph.base_url, **OUTBOUND_SETTINGS}
    with start_live_server(database_url, data_dir, **overrides) as server:
        yield server


def numeric_id() -> str:
    return str(10**14 + secrets.randbelow(10**14))


def cloud_inbox(client: httpx.Client, admin: Actor, **channel: object) -> dict[str, Any]:
    """A Cloud API inbox made through the API, with a fresh phone_number_id and WABA id."""
    body: dict[str, Any] = {
        "name": unique("WhatsApp"),
        "enable_auto_assignment": False,
        "channel": {
            "type": "whatsapp_cloud",
            "phone_number": "+551198765" + str(secrets.randbelow(9000) + 1000),
            "phone_number_id": numeric_id(),
            "business_account_id": numeric_id(),
            "access_token": "EAAG-test-token",
            "app_secret": "app-secret",
            "verify_token": "verify-me",
            **channel,
        },
    }
    response = client.post(admin.path("inboxes"), json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    inbox: dict[str, Any] = response.json()
    return inbox


def customer_writes(
    live: LiveServer,
    account_id: int,
    inbox_id: int,
    wa_id: str,
    text: str = "Hello",
    wamid: str | None = None,
) -> tuple[int, int, str]:
    """What the inbound webhook stores for a customer's message: ``(conversation, message, wamid)``."""
    wamid = wamid or f"wamid.IN{secrets.token_hex(12)}"

    async def run(context: AppContext) -> tuple[int, int]:
        async with transaction(context.sessionmaker) as session:
            _contact, contact_inbox = await contacts.find_or_create_by_source(
                session, account_id, inbox_id, wa_id, name="Customer " + wa_id[-4:], phone_number=wa_id
            )
            message = await conversations.record_incoming_message(
                session,
                account_id=account_id,
                inbox_id=inbox_id,
                contact_inbox=contact_inbox,
                content=text,
                source_id=wamid,
            )
            assert message is not None
            return message.conversation_id, message.id

    conversation_id, message_id = live.run(run)  # type: ignore[misc]
    return conversation_id, message_id, wamid


def wa_id() -> str:
    return "1555" + str(secrets.randbelow(10**7)).rjust(7, "0")


def reply(client: httpx.Client, actor: Actor, conversation_id: int, **body: Any) -> dict[str, Any]:
    response = client.post(
        actor.path(f"conversations/{conversation_id}/messages"), json=body, headers=actor.headers
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def wait_for_message(
    client: httpx.Client, actor: Actor, conversation_id: int, message_id: int, *, timeout: float = 15.0
) -> dict[str, Any]:
    """The message once its delivery job settled it (no longer ``pending``)."""
    deadline = time.monotonic() + timeout
    while True:
        for message in messages(client, actor, conversation_id, limit=100):
            if message["id"] == message_id and (
                message["status"] != "pending" or time.monotonic() > deadline
            ):
                return message
        if time.monotonic() > deadline:
            raise AssertionError(f"message {message_id} not found")
        time.sleep(0.05)


def wait_for_jobs(db: Db, task_name: str, count: int, *, timeout: float = 15.0) -> list[tuple[Any, ...]]:
    """Until ``count`` jobs of the task reached a final state; returns ``(id, status, attempts, args)``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = db.execute(
            "SELECT id, status::text, attempts, args FROM procrastinate_jobs "
            "WHERE task_name = %s ORDER BY id",
            (task_name,),
        ).fetchall()
        done = [r for r in rows if r[1] in ("succeeded", "failed", "cancelled", "aborted")]
        if len(done) >= count or time.monotonic() > deadline:
            return done
        time.sleep(0.05)
