"""Teams: CRUD by administrators, members only from the team's account, and the service's member ids."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from tests.support import LiveServer, add_user, assert_problem, new_account
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.teams import service as teams


def test_admin_creates_reads_updates_and_deletes_a_team(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    created = client.post(
        admin.path("teams"),
        json={"name": "Billing", "description": "Invoices and refunds", "allow_auto_assign": False},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    team = created.json()
    assert team["name"] == "Billing" and team["allow_auto_assign"] is False
    assert team["account_id"] == admin.account_id
    assert client.get(admin.path(f"teams/{team['id']}"), headers=admin.headers).json() == team
    updated = client.patch(
        admin.path(f"teams/{team['id']}"), json={"name": "Billing & Refunds"}, headers=admin.headers
    ).json()
    assert updated["name"] == "Billing & Refunds" and updated["description"] == "Invoices and refunds"
    assert client.delete(admin.path(f"teams/{team['id']}"), headers=admin.headers).status_code == 204
    assert_problem(client.get(admin.path(f"teams/{team['id']}"), headers=admin.headers), 404)
    actions = [
        e["action"] for e in client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"]
    ]
    assert actions == ["team.deleted", "team.updated", "team.created"]


def test_team_names_are_unique_in_an_account_but_not_across(live: LiveServer, client: httpx.Client) -> None:
    first, second = new_account(live, client), new_account(live, client)
    assert (
        client.post(first.path("teams"), json={"name": "Support"}, headers=first.headers).status_code == 201
    )
    assert_problem(
        client.post(first.path("teams"), json={"name": "support"}, headers=first.headers), 409, field="name"
    )
    assert (
        client.post(second.path("teams"), json={"name": "Support"}, headers=second.headers).status_code == 201
    )
    other = client.post(first.path("teams"), json={"name": "Sales"}, headers=first.headers).json()
    assert_problem(
        client.patch(first.path(f"teams/{other['id']}"), json={"name": "Support"}, headers=first.headers),
        409,
        field="name",
    )


def test_team_bad_input_is_422_and_writes_nothing(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    json_headers = {**admin.headers, "content-type": "application/json"}
    for body, field in (
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 256}, "name"),
        ({"name": "Ok", "allow_auto_assign": "maybe"}, "allow_auto_assign"),
        ({"name": "Ok", "colour": "red"}, "colour"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "Ok", "description": "lone \ud800 surrogate"}, "description"),
    ):
        # json.dumps escapes lone surrogates as JSON allows; httpx's json= could not send them
        response = client.post(admin.path("teams"), content=json.dumps(body), headers=json_headers)
        assert_problem(response, 422, field=field)
    assert db_conn.execute(
        "SELECT count(*) FROM teams WHERE account_id = %s", (admin.account_id,)
    ).fetchone() == (0,)
    assert_problem(client.get(admin.path("teams/0"), headers=admin.headers), 422, field="team_id")
    assert_problem(client.get(admin.path("teams/abc"), headers=admin.headers), 422, field="team_id")


def test_agents_read_teams_but_cannot_change_them(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    team = client.post(admin.path("teams"), json={"name": "Ops"}, headers=admin.headers).json()
    assert [t["id"] for t in client.get(admin.path("teams"), headers=agent.headers).json()["data"]] == [
        team["id"]
    ]
    assert (
        client.get(admin.path(f"teams/{team['id']}/team_members"), headers=agent.headers).status_code == 200
    )
    assert_problem(client.post(admin.path("teams"), json={"name": "Mine"}, headers=agent.headers), 403)
    assert_problem(
        client.patch(admin.path(f"teams/{team['id']}"), json={"name": "X"}, headers=agent.headers), 403
    )
    assert_problem(client.delete(admin.path(f"teams/{team['id']}"), headers=agent.headers), 403)
    members = {"user_ids": [agent.user_id]}
    assert_problem(
        client.post(admin.path(f"teams/{team['id']}/team_members"), json=members, headers=agent.headers), 403
    )


def test_team_list_pages_with_a_cursor(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    ids = [
        client.post(admin.path("teams"), json={"name": f"T{i}"}, headers=admin.headers).json()["id"]
        for i in range(5)
    ]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(admin.path("teams"), params=params, headers=admin.headers).json()
        seen += [t["id"] for t in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ids


def test_members_are_added_listed_and_removed(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    alice, bob = add_user(live, client, admin.account_id), add_user(live, client, admin.account_id)
    team = client.post(admin.path("teams"), json={"name": "Tier 2"}, headers=admin.headers).json()
    members_path = admin.path(f"teams/{team['id']}/team_members")
    added = client.post(members_path, json={"user_ids": [alice.user_id, bob.user_id]}, headers=admin.headers)
    assert added.status_code == 200, added.text
    assert [m["id"] for m in added.json()["data"]] == [alice.user_id, bob.user_id]
    again = client.post(members_path, json={"user_ids": [alice.user_id]}, headers=admin.headers)
    assert again.status_code == 200 and len(again.json()["data"]) == 2  # adding twice is harmless
    listed = client.get(members_path, headers=admin.headers).json()["data"]
    assert [(m["id"], m["role"], m["availability"]) for m in listed] == [
        (alice.user_id, "agent", "offline"),
        (bob.user_id, "agent", "offline"),
    ]
    removed = client.request(
        "DELETE", members_path, json={"user_ids": [alice.user_id]}, headers=admin.headers
    )
    assert removed.status_code == 204
    assert [m["id"] for m in client.get(members_path, headers=admin.headers).json()["data"]] == [bob.user_id]
    log = client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"]
    assert [(e["action"], e["changes"]) for e in log[:2]] == [
        ("team.members_removed", {"user_ids": [alice.user_id]}),
        ("team.members_added", {"user_ids": [alice.user_id, bob.user_id]}),
    ]


def test_only_account_members_can_join_a_team_and_nothing_is_half_written(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    outsider = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    team = client.post(admin.path("teams"), json={"name": "Closed"}, headers=admin.headers).json()
    members_path = admin.path(f"teams/{team['id']}/team_members")
    body = assert_problem(
        client.post(
            members_path, json={"user_ids": [agent.user_id, outsider.user_id]}, headers=admin.headers
        ),
        422,
        field="user_ids",
    )
    assert str(outsider.user_id) in str(body["detail"])
    for bad in ({"user_ids": []}, {"user_ids": ["x"]}, {}, {"user_ids": [2**70]}):
        assert_problem(client.post(members_path, json=bad, headers=admin.headers), 422, field="user_ids")
    assert db_conn.execute(
        "SELECT count(*) FROM team_members WHERE team_id = %s", (team["id"],)
    ).fetchone() == (0,)


def test_team_member_ids_service_answers_the_members(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    alice, bob = add_user(live, client, admin.account_id), add_user(live, client, admin.account_id)
    team = client.post(admin.path("teams"), json={"name": "Service"}, headers=admin.headers).json()
    client.post(
        admin.path(f"teams/{team['id']}/team_members"),
        json={"user_ids": [bob.user_id, alice.user_id]},
        headers=admin.headers,
    )

    async def member_ids(context: AppContext) -> list[int]:
        async with transaction(context.sessionmaker) as session:
            return await teams.team_member_ids(session, team["id"])

    assert live.run(member_ids) == sorted([alice.user_id, bob.user_id])
