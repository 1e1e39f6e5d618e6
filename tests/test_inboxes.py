"""Inboxes over HTTP: channels and their sealed secrets, members, and who sees which inbox."""

from __future__ import annotations

import uuid

import httpx
import psycopg
import pytest

from tests.support import TEST_SECRET, Actor, add_user, assert_problem, new_account, unique
from whatwut.security.crypto import SecretBox

CLOUD_SECRETS = {
    "access_token": "EAAG-secret-token",
    "app_secret": "app-secret-123",
    "verify_token": "verify-me",
}


def _cloud_channel(**overrides: object) -> dict[str, object]:
    channel: dict[str, object] = {
        "type": "whatsapp_cloud",
        "phone_number": "+55 11 98765-4321",
        "phone_number_id": str(uuid.uuid4().int)[:15],
        "business_account_id": "102290129340398",
        **CLOUD_SECRETS,
    }
    channel.update(overrides)
    return channel


def _create(client: httpx.Client, actor: Actor, **body: object) -> httpx.Response:
    payload: dict[str, object] = {"name": unique("Inbox"), "channel": {"type": "api"}}
    payload.update(body)
    return client.post(actor.path("inboxes"), json=payload, headers=actor.headers)


def _count(db_conn: psycopg.Connection[tuple[object, ...]], account_id: int) -> int:
    row = db_conn.execute("SELECT count(*) FROM inboxes WHERE account_id = %s", (account_id,)).fetchone()
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


@pytest.fixture
def admin(live, client: httpx.Client) -> Actor:
    return new_account(live, client)


def test_admin_creates_an_api_inbox(client: httpx.Client, admin: Actor) -> None:
    response = _create(client, admin, name="Website", max_open_per_agent=5, resolved_policy="new")
    assert response.status_code == 201, response.text
    inbox = response.json()
    assert inbox["name"] == "Website" and inbox["channel_type"] == "api"
    assert inbox["channel"] == {"type": "api"}
    assert inbox["max_open_per_agent"] == 5 and inbox["resolved_policy"] == "new"
    assert inbox["enable_auto_assignment"] is True
    assert client.get(admin.path(f"inboxes/{inbox['id']}"), headers=admin.headers).json() == inbox


