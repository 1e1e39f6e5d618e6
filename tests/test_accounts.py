"""Profile, presence, browser sessions with CSRF, account members ("agents"), the account, audit log."""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg

from tests.support import (
    PASSWORD,
    LiveServer,
    add_user,
    assert_problem,
    new_account,
    start_live_server,
    unique,
)

# --- profile and presence ------------------------------------------------------------------------


def test_profile_lists_accounts_with_role_and_availability(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id, role="agent")
    body = client.get("/api/v1/profile", headers=agent.headers).json()
    assert body["id"] == agent.user_id and body["email"] == agent.email and body["is_bot"] is False
    assert [(a["id"], a["role"], a["availability"]) for a in body["accounts"]] == [
        (admin.account_id, "agent", "offline")
    ]
    assert body["csrf_token"] is None  # bearer requests have no use for it


def test_profile_needs_a_credential(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v1/profile"), 401)
    assert_problem(client.get("/api/v1/profile", headers={"Authorization": "Basic abc"}), 401)
    assert_problem(client.get("/api/v1/profile", headers={"Authorization": "Bearer wws_nope"}), 401)


def test_availability_update_is_stored_and_published_as_presence_event(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    response = client.put(
        actor.path("profile/availability"), json={"availability": "busy"}, headers=actor.headers
    )
    assert response.status_code == 200, response.text
    assert response.json()["availability"] == "busy"
    row = db_conn.execute(
        "SELECT availability, availability_changed_at FROM account_users"
        " WHERE account_id = %s AND user_id = %s",
        (actor.account_id, actor.user_id),
    ).fetchone()
    assert row is not None and row[0] == "busy" and row[1] is not None
    events = db_conn.execute(
        "SELECT payload FROM events WHERE account_id = %s AND event_type = 'presence.updated'",
        (actor.account_id,),
    ).fetchall()
    assert [e[0] for e in events] == [{"user_id": actor.user_id, "availability": "busy"}]
    profile = client.get("/api/v1/profile", headers=actor.headers).json()
    assert profile["accounts"][0]["availability"] == "busy"


def test_availability_rejects_unknown_values_and_changes_nothing(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    for body in ({"availability": "away"}, {}, {"availability": "online", "extra": 1}):
        assert_problem(client.put(actor.path("profile/availability"), json=body, headers=actor.headers), 422)
    count = db_conn.execute(
        "SELECT count(*) FROM events WHERE account_id = %s", (actor.account_id,)
    ).fetchone()
    assert count == (0,)


def test_availability_in_another_account_is_404(live: LiveServer, client: httpx.Client) -> None:
    mine, theirs = new_account(live, client), new_account(live, client)
    response = client.put(
        theirs.path("profile/availability"), json={"availability": "online"}, headers=mine.headers
    )
    assert_problem(response, 404)


def test_logout_revokes_the_session_token(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    assert client.post("/api/v1/auth/logout", headers=actor.headers).status_code == 204
    body = assert_problem(client.get("/api/v1/profile", headers=actor.headers), 401)
    assert "revoked" in str(body["detail"])


# --- browser sessions and CSRF --------------------------------------------------------------------


def _browser_sign_in(client: httpx.Client, email: str, *, form: bool = False) -> httpx.Response:
    credentials = {"email": email, "password": PASSWORD}
    if form:
        return client.post("/auth/session", data=credentials)
    return client.post("/auth/session", json=credentials)


def test_browser_sign_in_sets_httponly_lax_cookie_and_answers_csrf_token(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    response = _browser_sign_in(client, actor.email)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == actor.user_id and body["csrf_token"]
    assert body["accounts"][0]["id"] == actor.account_id
    cookie = response.headers["set-cookie"]
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert cookie.startswith("whatwut_session=wws_")
    assert "httponly" in attributes and "samesite=lax" in attributes and "path=/" in attributes
    assert "secure" not in attributes
    stored = db_conn.execute(
        "SELECT csrf_token FROM access_tokens WHERE user_id = %s AND kind = 'session'"
        " ORDER BY id DESC LIMIT 1",
        (actor.user_id,),
    ).fetchone()
    assert stored == (body["csrf_token"],)
    profile = client.get("/api/v1/profile").json()  # the cookie alone signs in safe requests
    assert profile["id"] == actor.user_id and profile["csrf_token"] == body["csrf_token"]


def test_browser_sign_in_accepts_a_form_post(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    response = _browser_sign_in(client, actor.email, form=True)
    assert response.status_code == 200, response.text
    assert client.cookies.get("whatwut_session", "").startswith("wws_")


def test_browser_sign_in_bad_input_is_problem_and_sets_no_cookie(
    live: LiveServer, client: httpx.Client
) -> None:
    actor = new_account(live, client)
    wrong = client.post("/auth/session", json={"email": actor.email, "password": "wrong-password"})
    assert_problem(wrong, 401)
    assert "set-cookie" not in wrong.headers
    assert_problem(client.post("/auth/session", data={"email": "nope", "password": "x"}), 422, field="email")
    assert_problem(
        client.post("/auth/session", content=b"{oops", headers={"content-type": "application/json"}), 422
    )
    assert_problem(
        client.post("/auth/session", json={"email": actor.email, "password": PASSWORD, "remember": 1}),
        422,
        field="remember",
    )
    surrogate = json.dumps({"email": actor.email, "password": "\ud800"})  # JSON may escape one
    for path in ("/auth/session", "/api/v1/auth/login"):
        response = client.post(path, content=surrogate, headers={"content-type": "application/json"})
        assert_problem(response, 422, field="password")
    assert not client.cookies


def test_browser_sign_in_from_another_site_is_refused(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    response = client.post(
        "/auth/session",
        data={"email": actor.email, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert_problem(response, 403, field="origin")
    assert not client.cookies


def test_cookie_request_needs_the_csrf_header_for_unsafe_methods(
    live: LiveServer, client: httpx.Client
) -> None:
    actor = new_account(live, client)
    csrf = _browser_sign_in(client, actor.email).json()["csrf_token"]
    path = actor.path("profile/availability")
    body = assert_problem(client.put(path, json={"availability": "online"}), 403)
    assert "CSRF" in str(body["detail"])
    assert_problem(client.put(path, json={"availability": "online"}, headers={"X-CSRF-Token": "wrong"}), 403)
    response = client.put(path, json={"availability": "online"}, headers={"X-CSRF-Token": csrf})
    assert response.status_code == 200, response.text
    assert response.json()["availability"] == "online"


def test_bearer_requests_need_no_csrf_header(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    response = client.put(
        actor.path("profile/availability"), json={"availability": "busy"}, headers=actor.headers
    )
    assert response.status_code == 200, response.text


def test_browser_sign_out_revokes_the_session_and_clears_the_cookie(
    live: LiveServer, client: httpx.Client
) -> None:
    actor = new_account(live, client)
    csrf = _browser_sign_in(client, actor.email).json()["csrf_token"]
    raw_cookie = client.cookies["whatwut_session"]
    assert_problem(client.delete("/auth/session"), 403)  # sign-out is CSRF-protected too
    response = client.delete("/auth/session", headers={"X-CSRF-Token": csrf})
    assert response.status_code == 204
    assert "whatwut_session=" in response.headers["set-cookie"] and "max-age=0" in response.headers[
        "set-cookie"
    ].lower().replace(" ", "")
    with httpx.Client(base_url=str(client.base_url), cookies={"whatwut_session": raw_cookie}) as replay:
        assert "revoked" in str(assert_problem(replay.get("/api/v1/profile"), 401)["detail"])


def test_cookie_is_secure_when_settings_say_so(database_url: str, live: LiveServer, tmp_path: Any) -> None:
    with (
        start_live_server(database_url, tmp_path, WHATWUT_COOKIE_SECURE="true") as secure_server,
        httpx.Client(base_url=secure_server.url) as http,
    ):
        actor = new_account(secure_server, http)
        response = _browser_sign_in(http, actor.email)
    assert response.status_code == 200
    assert "secure" in [part.strip().lower() for part in response.headers["set-cookie"].split(";")]


# --- account members ("agents") -------------------------------------------------------------------


def test_members_list_shows_role_and_availability_to_every_member(
    live: LiveServer, client: httpx.Client
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    for who in (admin, agent):
        response = client.get(admin.path("agents"), headers=who.headers)
        assert response.status_code == 200, response.text
        rows = {row["id"]: (row["role"], row["availability"]) for row in response.json()["data"]}
        assert rows == {admin.user_id: ("administrator", "offline"), agent.user_id: ("agent", "offline")}


def test_members_list_pages_with_a_cursor(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    for _ in range(3):
        client.post(
            admin.path("agents"),
            json={"email": f"{unique('p')}@example.com", "name": "Paged"},
            headers=admin.headers,
        )
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = client.get(admin.path("agents"), params=params, headers=admin.headers).json()
        seen += [row["id"] for row in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 4 and seen == sorted(seen)
    assert_problem(
        client.get(admin.path("agents"), params={"cursor": "garbage!"}, headers=admin.headers), 422
    )


def test_admin_adds_an_agent_with_a_generated_password_shown_once(
    live: LiveServer, client: httpx.Client
) -> None:
    admin = new_account(live, client)
    email = f"{unique('new')}@example.com"
    response = client.post(
        admin.path("agents"),
        json={"email": email, "name": "New Agent", "role": "agent"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["role"] == "agent" and body["email"] == email and len(body["password"]) >= 12
    login = client.post("/api/v1/auth/login", json={"email": email, "password": body["password"]})
    assert login.status_code == 200
    assert login.json()["accounts"] == [
        {"id": admin.account_id, "name": login.json()["accounts"][0]["name"], "role": "agent"}
    ]
    listed = client.get(admin.path("agents"), headers=admin.headers).json()["data"]
    assert all("password" not in row for row in listed)


def test_admin_adds_an_agent_with_a_chosen_password(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    email = f"{unique('chosen')}@example.com"
    response = client.post(
        admin.path("agents"),
        json={"email": email, "name": "Chosen", "role": "administrator", "password": "a-fine-password"},
        headers=admin.headers,
    )
    assert response.status_code == 201 and response.json()["password"] is None
    assert (
        client.post("/api/v1/auth/login", json={"email": email, "password": "a-fine-password"}).status_code
        == 200
    )


def test_adding_an_existing_user_joins_them_without_touching_their_password(
    live: LiveServer, client: httpx.Client
) -> None:
    first, second = new_account(live, client), new_account(live, client)
    response = client.post(
        second.path("agents"), json={"email": first.email, "name": "Whoever"}, headers=second.headers
    )
    assert response.status_code == 201 and response.json()["password"] is None
    again = client.post(
        second.path("agents"), json={"email": first.email, "name": "x"}, headers=second.headers
    )
    assert_problem(again, 409, field="email")
    login = client.post("/api/v1/auth/login", json={"email": first.email, "password": PASSWORD}).json()
    assert {a["id"] for a in login["accounts"]} == {first.account_id, second.account_id}
    third = new_account(live, client)
    takeover = client.post(
        third.path("agents"),
        json={"email": first.email, "name": "x", "password": "attacker-chosen"},
        headers=third.headers,
    )
    assert_problem(takeover, 409, field="password")


def test_adding_an_agent_with_bad_input_writes_nothing(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    bad_bodies = [
        ({"email": "not-an-email", "name": "X"}, "email"),
        ({"email": "ok@example.com", "name": "X", "role": "owner"}, "role"),
        ({"email": "ok@example.com", "name": "X", "password": "short"}, "password"),
        ({"email": "ok@example.com", "name": ""}, "name"),
        ({"email": "ok@example.com", "name": "X", "admin": True}, "admin"),
        ({"email": "ok@example.com", "name": "nul\u0000"}, "name"),
        ({"email": "ok@example.com", "name": "X", "password": "\ud800-long-password"}, "password"),
    ]
    json_headers = {**admin.headers, "content-type": "application/json"}
    for body, field in bad_bodies:
        response = client.post(admin.path("agents"), content=json.dumps(body), headers=json_headers)
        assert_problem(response, 422, field=field)
    assert db_conn.execute("SELECT count(*) FROM users WHERE email = 'ok@example.com'").fetchone() == (0,)


def test_agents_cannot_manage_members(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    assert_problem(
        client.post(
            admin.path("agents"), json={"email": "z@example.com", "name": "Z"}, headers=agent.headers
        ),
        403,
    )
    assert_problem(
        client.patch(admin.path(f"agents/{admin.user_id}"), json={"role": "agent"}, headers=agent.headers),
        403,
    )
    assert_problem(client.delete(admin.path(f"agents/{admin.user_id}"), headers=agent.headers), 403)


def test_role_change_is_applied_and_audited(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    response = client.patch(
        admin.path(f"agents/{agent.user_id}"), json={"role": "administrator"}, headers=admin.headers
    )
    assert response.status_code == 200 and response.json()["role"] == "administrator"
    # the promoted agent can now reach admin routes
    assert client.get(admin.path("audit_logs"), headers=agent.headers).status_code == 200
    logs = client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"]
    assert logs[0]["action"] == "agent.role_changed" and logs[0]["subject_id"] == agent.user_id
    assert logs[0]["actor_user_id"] == admin.user_id and logs[0]["changes"] == {
        "role": ["agent", "administrator"]
    }
    assert logs[0]["ip_address"] == "127.0.0.1", "the row names where the change came from"
    assert_problem(
        client.patch(admin.path(f"agents/{agent.user_id}"), json={"role": "boss"}, headers=admin.headers),
        422,
        field="role",
    )


def test_the_last_administrator_cannot_be_demoted_or_removed(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    body = assert_problem(
        client.patch(admin.path(f"agents/{admin.user_id}"), json={"role": "agent"}, headers=admin.headers),
        409,
    )
    assert "administrator" in str(body["detail"])
    assert_problem(client.delete(admin.path(f"agents/{admin.user_id}"), headers=admin.headers), 409)
    # an administrator API key does not count: it cannot sign in to fix things
    key = client.post(
        admin.path("api_keys"), json={"name": "ops", "role": "administrator"}, headers=admin.headers
    )
    assert key.status_code == 201
    assert_problem(client.delete(admin.path(f"agents/{admin.user_id}"), headers=admin.headers), 409)
    me = client.get(admin.path("agents"), headers=admin.headers).json()["data"]
    assert [(row["id"], row["role"]) for row in me] == [(admin.user_id, "administrator")]


def test_removing_an_agent_ends_their_access_and_team_and_inbox_membership(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    team = client.post(admin.path("teams"), json={"name": "Sales"}, headers=admin.headers).json()
    client.post(
        admin.path(f"teams/{team['id']}/team_members"),
        json={"user_ids": [agent.user_id]},
        headers=admin.headers,
    )
    inbox = client.post(
        admin.path("inboxes"), json={"name": "Web", "channel": {"type": "api"}}, headers=admin.headers
    ).json()
    members_path = admin.path(f"inboxes/{inbox['id']}/members")
    members = client.post(members_path, json={"user_ids": [agent.user_id]}, headers=admin.headers)
    assert members.status_code in (200, 201), members.text
    assert client.delete(admin.path(f"agents/{agent.user_id}"), headers=admin.headers).status_code == 204
    assert_problem(client.get(admin.path("agents"), headers=agent.headers), 404)
    assert db_conn.execute(
        "SELECT count(*) FROM team_members WHERE user_id = %s", (agent.user_id,)
    ).fetchone() == (0,)
    assert db_conn.execute(
        "SELECT count(*) FROM inbox_members WHERE user_id = %s", (agent.user_id,)
    ).fetchone() == (0,)
    assert db_conn.execute("SELECT count(*) FROM users WHERE id = %s", (agent.user_id,)).fetchone() == (1,)
    assert_problem(client.delete(admin.path(f"agents/{agent.user_id}"), headers=admin.headers), 404)
    actions = [
        row["action"] for row in client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"]
    ]
    assert actions[0] == "agent.removed"


# --- the account -------------------------------------------------------------------------------


def test_account_settings_are_readable_by_members_and_changed_by_admins(
    live: LiveServer, client: httpx.Client
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    account = client.get(f"/api/v1/accounts/{admin.account_id}", headers=agent.headers).json()
    assert account["id"] == admin.account_id and account["locale"] == "en"
    new_name = unique("Renamed")
    response = client.patch(
        f"/api/v1/accounts/{admin.account_id}",
        json={"name": new_name, "locale": "pt_BR"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == new_name and response.json()["locale"] == "pt_BR"
    assert_problem(
        client.patch(f"/api/v1/accounts/{admin.account_id}", json={"locale": "fr"}, headers=agent.headers),
        403,
    )
    log = client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"][0]
    assert log["action"] == "account.updated" and log["changes"]["locale"] == ["en", "pt_BR"]


def test_account_update_rejects_bad_locale_and_taken_name(live: LiveServer, client: httpx.Client) -> None:
    admin, other = new_account(live, client), new_account(live, client)
    path = f"/api/v1/accounts/{admin.account_id}"
    assert_problem(
        client.patch(path, json={"locale": "english please"}, headers=admin.headers), 422, field="locale"
    )
    assert_problem(client.patch(path, json={"name": ""}, headers=admin.headers), 422, field="name")
    other_name = client.get(f"/api/v1/accounts/{other.account_id}", headers=other.headers).json()["name"]
    assert_problem(client.patch(path, json={"name": other_name}, headers=admin.headers), 409, field="name")
    assert client.get(path, headers=admin.headers).json()["locale"] == "en"


# --- audit log -------------------------------------------------------------------------------


def test_audit_rows_record_the_client_behind_a_trusted_proxy(live: LiveServer, client: httpx.Client) -> None:
    """Behind a reverse proxy on 127.0.0.1, the row names the customer-facing address, not the proxy."""
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    proxied = {**admin.headers, "X-Forwarded-For": "203.0.113.9"}
    response = client.patch(
        admin.path(f"agents/{agent.user_id}"), json={"role": "administrator"}, headers=proxied
    )
    assert response.status_code == 200
    log = client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"][0]
    assert log["action"] == "agent.role_changed"
    assert log["ip_address"] == "203.0.113.9"


def test_audit_log_is_newest_first_with_cursor_pages_and_admin_only(
    live: LiveServer, client: httpx.Client
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    for index in range(5):
        created = client.post(admin.path("teams"), json={"name": f"Team {index}"}, headers=admin.headers)
        assert created.status_code == 201
    pages: list[list[dict[str, Any]]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        body = client.get(admin.path("audit_logs"), params=params, headers=admin.headers).json()
        pages.append(body["data"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    entries = [entry for page in pages for entry in page]
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [entry["changes"]["name"] for entry in entries] == [f"Team {i}" for i in range(4, -1, -1)]
    assert all(
        entry["action"] == "team.created" and entry["actor_user_id"] == admin.user_id for entry in entries
    )
    filtered = client.get(
        admin.path("audit_logs"), params={"action": "nothing.like.this"}, headers=admin.headers
    )
    assert filtered.json() == {"data": [], "meta": {"next_cursor": None}}
    assert_problem(client.get(admin.path("audit_logs"), headers=agent.headers), 403)
    assert_problem(
        client.get(admin.path("audit_logs"), params={"limit": 0}, headers=admin.headers), 422, field="limit"
    )
    assert_problem(
        client.get(admin.path("audit_logs"), params={"cursor": "WyJ4Il0"}, headers=admin.headers),
        422,
        field="cursor",
    )
