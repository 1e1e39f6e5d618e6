"""Assignment: round robin among online inbox members, the open limit, and manual assignment rules."""

from __future__ import annotations

import concurrent.futures
from collections import Counter

import httpx
import pytest

from tests.conversation_support import (
    Db,
    activities,
    count,
    make_contact,
    make_contact_inbox,
    make_inbox,
    receive,
    set_availability,
    set_members,
    start_conversation,
)
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


def _agents(live: LiveServer, client: httpx.Client, admin: Actor, db: Db, n: int) -> list[Actor]:
    agents = [add_user(live, client, admin.account_id) for _ in range(n)]
    for agent in agents:
        set_availability(db, admin.account_id, agent.user_id, "online")
    return sorted(agents, key=lambda a: a.user_id)


def _new_customer_writes(live: LiveServer, admin: Actor, db: Db, inbox: int) -> int:
    contact = make_contact(db, admin.account_id)
    receive(live, admin.account_id, inbox, make_contact_inbox(db, admin.account_id, contact, inbox), "help")
    row = db.execute("SELECT id FROM conversations WHERE contact_id = %s", (contact,)).fetchone()
    assert row is not None
    return int(row[0])


def _assignee(db: Db, conversation_id: int) -> int | None:
    row = db.execute("SELECT assignee_id FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    assert row is not None
    return None if row[0] is None else int(row[0])


def test_new_conversations_go_round_robin(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 3)
    inbox = make_inbox(client, admin)
    set_members(client, admin, inbox, [a.user_id for a in agents])
    chosen = [_assignee(db_conn, _new_customer_writes(live, admin, db_conn, inbox)) for _ in range(4)]
    ids = [a.user_id for a in agents]
    assert chosen == [ids[0], ids[1], ids[2], ids[0]]
    conversation = _new_customer_writes(live, admin, db_conn, inbox)
    assert activities(client, admin, conversation) == ["Assigned to Agent by auto-assignment"]
    assert (
        count(
            db_conn,
            "SELECT count(*) FROM events WHERE event_type = 'assignee.changed' AND account_id = %s",
            admin.account_id,
        )
        == 5
    )


def test_offline_and_busy_agents_are_skipped(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 3)
    set_availability(db_conn, admin.account_id, agents[1].user_id, "offline")
    set_availability(db_conn, admin.account_id, agents[2].user_id, "busy")
    inbox = make_inbox(client, admin)
    set_members(client, admin, inbox, [a.user_id for a in agents])
    chosen = {_assignee(db_conn, _new_customer_writes(live, admin, db_conn, inbox)) for _ in range(3)}
    assert chosen == {agents[0].user_id}


def test_nobody_online_leaves_it_unassigned(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 1)
    set_availability(db_conn, admin.account_id, agents[0].user_id, "offline")
    inbox = make_inbox(client, admin)
    set_members(client, admin, inbox, [agents[0].user_id])
    conversation = _new_customer_writes(live, admin, db_conn, inbox)
    assert _assignee(db_conn, conversation) is None
    assert activities(client, admin, conversation) == []


def test_online_non_members_are_never_chosen(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    _agents(live, client, admin, db_conn, 2)  # online, but not in the inbox
    inbox = make_inbox(client, admin)
    assert _assignee(db_conn, _new_customer_writes(live, admin, db_conn, inbox)) is None


def test_disabled_auto_assignment_assigns_nobody(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 1)
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    set_members(client, admin, inbox, [agents[0].user_id])
    assert _assignee(db_conn, _new_customer_writes(live, admin, db_conn, inbox)) is None


def test_max_open_per_agent_is_respected(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 2)
    inbox = make_inbox(client, admin, max_open_per_agent=1)
    set_members(client, admin, inbox, [a.user_id for a in agents])
    first, second, third = (_new_customer_writes(live, admin, db_conn, inbox) for _ in range(3))
    assert {_assignee(db_conn, first), _assignee(db_conn, second)} == {a.user_id for a in agents}
    assert _assignee(db_conn, third) is None
    client.post(
        admin.path(f"conversations/{first}/toggle_status"), json={"status": "resolved"}, headers=admin.headers
    )
    fourth = _new_customer_writes(live, admin, db_conn, inbox)
    assert _assignee(db_conn, fourth) == _assignee(db_conn, first)


def test_concurrent_creates_share_the_work_evenly(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    agents = _agents(live, client, admin, db_conn, 3)
    inbox = make_inbox(client, admin)
    set_members(client, admin, inbox, [a.user_id for a in agents])
    contact = make_contact(db_conn, admin.account_id)

    def create(_: int) -> int | None:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            body = {"inbox_id": inbox, "contact_id": contact}
            response = http.post(admin.path("conversations"), json=body, headers=admin.headers)
            assert response.status_code == 201, response.text
            assignee = response.json()["assignee"]
            return None if assignee is None else int(assignee["id"])

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        chosen = Counter(pool.map(create, range(9)))
    assert chosen == {a.user_id: 3 for a in agents}


def test_manual_assignment_rules_and_activity(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    member = add_user(live, client, admin.account_id)
    outsider = add_user(live, client, admin.account_id)  # in the account, not in the inbox
    stranger = new_account(live, client)  # another account entirely
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    set_members(client, admin, inbox, [member.user_id])
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/assignments")

    for bad in (outsider.user_id, stranger.user_id, 999_999):
        assert_problem(
            client.post(path, json={"assignee_id": bad}, headers=admin.headers), 422, field="assignee_id"
        )
    assert_problem(client.post(path, json={}, headers=admin.headers), 422, field="assignee_id")
    assert_problem(
        client.post(path, json={"assignee_id": "me"}, headers=admin.headers), 422, field="assignee_id"
    )

    assigned = client.post(path, json={"assignee_id": member.user_id}, headers=admin.headers)
    assert assigned.status_code == 200, assigned.text
    assert assigned.json()["assignee"] == {"id": member.user_id, "name": "Agent"}
    # The agent takes it themselves, then an admin (who sees every inbox) takes it, then unassigns.
    own = client.post(
        member.path(f"conversations/{conversation['id']}/assignments"),
        json={"assignee_id": member.user_id},
        headers=member.headers,
    )
    assert own.status_code == 200
    client.post(path, json={"assignee_id": admin.user_id}, headers=admin.headers)
    unassigned = client.post(path, json={"assignee_id": None}, headers=admin.headers)
    assert unassigned.json()["assignee"] is None
    assert activities(client, admin, conversation["id"]) == [
        "Assigned to Agent by Test User",
        "Test User self-assigned this conversation",
        "Conversation unassigned by Test User",
    ]
    assert_problem(
        client.post(
            outsider.path(f"conversations/{conversation['id']}/assignments"),
            json={"assignee_id": outsider.user_id},
            headers=outsider.headers,
        ),
        404,
    )


def test_assignment_can_set_the_team(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    team = client.post(admin.path("teams"), json={"name": "Billing"}, headers=admin.headers).json()
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/assignments")
    response = client.post(path, json={"team_id": team["id"]}, headers=admin.headers)
    assert response.status_code == 200 and response.json()["team_id"] == team["id"]
    assert response.json()["assignee"] is None
    other = new_account(live, client)
    foreign_team = client.post(other.path("teams"), json={"name": "Theirs"}, headers=other.headers).json()
    assert_problem(
        client.post(path, json={"team_id": foreign_team["id"]}, headers=admin.headers), 422, field="team_id"
    )
