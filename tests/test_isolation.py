"""Two accounts on one server: nothing of one is visible from, or usable by, the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.conversation_support import Db, count, make_contact, make_inbox, start_conversation
from tests.support import Actor, LiveServer, assert_problem, new_account

PNG = b"\x89PNG\r\n\x1a\n" + b"\x01" * 32


@dataclass
class World:
    actor: Actor
    inbox: int
    contact: int
    conversation: dict[str, Any]
    message: dict[str, Any]


def _world(client: httpx.Client, actor: Actor, db: Db, word: str) -> World:
    inbox = make_inbox(client, actor, enable_auto_assignment=False)
    contact = make_contact(db, actor.account_id, f"Customer {word}")
    conversation = start_conversation(client, actor, inbox, contact)
    response = client.post(
        actor.path(f"conversations/{conversation['id']}/messages"),
        data={"content": f"the {word} secret"},
        files=[("attachments[]", ("photo.png", PNG, "image/png"))],
        headers=actor.headers,
    )
    assert response.status_code == 201, response.text
    return World(actor, inbox, contact, conversation, response.json())


@pytest.fixture(scope="module")
def worlds(live: LiveServer, db_conn: Db) -> tuple[World, World]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        first = _world(client, new_account(live, client), db_conn, "zanzibar")
        second = _world(client, new_account(live, client), db_conn, "quixotic")
    return first, second


def test_other_accounts_ids_are_404_in_my_account(client: httpx.Client, worlds: tuple[World, World]) -> None:
    mine, theirs = worlds
    me = mine.actor
    conversation = theirs.conversation["id"]
    for path in (
        f"conversations/{conversation}",
        f"conversations/{conversation}/messages",
        f"conversations/{conversation}/labels",
        f"inboxes/{theirs.inbox}",
        f"contacts/{theirs.contact}",
        f"attachments/{theirs.message['attachments'][0]['id']}",
    ):
        assert_problem(client.get(me.path(path), headers=me.headers), 404)
    writes: list[tuple[str, dict[str, Any]]] = [
        (f"conversations/{conversation}/messages", {"content": "hi"}),
        (f"conversations/{conversation}/toggle_status", {"status": "resolved"}),
        (f"conversations/{conversation}/assignments", {"assignee_id": me.user_id}),
        (f"conversations/{conversation}/labels", {"labels": []}),
        (f"conversations/{conversation}/update_last_seen", {}),
    ]
    for path, body in writes:
        assert_problem(client.post(me.path(path), json=body, headers=me.headers), 404)
    assert_problem(
        client.patch(me.path(f"conversations/{conversation}"), json={"priority": "high"}, headers=me.headers),
        404,
    )


def test_other_accounts_paths_are_404_with_my_token(
    client: httpx.Client, worlds: tuple[World, World]
) -> None:
    mine, theirs = worlds
    for path in ("conversations", "conversations/meta", f"conversations/{theirs.conversation['id']}"):
        assert_problem(client.get(theirs.actor.path(path), headers=mine.actor.headers), 404)
    attachment_url = theirs.message["attachments"][0]["data_url"]
    assert_problem(client.get(attachment_url, headers=mine.actor.headers), 404)


def test_lists_counts_and_search_hold_only_my_account(
    client: httpx.Client, worlds: tuple[World, World]
) -> None:
    mine, theirs = worlds
    me = mine.actor
    listed = client.get(me.path("conversations"), params={"status": "all"}, headers=me.headers).json()["data"]
    assert [c["id"] for c in listed] == [mine.conversation["id"]]
    assert client.get(me.path("conversations/meta"), headers=me.headers).json()["all_count"] == 1
    for q in ("quixotic", "Customer quixotic"):
        assert client.get(me.path("conversations"), params={"q": q}, headers=me.headers).json()["data"] == []
        hits = client.get(me.path("conversations/search"), params={"q": q}, headers=me.headers).json()["data"]
        assert hits == []
    assert (
        client.get(me.path("conversations"), params={"inbox_id": theirs.inbox}, headers=me.headers).json()[
            "data"
        ]
        == []
    )
    found = client.get(
        theirs.actor.path("conversations/search"), params={"q": "quixotic"}, headers=theirs.actor.headers
    )
    assert [hit["id"] for hit in found.json()["data"]] == [theirs.message["id"]]


def test_other_accounts_ids_cannot_be_referenced(
    client: httpx.Client, worlds: tuple[World, World], db_conn: Db
) -> None:
    mine, theirs = worlds
    me = mine.actor
    before = count(db_conn, "SELECT count(*) FROM conversations")
    for body, field in (
        ({"inbox_id": theirs.inbox, "contact_id": mine.contact}, "inbox_id"),
        ({"inbox_id": mine.inbox, "contact_id": theirs.contact}, "contact_id"),
        (
            {"inbox_id": mine.inbox, "contact_id": mine.contact, "assignee_id": theirs.actor.user_id},
            "assignee_id",
        ),
    ):
        assert_problem(client.post(me.path("conversations"), json=body, headers=me.headers), 422, field=field)
    assert count(db_conn, "SELECT count(*) FROM conversations") == before
    assigned = client.post(
        me.path(f"conversations/{mine.conversation['id']}/assignments"),
        json={"assignee_id": theirs.actor.user_id},
        headers=me.headers,
    )
    assert_problem(assigned, 422, field="assignee_id")


def test_nothing_was_changed_across_accounts(client: httpx.Client, worlds: tuple[World, World]) -> None:
    _, theirs = worlds
    shown = client.get(
        theirs.actor.path(f"conversations/{theirs.conversation['id']}"), headers=theirs.actor.headers
    ).json()
    assert shown["status"] == "open" and shown["assignee"] is None and shown["priority"] == "none"
    data = client.get(
        theirs.actor.path(f"conversations/{theirs.conversation['id']}/messages"), headers=theirs.actor.headers
    ).json()["data"]
    assert [m["content"] for m in data] == ["the quixotic secret"]
