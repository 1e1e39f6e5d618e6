"""Personal access tokens and account API keys: shown once, stored hashed, revocable, expiring."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg

from tests.support import LiveServer, add_user, assert_problem, new_account

TOKENS = "/api/v1/profile/access_tokens"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- personal access tokens ------------------------------------------------------------------------


def test_personal_token_is_shown_once_and_stored_only_hashed(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    response = client.post(TOKENS, json={"name": "laptop script"}, headers=actor.headers)
    assert response.status_code == 201, response.text
    created = response.json()
    raw = created["token"]
    assert raw.startswith("wwp_") and created["prefix"] == raw[:8] and created["expires_at"] is None
    stored = db_conn.execute(
        "SELECT token_hash, prefix, kind, account_id FROM access_tokens WHERE id = %s", (created["id"],)
    ).fetchone()
    assert stored == (hashlib.sha256(raw.encode()).hexdigest(), raw[:8], "personal", None)
    found = db_conn.execute(
        "SELECT count(*) FROM access_tokens WHERE token_hash = %s OR name = %s", (raw, raw)
    ).fetchone()
    assert found == (0,)
    listed = client.get(TOKENS, headers=actor.headers).json()["data"]
    assert [(t["id"], t["name"], t["prefix"]) for t in listed] == [(created["id"], "laptop script", raw[:8])]
    assert "token" not in listed[0] and listed[0]["revoked_at"] is None and listed[0]["created_at"]


def test_personal_token_works_as_bearer_and_records_last_use(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    raw = client.post(TOKENS, json={"name": "ci"}, headers=actor.headers).json()["token"]
    assert client.get(TOKENS, headers=actor.headers).json()["data"][0]["last_used_at"] is None
    profile = client.get("/api/v1/profile", headers=_bearer(raw))
    assert profile.status_code == 200 and profile.json()["id"] == actor.user_id
    assert client.get(actor.path("agents"), headers=_bearer(raw)).status_code == 200
    assert client.get(TOKENS, headers=actor.headers).json()["data"][0]["last_used_at"] is not None


def test_personal_token_list_is_newest_first_in_pages(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    for index in range(3):
        client.post(TOKENS, json={"name": f"t{index}"}, headers=actor.headers)
    first = client.get(TOKENS, params={"limit": 2}, headers=actor.headers).json()
    second = client.get(
        TOKENS, params={"limit": 2, "cursor": first["meta"]["next_cursor"]}, headers=actor.headers
    ).json()
    assert [t["name"] for t in first["data"] + second["data"]] == ["t2", "t1", "t0"]
    assert second["meta"]["next_cursor"] is None


def test_revoked_personal_token_is_401_with_a_clear_detail(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    created = client.post(TOKENS, json={"name": "old"}, headers=actor.headers).json()
    assert client.delete(f"{TOKENS}/{created['id']}", headers=actor.headers).status_code == 204
    body = assert_problem(client.get("/api/v1/profile", headers=_bearer(created["token"])), 401)
    assert "revoked" in str(body["detail"])
    listed = client.get(TOKENS, headers=actor.headers).json()["data"]
    assert listed[0]["revoked_at"] is not None
    assert client.delete(f"{TOKENS}/{created['id']}", headers=actor.headers).status_code == 204  # idempotent


def test_expired_personal_token_is_401_with_a_clear_detail(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    created = client.post(
        TOKENS, json={"name": "short-lived", "expires_in_days": 7}, headers=actor.headers
    ).json()
    expires_at = datetime.fromisoformat(created["expires_at"])
    assert abs(expires_at - (datetime.now(UTC) + timedelta(days=7))) < timedelta(minutes=5)
    assert client.get("/api/v1/profile", headers=_bearer(created["token"])).status_code == 200
    db_conn.execute(
        "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE id = %s", (created["id"],)
    )
    body = assert_problem(client.get("/api/v1/profile", headers=_bearer(created["token"])), 401)
    assert "expired" in str(body["detail"])


def test_personal_token_bad_input_is_422_and_writes_nothing(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    actor = new_account(live, client)
    bad = [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "x", "expires_in_days": "soon"}, "expires_in_days"),
        ({"name": "x", "scopes": ["all"]}, "scopes"),
    ]
    for body, field in bad:
        assert_problem(client.post(TOKENS, json=body, headers=actor.headers), 422, field=field)
    count = db_conn.execute(
        "SELECT count(*) FROM access_tokens WHERE user_id = %s AND kind = 'personal'", (actor.user_id,)
    ).fetchone()
    assert count == (0,)


def test_a_token_cannot_mint_more_tokens(live: LiveServer, client: httpx.Client) -> None:
    actor = new_account(live, client)
    raw = client.post(TOKENS, json={"name": "ci"}, headers=actor.headers).json()["token"]
    assert_problem(client.post(TOKENS, json={"name": "child"}, headers=_bearer(raw)), 403)
    assert_problem(client.post("/api/v1/auth/logout", headers=_bearer(raw)), 403)


def test_someone_elses_personal_token_cannot_be_revoked(live: LiveServer, client: httpx.Client) -> None:
    owner, stranger = new_account(live, client), new_account(live, client)
    created = client.post(TOKENS, json={"name": "mine"}, headers=owner.headers).json()
    assert_problem(client.delete(f"{TOKENS}/{created['id']}", headers=stranger.headers), 404)
    assert client.get("/api/v1/profile", headers=_bearer(created["token"])).status_code == 200
    assert client.get(TOKENS, headers=stranger.headers).json()["data"] == []


# --- account API keys ------------------------------------------------------------------------------


def test_api_key_acts_as_a_bot_member_of_its_account(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    response = client.post(admin.path("api_keys"), json={"name": "CRM sync"}, headers=admin.headers)
    assert response.status_code == 201, response.text
    key = response.json()
    assert (
        key["token"].startswith("wwk_") and key["role"] == "agent" and key["created_by_id"] == admin.user_id
    )
    bot = db_conn.execute(
        "SELECT u.is_bot, u.name, u.password_hash, m.role FROM users u"
        " JOIN account_users m ON m.user_id = u.id AND m.account_id = %s WHERE u.id = %s",
        (admin.account_id, key["user_id"]),
    ).fetchone()
    assert bot == (True, "CRM sync", None, "agent")
    token_row = db_conn.execute(
        "SELECT account_id, token_hash FROM access_tokens WHERE id = %s", (key["id"],)
    ).fetchone()
    assert token_row == (admin.account_id, hashlib.sha256(key["token"].encode()).hexdigest())
    profile = client.get("/api/v1/profile", headers=_bearer(key["token"])).json()
    assert profile["is_bot"] is True and [a["id"] for a in profile["accounts"]] == [admin.account_id]
    assert client.get(admin.path("teams"), headers=_bearer(key["token"])).status_code == 200
    # an agent-role key is not an administrator
    assert_problem(client.get(admin.path("api_keys"), headers=_bearer(key["token"])), 403)
    # bots are not listed among the people of the account
    assert [a["id"] for a in client.get(admin.path("agents"), headers=admin.headers).json()["data"]] == [
        admin.user_id
    ]
    listed = client.get(admin.path("api_keys"), headers=admin.headers).json()["data"]
    assert [(k["id"], k["prefix"], k["role"]) for k in listed] == [(key["id"], key["token"][:8], "agent")]
    assert "token" not in listed[0]


def test_administrator_api_key_can_use_admin_routes(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    key = client.post(
        admin.path("api_keys"), json={"name": "provisioner", "role": "administrator"}, headers=admin.headers
    ).json()
    response = client.post(admin.path("teams"), json={"name": "Made by a bot"}, headers=_bearer(key["token"]))
    assert response.status_code == 201
    log = client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"][0]
    assert log["action"] == "team.created" and log["actor_user_id"] == key["user_id"]


def test_api_key_is_scoped_to_its_account(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    other = new_account(live, client)
    # even if its creator also administers another account, the key reaches only its own
    client.post(other.path("agents"), json={"email": admin.email, "name": "Admin"}, headers=other.headers)
    client.patch(other.path(f"agents/{admin.user_id}"), json={"role": "administrator"}, headers=other.headers)
    key = client.post(
        admin.path("api_keys"), json={"name": "scoped", "role": "administrator"}, headers=admin.headers
    ).json()
    assert client.get(admin.path("agents"), headers=_bearer(key["token"])).status_code == 200
    assert_problem(client.get(other.path("agents"), headers=_bearer(key["token"])), 404)
    assert_problem(client.get(f"/api/v1/accounts/{other.account_id}", headers=_bearer(key["token"])), 404)


def test_revoked_api_key_is_401_with_a_clear_detail_and_its_bot_leaves(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    key = client.post(admin.path("api_keys"), json={"name": "temp"}, headers=admin.headers).json()
    assert client.delete(admin.path(f"api_keys/{key['id']}"), headers=admin.headers).status_code == 204
    body = assert_problem(client.get(admin.path("teams"), headers=_bearer(key["token"])), 401)
    assert "revoked" in str(body["detail"])
    membership = db_conn.execute(
        "SELECT count(*) FROM account_users WHERE user_id = %s", (key["user_id"],)
    ).fetchone()
    assert membership == (0,)
    listed = client.get(admin.path("api_keys"), headers=admin.headers).json()["data"]
    assert listed[0]["revoked_at"] is not None and listed[0]["role"] is None
    actions = [
        e["action"] for e in client.get(admin.path("audit_logs"), headers=admin.headers).json()["data"]
    ]
    assert actions[:2] == ["api_key.revoked", "api_key.created"]


def test_expired_api_key_is_401_with_a_clear_detail(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    key = client.post(
        admin.path("api_keys"), json={"name": "week", "expires_in_days": 7}, headers=admin.headers
    ).json()
    assert key["expires_at"] is not None
    db_conn.execute(
        "UPDATE access_tokens SET expires_at = now() - interval '1 minute' WHERE id = %s", (key["id"],)
    )
    body = assert_problem(client.get(admin.path("teams"), headers=_bearer(key["token"])), 401)
    assert "expired" in str(body["detail"])


def test_api_keys_are_admin_only_and_validate_input(
    live: LiveServer, client: httpx.Client, db_conn: psycopg.Connection[Any]
) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id)
    assert_problem(client.get(admin.path("api_keys"), headers=agent.headers), 403)
    assert_problem(client.post(admin.path("api_keys"), json={"name": "x"}, headers=agent.headers), 403)
    for body, field in (
        ({"name": "x", "role": "root"}, "role"),
        ({"name": ""}, "name"),
        ({"name": "x", "expires_in_days": -1}, "expires_in_days"),
    ):
        assert_problem(
            client.post(admin.path("api_keys"), json=body, headers=admin.headers), 422, field=field
        )
    assert db_conn.execute(
        "SELECT count(*) FROM access_tokens WHERE account_id = %s", (admin.account_id,)
    ).fetchone() == (0,)
    assert_problem(client.delete(admin.path("api_keys/999999999"), headers=admin.headers), 404)
