"""Canned responses over HTTP: short codes, search, and who may change them."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.support import Actor, LiveServer, add_user, assert_problem, new_account

Db = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


def _create(client: httpx.Client, actor: Actor, **body: object) -> httpx.Response:
    return client.post(actor.path("canned_responses"), json=body, headers=actor.headers)


def test_admin_creates_updates_and_deletes(client: httpx.Client, admin: Actor) -> None:
    response = _create(client, admin, short_code="Hello", content="Hi {{contact.name}}, how can I help?")
    assert response.status_code == 201, response.text
    canned = response.json()
    assert canned["short_code"] == "hello"
    path = admin.path(f"canned_responses/{canned['id']}")
    updated = client.patch(path, json={"content": "Olá! Como posso ajudar? 👋"}, headers=admin.headers)
    assert updated.status_code == 200 and updated.json()["content"] == "Olá! Como posso ajudar? 👋"
    assert updated.json()["short_code"] == "hello"
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert_problem(client.delete(path, headers=admin.headers), 404)


def test_search_matches_short_code_prefix_or_content(client: httpx.Client, admin: Actor) -> None:
    _create(client, admin, short_code="refund", content="Your refund is on its way.")
    _create(client, admin, short_code="thanks", content="Thank you for contacting us!")
    _create(client, admin, short_code="hours", content="We are open 9-18, 100% of weekdays.")

    def codes(search: str) -> list[str]:
        response = client.get(
            admin.path("canned_responses"), params={"search": search}, headers=admin.headers
        )
        assert response.status_code == 200, response.text
        return [c["short_code"] for c in response.json()["data"]]

    assert codes("ref") == ["refund"]
    assert codes("CONTACTING") == ["thanks"]
    assert codes("100%") == ["hours"]
    assert codes("50%") == []
    assert codes("_") == []
    assert codes("") == ["hours", "refund", "thanks"]
    assert_problem(
        client.get(admin.path("canned_responses"), params={"search": "a\u0000"}, headers=admin.headers),
        422,
        field="search",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"short_code": "has space", "content": "x"}, "short_code"),
        ({"short_code": "", "content": "x"}, "short_code"),
        ({"short_code": "x" * 65, "content": "x"}, "short_code"),
        ({"short_code": "ok", "content": ""}, "content"),
        ({"short_code": "ok", "content": "x" * 10_001}, "content"),
        ({"short_code": "ok", "content": "nul\u0000"}, "content"),
        ({"short_code": "ok"}, "content"),
        ({"short_code": "ok", "content": "x", "shared": True}, "shared"),
    ],
)
def test_bad_canned_responses_are_named_and_not_written(
    client: httpx.Client, admin: Actor, db_conn: Db, body: dict[str, object], field: str
) -> None:
    assert_problem(_create(client, admin, **body), 422, field=field)
    row = db_conn.execute(
        "SELECT count(*) FROM canned_responses WHERE account_id = %s", (admin.account_id,)
    ).fetchone()
    assert row == (0,)


def test_short_code_is_unique_per_account(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    assert _create(client, admin, short_code="hello", content="Hi").status_code == 201
    assert_problem(_create(client, admin, short_code="HELLO", content="Hi again"), 409, field="short_code")
    other = _create(client, admin, short_code="hey", content="Hey").json()
    assert_problem(
        client.patch(
            admin.path(f"canned_responses/{other['id']}"), json={"short_code": "hello"}, headers=admin.headers
        ),
        409,
        field="short_code",
    )
    second_account = new_account(live, client)
    assert _create(client, second_account, short_code="hello", content="Hi").status_code == 201


def test_agents_read_but_cannot_write(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    canned = _create(client, admin, short_code="hello", content="Hi").json()
    agent = add_user(live, client, admin.account_id)
    listed = client.get(agent.path("canned_responses"), headers=agent.headers).json()["data"]
    assert [c["id"] for c in listed] == [canned["id"]]
    assert_problem(_create(client, agent, short_code="mine", content="x"), 403)
    path = agent.path(f"canned_responses/{canned['id']}")
    assert_problem(client.patch(path, json={"content": "changed"}, headers=agent.headers), 403)
    assert_problem(client.delete(path, headers=agent.headers), 403)


def test_another_accounts_canned_responses_are_404(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    other = new_account(live, client)
    foreign = _create(client, other, short_code="secret", content="internal").json()
    path = admin.path(f"canned_responses/{foreign['id']}")
    assert_problem(client.patch(path, json={"content": "mine"}, headers=admin.headers), 404)
    assert_problem(client.delete(path, headers=admin.headers), 404)
    found = client.get(admin.path("canned_responses"), params={"search": "internal"}, headers=admin.headers)
    assert found.json()["data"] == []
