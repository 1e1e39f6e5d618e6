"""Labels over HTTP, and the check conversations use for the labels they are given."""

from __future__ import annotations

from typing import Any

import httpx
import psycopg
import pytest

from tests.support import Actor, LiveServer, add_user, assert_problem, new_account
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.kit.errors import InvalidInput
from whatwut.labels import service as labels

Db = psycopg.Connection[tuple[object, ...]]


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


def _create(client: httpx.Client, actor: Actor, **body: object) -> httpx.Response:
    return client.post(actor.path("labels"), json=body, headers=actor.headers)


def test_admin_creates_lists_updates_and_deletes_labels(client: httpx.Client, admin: Actor) -> None:
    response = _create(client, admin, title="Billing", color="#FF0000", description="Money things")
    assert response.status_code == 201, response.text
    label = response.json()
    assert (label["title"], label["color"], label["description"]) == ("billing", "#ff0000", "Money things")
    _create(client, admin, title="vip")
    titles = [x["title"] for x in client.get(admin.path("labels"), headers=admin.headers).json()["data"]]
    assert titles == ["billing", "vip"]
    path = admin.path(f"labels/{label['id']}")
    updated = client.patch(path, json={"color": "#00aa00"}, headers=admin.headers)
    assert updated.status_code == 200 and updated.json()["color"] == "#00aa00"
    assert updated.json()["description"] == "Money things"
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert_problem(client.patch(path, json={"color": "#000000"}, headers=admin.headers), 404)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "needs space"}, "title"),
        ({"title": "ação"}, "title"),
        ({"title": ""}, "title"),
        ({"title": "x" * 65}, "title"),
        ({"title": "ok", "color": "red"}, "color"),
        ({"title": "ok", "color": "#12345"}, "color"),
        ({"title": "ok", "description": "x" * 1001}, "description"),
        ({"title": "ok", "show_on_sidebar": True}, "show_on_sidebar"),
        ({}, "title"),
    ],
)
def test_bad_labels_are_named_and_not_written(
    client: httpx.Client, admin: Actor, db_conn: Db, body: dict[str, object], field: str
) -> None:
    assert_problem(_create(client, admin, **body), 422, field=field)
    row = db_conn.execute("SELECT count(*) FROM labels WHERE account_id = %s", (admin.account_id,)).fetchone()
    assert row == (0,)


def test_duplicate_title_is_409_even_in_other_case(client: httpx.Client, admin: Actor) -> None:
    assert _create(client, admin, title="shipping").status_code == 201
    assert_problem(_create(client, admin, title="Shipping"), 409, field="title")


def test_title_cannot_be_renamed(client: httpx.Client, admin: Actor) -> None:
    label = _create(client, admin, title="fixed").json()
    response = client.patch(
        admin.path(f"labels/{label['id']}"), json={"title": "moved"}, headers=admin.headers
    )
    assert_problem(response, 422, field="title")


def test_agents_read_labels_but_cannot_write(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    label = _create(client, admin, title="readable").json()
    agent = add_user(live, client, admin.account_id)
    listed = client.get(agent.path("labels"), headers=agent.headers)
    assert [x["id"] for x in listed.json()["data"]] == [label["id"]]
    assert_problem(_create(client, agent, title="mine"), 403)
    assert_problem(
        client.patch(agent.path(f"labels/{label['id']}"), json={"color": "#000000"}, headers=agent.headers),
        403,
    )
    assert_problem(client.delete(agent.path(f"labels/{label['id']}"), headers=agent.headers), 403)


def test_another_accounts_labels_are_404(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    other = new_account(live, client)
    foreign = _create(client, other, title="secret").json()
    path = admin.path(f"labels/{foreign['id']}")
    assert_problem(client.patch(path, json={"color": "#000000"}, headers=admin.headers), 404)
    assert_problem(client.delete(path, headers=admin.headers), 404)
    assert client.get(admin.path("labels"), headers=admin.headers).json()["data"] == []
    # The same title is free in another account.
    assert _create(client, admin, title="secret").status_code == 201


def test_label_list_pages_with_a_cursor(client: httpx.Client, admin: Actor) -> None:
    for title in ["c", "a", "e", "b", "d"]:
        _create(client, admin, title=title)
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = client.get(admin.path("labels"), params=params, headers=admin.headers).json()
        seen += [x["title"] for x in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if not cursor:
            break
    assert seen == ["a", "b", "c", "d", "e"]


def _ensure(live: LiveServer, account_id: int, titles: list[str]) -> list[str] | InvalidInput:
    async def run(context: AppContext) -> list[str] | InvalidInput:
        async with transaction(context.sessionmaker) as session:
            try:
                return await labels.ensure_titles_exist(session, account_id, titles)
            except InvalidInput as exc:
                return exc

    result: Any = live.run(run)
    return result  # type: ignore[no-any-return]


def test_ensure_titles_exist_normalises_known_titles(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    _create(client, admin, title="billing")
    _create(client, admin, title="vip")
    assert _ensure(live, admin.account_id, ["VIP", "billing", "vip"]) == ["vip", "billing"]
    assert _ensure(live, admin.account_id, []) == []


def test_ensure_titles_exist_names_unknown_and_malformed_labels(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    _create(client, admin, title="billing")
    other = new_account(live, client)
    _create(client, other, title="theirs")
    unknown = _ensure(live, admin.account_id, ["billing", "theirs", "nope"])
    assert isinstance(unknown, InvalidInput) and unknown.field == "labels"
    assert "theirs" in unknown.detail and "nope" in unknown.detail and "billing" not in unknown.detail
    malformed = _ensure(live, admin.account_id, ["not a label"])
    assert isinstance(malformed, InvalidInput) and malformed.field == "labels"