def test_cloud_inbox_seals_secrets_and_never_returns_them(
    client: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    channel = _cloud_channel()
    response = _create(client, admin, channel=channel)
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["channel"] == {
        "type": "whatsapp_cloud",
        "phone_number": "+5511987654321",
        "phone_number_id": channel["phone_number_id"],
        "business_account_id": "102290129340398",
        "access_token_set": True,
        "app_secret_set": True,
        "verify_token_set": True,
    }
    for secret in CLOUD_SECRETS.values():
        assert secret not in response.text
    settings, sealed = db_conn.execute(
        "SELECT settings::text, secrets_encrypted FROM inboxes WHERE id = %s", (body["id"],)
    ).fetchone()  # type: ignore[misc]
    for secret in CLOUD_SECRETS.values():
        assert secret not in str(settings) and secret not in str(sealed)
    assert SecretBox(TEST_SECRET).open(str(sealed)) == CLOUD_SECRETS
    listed = client.get(admin.path("inboxes"), headers=admin.headers)
    assert all(secret not in listed.text for secret in CLOUD_SECRETS.values())


def test_rotating_a_cloud_secret_keeps_the_others(
    client: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    inbox = _create(client, admin, channel=_cloud_channel()).json()
    response = client.patch(
        admin.path(f"inboxes/{inbox['id']}"),
        json={"channel": {"access_token": "new-token"}, "name": "Support BR"},
        headers=admin.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Support BR" and "new-token" not in response.text
    (sealed,) = db_conn.execute(
        "SELECT secrets_encrypted FROM inboxes WHERE id = %s", (inbox["id"],)
    ).fetchone()  # type: ignore[misc]
    assert SecretBox(TEST_SECRET).open(str(sealed)) == {**CLOUD_SECRETS, "access_token": "new-token"}


def test_cloud_inbox_with_missing_or_bad_fields_names_them_and_writes_nothing(
    client: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    before = _count(db_conn, admin.account_id)
    missing = _cloud_channel()
    del missing["access_token"]
    assert_problem(_create(client, admin, channel=missing), 422, field="channel.access_token")
    assert_problem(
        _create(client, admin, channel=_cloud_channel(phone_number="12345")),
        422,
        field="channel.phone_number",
    )
    assert_problem(
        _create(client, admin, channel=_cloud_channel(phone_number_id="abc")),
        422,
        field="channel.phone_number_id",
    )
    assert_problem(_create(client, admin, channel=_cloud_channel(surprise=1)), 422, field="channel.surprise")
    assert_problem(_create(client, admin, channel={"type": "api", "token": "x"}), 422, field="channel.token")
    assert _count(db_conn, admin.account_id) == before


def test_unknown_channel_type_names_channel_type(client: httpx.Client, admin: Actor) -> None:
    assert_problem(_create(client, admin, channel={"type": "telegram"}), 422, field="channel.type")
    assert_problem(_create(client, admin, channel={}), 422, field="channel.type")


@pytest.mark.parametrize("channel_type", ["whatsapp_web", "whatsapp_sandbox"])
def test_channels_not_built_yet_are_refused_clearly(
    client: httpx.Client, admin: Actor, channel_type: str
) -> None:
    body = assert_problem(_create(client, admin, channel={"type": channel_type}), 422, field="channel.type")
    assert "not available yet" in str(body["detail"])


def test_bad_inbox_fields_are_named(client: httpx.Client, admin: Actor) -> None:
    assert_problem(_create(client, admin, name=""), 422, field="name")
    assert_problem(_create(client, admin, name="nul\u0000byte"), 422, field="name")
    assert_problem(_create(client, admin, max_open_per_agent=0), 422, field="max_open_per_agent")
    assert_problem(_create(client, admin, resolved_policy="close"), 422, field="resolved_policy")
    assert_problem(_create(client, admin, colour="red"), 422, field="colour")
    assert_problem(
        client.post(
            admin.path("inboxes"),
            content=b"{broken",
            headers={**admin.headers, "content-type": "application/json"},
        ),
        422,
    )


def test_duplicate_names_and_phone_number_ids_conflict(client: httpx.Client, admin: Actor, live) -> None:
    _create(client, admin, name="Sales")
    assert_problem(_create(client, admin, name="Sales"), 409, field="name")
    channel = _cloud_channel()
    assert _create(client, admin, channel=channel).status_code == 201
    other_account = new_account(live, client)
    assert_problem(_create(client, other_account, channel=channel), 409, field="channel.phone_number_id")


def test_channel_type_cannot_change(client: httpx.Client, admin: Actor) -> None:
    inbox = _create(client, admin).json()
    response = client.patch(
        admin.path(f"inboxes/{inbox['id']}"),
        json={"channel": {"type": "whatsapp_cloud"}},
        headers=admin.headers,
    )
    assert_problem(response, 422, field="channel.type")


def test_patch_clears_the_cap_and_refuses_null_names(client: httpx.Client, admin: Actor) -> None:
    inbox = _create(client, admin, max_open_per_agent=3).json()
    path = admin.path(f"inboxes/{inbox['id']}")
    response = client.patch(path, json={"max_open_per_agent": None}, headers=admin.headers)
    assert response.status_code == 200 and response.json()["max_open_per_agent"] is None
    assert_problem(client.patch(path, json={"name": None}, headers=admin.headers), 422, field="name")


def test_delete_removes_the_inbox(client: httpx.Client, admin: Actor) -> None:
    inbox = _create(client, admin).json()
    path = admin.path(f"inboxes/{inbox['id']}")
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert_problem(client.get(path, headers=admin.headers), 404)
    assert_problem(client.delete(path, headers=admin.headers), 404)


def test_members_are_replaced_and_removed(live, client: httpx.Client, admin: Actor) -> None:
    first = add_user(live, client, admin.account_id)
    second = add_user(live, client, admin.account_id)
    inbox = _create(client, admin).json()
    path = admin.path(f"inboxes/{inbox['id']}/members")
    response = client.post(path, json={"user_ids": [first.user_id, second.user_id]}, headers=admin.headers)
    assert response.status_code == 200, response.text
    assert [m["id"] for m in response.json()["data"]] == sorted([first.user_id, second.user_id])
    assert response.json()["data"][0]["role"] == "agent"
    response = client.post(path, json={"user_ids": [second.user_id]}, headers=admin.headers)
    assert [m["id"] for m in response.json()["data"]] == [second.user_id]
    response = client.request("DELETE", path, json={"user_ids": [second.user_id]}, headers=admin.headers)
    assert response.status_code == 200 and response.json()["data"] == []


def test_members_must_belong_to_the_account(
    live, client: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    agent = add_user(live, client, admin.account_id)
    stranger = new_account(live, client)
    inbox = _create(client, admin).json()
    path = admin.path(f"inboxes/{inbox['id']}/members")
    client.post(path, json={"user_ids": [agent.user_id]}, headers=admin.headers)
    body = assert_problem(
        client.post(path, json={"user_ids": [agent.user_id, stranger.user_id]}, headers=admin.headers),
        422,
        field="user_ids",
    )
    assert str(stranger.user_id) in str(body["detail"])
    rows = db_conn.execute("SELECT user_id FROM inbox_members WHERE inbox_id = %s", (inbox["id"],)).fetchall()
    assert rows == [(agent.user_id,)]
    assert_problem(client.post(path, json={"user_ids": ["x"]}, headers=admin.headers), 422, field="user_ids")


def test_agents_see_only_their_inboxes(live, client: httpx.Client, admin: Actor) -> None:
    agent = add_user(live, client, admin.account_id)
    mine = _create(client, admin).json()
    theirs = _create(client, admin).json()
    client.post(
        admin.path(f"inboxes/{mine['id']}/members"), json={"user_ids": [agent.user_id]}, headers=admin.headers
    )
    listed = client.get(agent.path("inboxes"), headers=agent.headers).json()["data"]
    assert [i["id"] for i in listed] == [mine["id"]]
    assert client.get(agent.path(f"inboxes/{mine['id']}"), headers=agent.headers).status_code == 200
    assert_problem(client.get(agent.path(f"inboxes/{theirs['id']}"), headers=agent.headers), 404)
    assert_problem(client.get(agent.path(f"inboxes/{theirs['id']}/members"), headers=agent.headers), 404)
    admin_ids = [i["id"] for i in client.get(admin.path("inboxes"), headers=admin.headers).json()["data"]]
    assert {mine["id"], theirs["id"]} <= set(admin_ids)


def test_agents_cannot_write_inboxes(live, client: httpx.Client, admin: Actor) -> None:
    agent = add_user(live, client, admin.account_id)
    inbox = _create(client, admin).json()
    client.post(
        admin.path(f"inboxes/{inbox['id']}/members"),
        json={"user_ids": [agent.user_id]},
        headers=admin.headers,
    )
    assert_problem(_create(client, agent), 403)
    path = agent.path(f"inboxes/{inbox['id']}")
    assert_problem(client.patch(path, json={"name": "mine"}, headers=agent.headers), 403)
    assert_problem(client.delete(path, headers=agent.headers), 403)
    assert_problem(client.post(f"{path}/members", json={"user_ids": []}, headers=agent.headers), 403)


def test_another_accounts_inboxes_are_404(live, client: httpx.Client, admin: Actor) -> None:
    other = new_account(live, client)
    foreign = _create(client, other).json()
    path = admin.path(f"inboxes/{foreign['id']}")
    assert_problem(client.get(path, headers=admin.headers), 404)
    assert_problem(client.patch(path, json={"name": "stolen"}, headers=admin.headers), 404)
    assert_problem(client.delete(path, headers=admin.headers), 404)
    assert_problem(client.get(f"{path}/members", headers=admin.headers), 404)
    assert_problem(client.post(f"{path}/members", json={"user_ids": []}, headers=admin.headers), 404)
    assert foreign["id"] not in [
        i["id"] for i in client.get(admin.path("inboxes"), headers=admin.headers).json()["data"]
    ]
    # Reaching into the other account by its id is 404 too (not a member there).
    assert_problem(client.get(other.path("inboxes"), headers=admin.headers), 404)


def test_inbox_list_pages_with_a_cursor(live, client: httpx.Client) -> None:
    admin = new_account(live, client)
    created = [_create(client, admin).json()["id"] for _ in range(5)]
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(admin.path("inboxes"), params=params, headers=admin.headers).json()
        seen += [i["id"] for i in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == created
    assert_problem(
        client.get(admin.path("inboxes"), params={"cursor": "!!"}, headers=admin.headers), 422, field="cursor"
    )


def test_demo_seed_adds_website_inbox_labels_and_replies_once(live, client: httpx.Client) -> None:
    from whatwut.context import AppContext
    from whatwut.db.engine import transaction
    from whatwut.demo import seed

    admin = new_account(live, client)

    async def run(context: AppContext) -> None:
        for _ in range(2):
            async with transaction(context.sessionmaker) as session:
                await seed.seed_demo_account(session, context, admin.account_id)

    live.run(run)
    inboxes = client.get(admin.path("inboxes"), headers=admin.headers).json()["data"]
    assert [(i["name"], i["channel_type"]) for i in inboxes] == [
        ("Website", "api"),
        ("WhatsApp sandbox", "whatsapp_cloud"),
    ]
    members = client.get(admin.path(f"inboxes/{inboxes[0]['id']}/members"), headers=admin.headers).json()
    assert [m["id"] for m in members["data"]] == [admin.user_id]
    labels = client.get(admin.path("labels"), headers=admin.headers).json()["data"]
    assert [x["title"] for x in labels] == ["billing", "shipping", "vip"]
    canned = client.get(admin.path("canned_responses"), headers=admin.headers).json()["data"]
    assert [c["short_code"] for c in canned] == ["hello", "thanks"]
