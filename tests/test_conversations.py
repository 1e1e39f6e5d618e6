"""Conversations over HTTP: create, list with every filter, pagination, counts, status, labels."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from tests.conversation_support import (
    Db,
    activities,
    conversation_ids,
    count,
    make_contact,
    make_contact_inbox,
    make_inbox,
    make_labels,
    receive,
    set_members,
    start_conversation,
)
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account
from whatwut.context import AppContext, set_current
from whatwut.conversations import service, tasks
from whatwut.db.engine import transaction


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


@pytest.fixture
def inbox(client: httpx.Client, admin: Actor) -> int:
    return make_inbox(client, admin, enable_auto_assignment=False)


def _conversation(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db, **body: object
) -> dict[str, Any]:
    contact = make_contact(db_conn, admin.account_id, "Maria Silva")
    return start_conversation(client, admin, inbox, contact, **body)


def test_creating_a_conversation_numbers_it_per_account(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    first = _conversation(client, admin, inbox, db_conn, message={"content": "Hello there"})
    second = _conversation(client, admin, inbox, db_conn)
    assert (first["display_id"], second["display_id"]) == (1, 2)
    assert first["status"] == "open" and first["assignee"] is None and first["labels"] == []
    assert first["contact"]["name"] == "Maria Silva"
    assert first["last_message"]["content"] == "Hello there"
    assert first["last_message"]["message_type"] == "outgoing"
    shown = client.get(admin.path(f"conversations/{first['id']}"), headers=admin.headers)
    assert shown.status_code == 200 and shown.json()["id"] == first["id"]


def test_concurrent_creates_never_share_a_display_id(
    live: LiveServer, admin: Actor, inbox: int, db_conn: Db
) -> None:
    import concurrent.futures

    contact = make_contact(db_conn, admin.account_id)

    def create(_: int) -> int:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            body = {"inbox_id": inbox, "contact_id": contact}
            response = http.post(admin.path("conversations"), json=body, headers=admin.headers)
            assert response.status_code == 201, response.text
            return int(response.json()["display_id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(create, range(16)))
    assert sorted(numbers) == list(range(1, 17))


def test_create_rejects_unknown_references_and_fields(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    contact = make_contact(db_conn, admin.account_id)
    path = admin.path("conversations")
    cases: list[tuple[dict[str, object], str]] = [
        ({"inbox_id": 999_999, "contact_id": contact}, "inbox_id"),
        ({"inbox_id": inbox, "contact_id": 999_999}, "contact_id"),
        ({"inbox_id": inbox, "contact_id": contact, "assignee_id": 999_999}, "assignee_id"),
        ({"inbox_id": inbox, "contact_id": contact, "team_id": 999_999}, "team_id"),
        ({"inbox_id": inbox, "contact_id": contact, "status": "snoozed"}, "status"),
        ({"inbox_id": inbox, "contact_id": contact, "surprise": 1}, "surprise"),
        ({"inbox_id": "x", "contact_id": contact}, "inbox_id"),
        ({"inbox_id": inbox, "contact_id": contact, "additional_attributes": {"a": "\u0000"}}, "additional"),
        ({"inbox_id": inbox, "contact_id": contact, "message": {"content": ""}}, "message.content"),
    ]
    for body, field in cases:
        assert_problem(client.post(path, json=body, headers=admin.headers), 422, field=field)
    assert count(db_conn, "SELECT count(*) FROM conversations WHERE account_id = %s", admin.account_id) == 0


def test_status_filter_defaults_to_open(client: httpx.Client, admin: Actor, inbox: int, db_conn: Db) -> None:
    opened = _conversation(client, admin, inbox, db_conn)
    pending = _conversation(client, admin, inbox, db_conn, status="pending")
    resolved = _conversation(client, admin, inbox, db_conn, status="resolved")
    assert conversation_ids(client, admin) == [opened["id"]]
    assert conversation_ids(client, admin, status="pending") == [pending["id"]]
    assert conversation_ids(client, admin, status="resolved") == [resolved["id"]]
    assert set(conversation_ids(client, admin, status="all")) == {opened["id"], pending["id"], resolved["id"]}
    assert_problem(
        client.get(admin.path("conversations"), params={"status": "closed"}, headers=admin.headers),
        422,
        field="status",
    )


def test_assignee_type_filter_and_meta_counts(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    agent = add_user(live, client, admin.account_id)
    set_members(client, admin, inbox, [agent.user_id])
    mine = _conversation(client, admin, inbox, db_conn, assignee_id=admin.user_id)
    theirs = _conversation(client, admin, inbox, db_conn, assignee_id=agent.user_id)
    nobody = _conversation(client, admin, inbox, db_conn)
    assert conversation_ids(client, admin, assignee_type="me") == [mine["id"]]
    assert conversation_ids(client, admin, assignee_type="unassigned") == [nobody["id"]]
    assert conversation_ids(client, admin, assignee_type="all") == [nobody["id"], theirs["id"], mine["id"]]
    meta = client.get(admin.path("conversations/meta"), headers=admin.headers).json()
    assert meta == {"mine_count": 1, "unassigned_count": 1, "assigned_count": 2, "all_count": 3}
    resolved_meta = client.get(
        admin.path("conversations/meta"), params={"status": "resolved"}, headers=admin.headers
    ).json()
    assert resolved_meta["all_count"] == 0


def test_inbox_and_team_filters(client: httpx.Client, admin: Actor, inbox: int, db_conn: Db) -> None:
    other_inbox = make_inbox(client, admin, enable_auto_assignment=False)
    team = client.post(admin.path("teams"), json={"name": "Sales"}, headers=admin.headers)
    assert team.status_code == 201, team.text
    team_id = team.json()["id"]
    here = _conversation(client, admin, inbox, db_conn, team_id=team_id)
    there = _conversation(client, admin, other_inbox, db_conn)
    assert conversation_ids(client, admin, inbox_id=inbox) == [here["id"]]
    assert conversation_ids(client, admin, inbox_id=other_inbox) == [there["id"]]
    assert conversation_ids(client, admin, team_id=team_id) == [here["id"]]
    assert here["team_id"] == team_id
    assert "Assigned to Sales team by" not in " ".join(activities(client, admin, here["id"]))


def test_labels_filter_needs_every_label(client: httpx.Client, admin: Actor, inbox: int, db_conn: Db) -> None:
    make_labels(client, admin, "vip", "billing")
    both = _conversation(client, admin, inbox, db_conn, labels=["vip", "billing"])
    one = _conversation(client, admin, inbox, db_conn, labels=["vip"])
    _conversation(client, admin, inbox, db_conn)
    assert set(conversation_ids(client, admin, labels="vip")) == {both["id"], one["id"]}
    assert conversation_ids(client, admin, labels="billing,vip") == [both["id"]]
    assert conversation_ids(client, admin, labels="VIP, billing") == [both["id"]]
    assert conversation_ids(client, admin, labels="nothing") == []
    assert_problem(
        client.get(admin.path("conversations"), params={"labels": "no spaces"}, headers=admin.headers),
        422,
        field="labels",
    )


def test_q_searches_messages_and_the_contact(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    ana = make_contact(db_conn, admin.account_id, "Ana Pereira", "+5511987654321")
    bruno = make_contact(db_conn, admin.account_id, "Bruno Costa", "+5511912345678")
    by_ana = start_conversation(client, admin, inbox, ana)
    by_bruno = start_conversation(
        client, admin, inbox, bruno, message={"content": "Your refund is on its way"}
    )
    assert conversation_ids(client, admin, q="refund") == [by_bruno["id"]]
    assert conversation_ids(client, admin, q="pereira") == [by_ana["id"]]
    assert conversation_ids(client, admin, q="98765") == [by_ana["id"]]
    assert conversation_ids(client, admin, q='"on its way"') == [by_bruno["id"]]
    assert conversation_ids(client, admin, q="nothing-like-this") == []
    assert_problem(
        client.get(admin.path("conversations"), params={"q": "a\x00b"}, headers=admin.headers), 422, field="q"
    )


def test_cursor_pagination_walks_every_conversation_once(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    contact = make_contact(db_conn, admin.account_id)
    created = [start_conversation(client, admin, inbox, contact)["id"] for _ in range(12)]
    # Same activity time for some, so the id breaks the tie.
    db_conn.execute(
        "UPDATE conversations SET last_activity_at = '2030-01-01T00:00:00Z' WHERE id = ANY(%s)",
        (created[3:8],),
    )
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, object] = {"limit": 5}
        if cursor:
            params["cursor"] = cursor
        body = client.get(admin.path("conversations"), params=params, headers=admin.headers).json()
        seen += [c["id"] for c in body["data"]]
        pages += 1
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and len(seen) == 12 and set(seen) == set(created)
    assert seen[:5] == sorted(created[3:8], reverse=True)
    assert_problem(
        client.get(admin.path("conversations"), params={"cursor": "garbage!"}, headers=admin.headers),
        422,
        field="cursor",
    )
    assert_problem(
        client.get(admin.path("conversations"), params={"limit": 101}, headers=admin.headers),
        422,
        field="limit",
    )


def test_unread_counts_are_per_agent(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    agent = add_user(live, client, admin.account_id)
    set_members(client, admin, inbox, [agent.user_id])
    contact = make_contact(db_conn, admin.account_id)
    contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
    for text in ("one", "two", "three"):
        receive(live, admin.account_id, inbox, contact_inbox, text)
    (listed,) = client.get(admin.path("conversations"), headers=admin.headers).json()["data"]
    assert listed["unread_count"] == 3 and listed["last_message"]["content"] == "three"
    read = client.post(admin.path(f"conversations/{listed['id']}/update_last_seen"), headers=admin.headers)
    assert read.status_code == 200 and read.json()["unread_count"] == 0
    receive(live, admin.account_id, inbox, contact_inbox, "four")
    shown = client.get(admin.path(f"conversations/{listed['id']}"), headers=admin.headers).json()
    assert shown["unread_count"] == 1
    assert (
        client.get(agent.path(f"conversations/{listed['id']}"), headers=agent.headers).json()["unread_count"]
        == 4
    )


def test_status_changes_write_activity_messages(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    conversation = _conversation(client, admin, inbox, db_conn)
    path = admin.path(f"conversations/{conversation['id']}/toggle_status")
    assert (
        client.post(path, json={"status": "resolved"}, headers=admin.headers).json()["status"] == "resolved"
    )
    assert client.post(path, json={}, headers=admin.headers).json()["status"] == "open"
    assert client.post(path, json={"status": "pending"}, headers=admin.headers).json()["status"] == "pending"
    assert client.post(path, json={"status": "pending"}, headers=admin.headers).status_code == 200
    assert activities(client, admin, conversation["id"]) == [
        "Conversation was marked resolved by Test User",
        "Conversation was reopened by Test User",
        "Conversation was marked as pending by Test User",
    ]
    events = count(
        db_conn,
        "SELECT count(*) FROM events WHERE account_id = %s AND event_type = 'conversation.status_changed'",
        admin.account_id,
    )
    assert events == 3


def test_snooze_needs_a_future_time(client: httpx.Client, admin: Actor, inbox: int, db_conn: Db) -> None:
    conversation = _conversation(client, admin, inbox, db_conn)
    path = admin.path(f"conversations/{conversation['id']}/toggle_status")
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for body in (
        {"status": "snoozed"},
        {"status": "snoozed", "snoozed_until": past},
        {"status": "snoozed", "snoozed_until": "2030-01-01T00:00:00"},
        {"status": "open", "snoozed_until": "2030-01-01T00:00:00Z"},
        {"status": "snoozed", "snoozed_until": "tomorrow"},
    ):
        assert_problem(client.post(path, json=body, headers=admin.headers), 422, field="snoozed_until")
    assert_problem(client.post(path, json={"status": "closed"}, headers=admin.headers), 422, field="status")
    assert activities(client, admin, conversation["id"]) == []


def test_snoozed_conversation_reopens_when_the_job_runs(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    conversation = _conversation(client, admin, inbox, db_conn)
    until = datetime.now(UTC) + timedelta(seconds=1)
    response = client.post(
        admin.path(f"conversations/{conversation['id']}/toggle_status"),
        json={"status": "snoozed", "snoozed_until": until.isoformat()},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "snoozed" and response.json()["snoozed_until"]
    assert conversation_ids(client, admin, status="snoozed") == [conversation["id"]]
    scheduled = db_conn.execute(
        "SELECT scheduled_at, args FROM procrastinate_jobs "
        "WHERE task_name = 'conversations.reopen_snoozed' AND args ? 'conversation_id'"
    ).fetchall()
    assert [row[1] for row in scheduled] == [{"conversation_id": conversation["id"]}]
    assert abs((scheduled[0][0] - until).total_seconds()) < 0.01

    async def run_job(context: AppContext) -> int:
        set_current(context)
        try:
            return await tasks.reopen_snoozed(timestamp=int(time.time()))
        finally:
            set_current(None)

    assert live.run(run_job) == 0  # not due yet
    time.sleep(1.2)
    # The server's own worker may run the scheduled job first; either way it happens once.
    live.run(run_job)
    assert live.run(run_job) == 0
    shown = client.get(admin.path(f"conversations/{conversation['id']}"), headers=admin.headers).json()
    assert shown["status"] == "open" and shown["snoozed_until"] is None
    reopened = [a for a in activities(client, admin, conversation["id"]) if "snooze ended" in a]
    assert reopened == ["Conversation was reopened as its snooze ended"]


def test_new_incoming_message_reopens_a_snoozed_conversation(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    contact = make_contact(db_conn, admin.account_id)
    contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
    receive(live, admin.account_id, inbox, contact_inbox, "hi")
    (conversation_id,) = conversation_ids(client, admin)
    until = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    client.post(
        admin.path(f"conversations/{conversation_id}/toggle_status"),
        json={"status": "snoozed", "snoozed_until": until},
        headers=admin.headers,
    )
    receive(live, admin.account_id, inbox, contact_inbox, "are you there?")
    shown = client.get(admin.path(f"conversations/{conversation_id}"), headers=admin.headers).json()
    assert shown["status"] == "open" and shown["snoozed_until"] is None
    assert conversation_ids(client, admin, status="all") == [conversation_id]


def test_resolved_policy_decides_reopen_or_new(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    for policy, expected in (("reopen", 1), ("new", 2)):
        inbox = make_inbox(client, admin, enable_auto_assignment=False, resolved_policy=policy)
        contact = make_contact(db_conn, admin.account_id)
        contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
        receive(live, admin.account_id, inbox, contact_inbox, "first")
        (first,) = conversation_ids(client, admin, inbox_id=inbox)
        client.post(
            admin.path(f"conversations/{first}/toggle_status"),
            json={"status": "resolved"},
            headers=admin.headers,
        )
        receive(live, admin.account_id, inbox, contact_inbox, "again")
        assert len(conversation_ids(client, admin, inbox_id=inbox, status="all")) == expected
        assert len(conversation_ids(client, admin, inbox_id=inbox, status="open")) == 1


def test_labels_replace_and_write_activity(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    make_labels(client, admin, "vip", "billing")
    conversation = _conversation(client, admin, inbox, db_conn)
    path = admin.path(f"conversations/{conversation['id']}/labels")
    unknown = client.post(path, json={"labels": ["never-defined"]}, headers=admin.headers)
    assert_problem(unknown, 422, field="labels")
    response = client.post(path, json={"labels": ["vip", "Billing", "vip"]}, headers=admin.headers)
    assert response.status_code == 200 and response.json() == {"labels": ["vip", "billing"]}
    assert client.post(path, json={"labels": ["billing"]}, headers=admin.headers).json() == {
        "labels": ["billing"]
    }
    assert client.get(path, headers=admin.headers).json() == {"labels": ["billing"]}
    assert activities(client, admin, conversation["id"]) == [
        "Test User added vip, billing",
        "Test User removed vip",
    ]
    for bad in (["has space"], ["x" * 65], [""], "vip", [1]):
        assert_problem(client.post(path, json={"labels": bad}, headers=admin.headers), 422, field="labels")


def test_patch_changes_priority_team_and_attributes(
    client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    conversation = _conversation(client, admin, inbox, db_conn)
    team = client.post(admin.path("teams"), json={"name": "Support"}, headers=admin.headers).json()
    path = admin.path(f"conversations/{conversation['id']}")
    body = {"priority": "urgent", "team_id": team["id"], "additional_attributes": {"order": "A-1"}}
    response = client.patch(path, json=body, headers=admin.headers)
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["priority"] == "urgent" and updated["team_id"] == team["id"]
    assert updated["additional_attributes"] == {"order": "A-1"}
    assert client.patch(path, json={"team_id": None}, headers=admin.headers).json()["team_id"] is None
    assert activities(client, admin, conversation["id"]) == [
        "Test User set the priority to urgent",
        "Assigned to Support team by Test User",
        "Unassigned from Support by Test User",
    ]
    assert_problem(client.patch(path, json={"priority": "meh"}, headers=admin.headers), 422, field="priority")
    assert_problem(client.patch(path, json={"team_id": 999_999}, headers=admin.headers), 422, field="team_id")
    assert_problem(client.patch(path, json={"status": "open"}, headers=admin.headers), 422, field="status")


def test_agents_see_only_their_inboxes(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    agent = add_user(live, client, admin.account_id)
    hidden_inbox = make_inbox(client, admin, enable_auto_assignment=False)
    set_members(client, admin, inbox, [agent.user_id])
    visible = _conversation(client, admin, inbox, db_conn)
    hidden = _conversation(client, admin, hidden_inbox, db_conn, message={"content": "secret words"})
    assert conversation_ids(client, agent) == [visible["id"]]
    assert_problem(client.get(agent.path(f"conversations/{hidden['id']}"), headers=agent.headers), 404)
    assert_problem(
        client.get(agent.path(f"conversations/{hidden['id']}/messages"), headers=agent.headers), 404
    )
    assert_problem(
        client.post(
            agent.path(f"conversations/{hidden['id']}/toggle_status"),
            json={"status": "resolved"},
            headers=agent.headers,
        ),
        404,
    )
    search = client.get(agent.path("conversations/search"), params={"q": "secret"}, headers=agent.headers)
    assert search.json()["data"] == []
    meta = client.get(agent.path("conversations/meta"), headers=agent.headers).json()
    assert meta["all_count"] == 1
    body = {"inbox_id": hidden_inbox, "contact_id": visible["contact"]["id"]}
    assert_problem(
        client.post(agent.path("conversations"), json=body, headers=agent.headers), 422, field="inbox_id"
    )


def test_list_is_a_constant_number_of_statements(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    for _ in range(50):
        contact = make_contact(db_conn, admin.account_id)
        contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
        receive(live, admin.account_id, inbox, contact_inbox, "hello")
    db_conn.execute(
        "UPDATE conversations SET assignee_id = %s, labels = '{vip}' WHERE account_id = %s",
        (admin.user_id, admin.account_id),
    )
    agent = service.Agent(account_id=admin.account_id, user_id=admin.user_id, name="Test User", role="agent")
    set_members(client, admin, inbox, [admin.user_id])

    async def statements_for(context: AppContext, limit: int) -> int:
        seen: list[str] = []

        def record(*args: Any) -> None:
            seen.append(args[2])

        event.listen(context.engine.sync_engine, "before_cursor_execute", record)
        async with transaction(context.sessionmaker) as session:
            page, _ = await service.list_conversations(
                session, agent, service.ConversationFilters(q="hello"), limit=limit
            )
            assert len(page) == limit and all(c.unread_count == 1 for c in page)
        return len(seen)

    async def measure(context: AppContext) -> tuple[int, int]:
        return await statements_for(context, 5), await statements_for(context, 50)

    small, large = live.run(measure)  # type: ignore[misc]
    assert small == large <= 4


def test_search_finds_messages_with_their_conversation(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: int, db_conn: Db
) -> None:
    contact = make_contact(db_conn, admin.account_id)
    contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
    for n in range(7):
        receive(live, admin.account_id, inbox, contact_inbox, f"invoice number {n} is late")
    receive(live, admin.account_id, inbox, contact_inbox, "unrelated")
    (conversation_id,) = conversation_ids(client, admin)
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, object] = {"q": "invoice late", "limit": 3}
        if cursor:
            params["cursor"] = cursor
        body = client.get(admin.path("conversations/search"), params=params, headers=admin.headers).json()
        found += body["data"]
        cursor = body["meta"]["next_cursor"]
        if not cursor:
            break
    assert len(found) == 7 and len({hit["id"] for hit in found}) == 7
    assert all(hit["conversation_id"] == conversation_id and hit["display_id"] == 1 for hit in found)
    assert found[0]["content"] == "invoice number 6 is late"
    assert_problem(client.get(admin.path("conversations/search"), headers=admin.headers), 422, field="q")
    assert_problem(
        client.get(admin.path("conversations/search"), params={"q": "  "}, headers=admin.headers),
        422,
        field="q",
    )


def test_unknown_conversation_is_404(client: httpx.Client, admin: Actor) -> None:
    for path in ("conversations/999999", "conversations/999999/messages", "conversations/999999/labels"):
        assert_problem(client.get(admin.path(path), headers=admin.headers), 404)
    assert_problem(client.get(admin.path("conversations/0"), headers=admin.headers), 422)
    assert_problem(client.get(admin.path("conversations/abc"), headers=admin.headers), 422)
