"""Helpers for the conversation and message tests: inboxes, contacts and incoming messages."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg

from tests.support import Actor, LiveServer, unique
from whatwut.contacts.models import ContactInbox
from whatwut.context import AppContext
from whatwut.conversations import service
from whatwut.db.engine import transaction

Db = psycopg.Connection[tuple[Any, ...]]


def make_inbox(client: httpx.Client, admin: Actor, **settings: object) -> int:
    body: dict[str, object] = {"name": unique("Inbox"), "channel": {"type": "api"}}
    body.update(settings)
    response = client.post(admin.path("inboxes"), json=body, headers=admin.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def set_members(client: httpx.Client, admin: Actor, inbox_id: int, user_ids: list[int]) -> None:
    response = client.post(
        admin.path(f"inboxes/{inbox_id}/members"), json={"user_ids": user_ids}, headers=admin.headers
    )
    assert response.status_code == 200, response.text


def make_labels(client: httpx.Client, admin: Actor, *titles: str) -> None:
    for title in titles:
        response = client.post(admin.path("labels"), json={"title": title}, headers=admin.headers)
        assert response.status_code == 201, response.text


def make_contact(db: Db, account_id: int, name: str = "Customer", phone: str | None = None) -> int:
    row = db.execute(
        "INSERT INTO contacts (account_id, name, phone_number) VALUES (%s, %s, %s) RETURNING id",
        (account_id, name, phone),
    ).fetchone()
    assert row is not None
    return int(row[0])


def make_contact_inbox(db: Db, account_id: int, contact_id: int, inbox_id: int) -> int:
    row = db.execute(
        "INSERT INTO contact_inboxes (contact_id, inbox_id, source_id, account_id) "
        "VALUES (%s, %s, %s, %s) RETURNING id",
        (contact_id, inbox_id, unique("src"), account_id),
    ).fetchone()
    assert row is not None
    return int(row[0])


def set_availability(db: Db, account_id: int, user_id: int, availability: str) -> None:
    db.execute(
        "UPDATE account_users SET availability = %s WHERE account_id = %s AND user_id = %s",
        (availability, account_id, user_id),
    )


def start_conversation(
    client: httpx.Client, actor: Actor, inbox_id: int, contact_id: int, **body: object
) -> dict[str, Any]:
    payload: dict[str, object] = {"inbox_id": inbox_id, "contact_id": contact_id}
    payload.update(body)
    response = client.post(actor.path("conversations"), json=payload, headers=actor.headers)
    assert response.status_code == 201, response.text
    conversation: dict[str, Any] = response.json()
    return conversation


def receive(
    live: LiveServer,
    account_id: int,
    inbox_id: int,
    contact_inbox_id: int,
    content: str | None,
    *,
    source_id: str | None = None,
    content_type: str = "text",
    content_attributes: dict[str, Any] | None = None,
) -> int | None:
    """What a channel does with a customer's message; returns the message id (None if duplicate)."""

    async def run(context: AppContext) -> int | None:
        async with transaction(context.sessionmaker) as session:
            contact_inbox = await session.get(ContactInbox, contact_inbox_id)
            assert contact_inbox is not None
            message = await service.record_incoming_message(
                session,
                account_id=account_id,
                inbox_id=inbox_id,
                contact_inbox=contact_inbox,
                content=content,
                content_type=content_type,
                content_attributes=content_attributes,
                source_id=source_id,
            )
            return None if message is None else message.id

    return live.run(run)  # type: ignore[return-value]


def messages(
    client: httpx.Client, actor: Actor, conversation_id: int, **params: object
) -> list[dict[str, Any]]:
    response = client.get(
        actor.path(f"conversations/{conversation_id}/messages"), params=params, headers=actor.headers
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def activities(client: httpx.Client, actor: Actor, conversation_id: int) -> list[str]:
    return [
        str(m["content"])
        for m in messages(client, actor, conversation_id, limit=100)
        if m["message_type"] == "activity"
    ]


def conversation_ids(client: httpx.Client, actor: Actor, **params: object) -> list[int]:
    response = client.get(actor.path("conversations"), params=params, headers=actor.headers)
    assert response.status_code == 200, response.text
    return [int(c["id"]) for c in response.json()["data"]]


def count(db: Db, sql: str, *args: object) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])
