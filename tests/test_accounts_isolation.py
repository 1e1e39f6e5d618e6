"""Account isolation for people and access: another account's teams, members, API keys and audit
log are 404 (never 403) from this account's users, and agents get 403 on every admin route."""

from __future__ import annotations

import httpx
import pytest

from tests.support import Actor, LiveServer, add_user, assert_problem, new_account


@pytest.fixture
def accounts(live: LiveServer, client: httpx.Client) -> tuple[Actor, Actor, dict[str, int]]:
    """Account A's admin, account B's admin, and ids of B's resources."""
    a, b = new_account(live, client), new_account(live, client)
    b_agent = add_user(live, client, b.account_id)
    team = client.post(b.path("teams"), json={"name": "B team"}, headers=b.headers).json()
    key = client.post(b.path("api_keys"), json={"name": "B key"}, headers=b.headers).json()
    return a, b, {"team": team["id"], "agent": b_agent.user_id, "key": key["id"]}


def test_another_accounts_resources_are_404_under_its_own_path(
    client: httpx.Client, accounts: tuple[Actor, Actor, dict[str, int]]
) -> None:
    a, b, ids = accounts
    team, agent, key = ids["team"], ids["agent"], ids["key"]
    requests = [
        ("GET", f"/api/v1/accounts/{b.account_id}", None),
        ("PATCH", f"/api/v1/accounts/{b.account_id}", {"name": "hijacked"}),
        ("GET", b.path("teams"), None),
        ("GET", b.path(f"teams/{team}"), None),
        ("PATCH", b.path(f"teams/{team}"), {"name": "x"}),
        ("DELETE", b.path(f"teams/{team}"), None),
        ("GET", b.path(f"teams/{team}/team_members"), None),
        ("POST", b.path(f"teams/{team}/team_members"), {"user_ids": [a.user_id]}),
        ("GET", b.path("agents"), None),
        ("POST", b.path("agents"), {"email": "sneak@example.com", "name": "Sneak"}),
        ("PATCH", b.path(f"agents/{agent}"), {"role": "administrator"}),
        ("DELETE", b.path(f"agents/{agent}"), None),
        ("GET", b.path("api_keys"), None),
        ("POST", b.path("api_keys"), {"name": "sneaky"}),
        ("DELETE", b.path(f"api_keys/{key}"), None),
        ("GET", b.path("audit_logs"), None),
        ("PUT", b.path("profile/availability"), {"availability": "online"}),
    ]
    for method, path, body in requests:
        response = client.request(method, path, json=body, headers=a.headers)
        problem = assert_problem(response, 404)
        assert problem["detail"] == "account not found", (method, path)


def test_another_accounts_ids_are_404_under_my_own_path(
    client: httpx.Client, accounts: tuple[Actor, Actor, dict[str, int]]
) -> None:
    a, _b, ids = accounts
    team, agent, key = ids["team"], ids["agent"], ids["key"]
    assert_problem(client.get(a.path(f"teams/{team}"), headers=a.headers), 404)
    assert_problem(client.patch(a.path(f"teams/{team}"), json={"name": "x"}, headers=a.headers), 404)
    assert_problem(client.delete(a.path(f"teams/{team}"), headers=a.headers), 404)
    assert_problem(client.get(a.path(f"teams/{team}/team_members"), headers=a.headers), 404)
    assert_problem(client.patch(a.path(f"agents/{agent}"), json={"role": "agent"}, headers=a.headers), 404)
    assert_problem(client.delete(a.path(f"agents/{agent}"), headers=a.headers), 404)
    assert_problem(client.delete(a.path(f"api_keys/{key}"), headers=a.headers), 404)
    # and B's people cannot be put in A's teams
    my_team = client.post(a.path("teams"), json={"name": "A team"}, headers=a.headers).json()
    assert_problem(
        client.post(
            a.path(f"teams/{my_team['id']}/team_members"), json={"user_ids": [agent]}, headers=a.headers
        ),
        422,
        field="user_ids",
    )


def test_lists_show_only_this_accounts_rows(
    client: httpx.Client, accounts: tuple[Actor, Actor, dict[str, int]]
) -> None:
    a, b, ids = accounts
    assert client.get(a.path("teams"), headers=a.headers).json()["data"] == []
    assert client.get(a.path("api_keys"), headers=a.headers).json()["data"] == []
    assert [m["id"] for m in client.get(a.path("agents"), headers=a.headers).json()["data"]] == [a.user_id]
    assert client.get(a.path("audit_logs"), headers=a.headers).json()["data"] == []
    b_log = client.get(b.path("audit_logs"), headers=b.headers).json()["data"]
    assert {e["action"] for e in b_log} == {"team.created", "api_key.created"}
    # B's work is untouched by A's attempts
    assert client.get(b.path(f"teams/{ids['team']}"), headers=b.headers).json()["name"] == "B team"


def test_agents_get_403_on_every_admin_route(
    live: LiveServer, client: httpx.Client, accounts: tuple[Actor, Actor, dict[str, int]]
) -> None:
    _a, b, ids = accounts
    agent = add_user(live, client, b.account_id)
    team, key = ids["team"], ids["key"]
    requests = [
        ("PATCH", f"/api/v1/accounts/{b.account_id}", {"name": "mine now"}),
        ("POST", b.path("teams"), {"name": "x"}),
        ("PATCH", b.path(f"teams/{team}"), {"name": "x"}),
        ("DELETE", b.path(f"teams/{team}"), None),
        ("POST", b.path(f"teams/{team}/team_members"), {"user_ids": [agent.user_id]}),
        ("DELETE", b.path(f"teams/{team}/team_members"), {"user_ids": [agent.user_id]}),
        ("POST", b.path("agents"), {"email": "new@example.com", "name": "New"}),
        ("PATCH", b.path(f"agents/{agent.user_id}"), {"role": "administrator"}),
        ("DELETE", b.path(f"agents/{ids['agent']}"), None),
        ("GET", b.path("api_keys"), None),
        ("POST", b.path("api_keys"), {"name": "x"}),
        ("DELETE", b.path(f"api_keys/{key}"), None),
        ("GET", b.path("audit_logs"), None),
    ]
    for method, path, body in requests:
        assert_problem(client.request(method, path, json=body, headers=agent.headers), 403)
