"""Contacts over HTTP: normalised fields, duplicates, search, merge, channel ids, isolation."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import psycopg
import pytest

from tests.support import Actor, LiveServer, add_user, assert_problem, new_account, unique
from whatwut.contacts import service as contacts
from whatwut.context import AppContext
from whatwut.db.engine import transaction

Db = psycopg.Connection[tuple[object, ...]]


def _phone() -> str:
    """A valid, unique Brazilian mobile number in E.164."""
    return "+55119" + str(uuid.uuid4().int)[:8]


def _create(client: httpx.Client, actor: Actor, **body: object) -> httpx.Response:
    return client.post(actor.path("contacts"), json=body, headers=actor.headers)


def _count(db_conn: Db, account_id: int, table: str = "contacts") -> int:
    row = db_conn.execute(f"SELECT count(*) FROM {table} WHERE account_id = %s", (account_id,)).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def _api_inbox(client: httpx.Client, admin: Actor) -> int:
    response = client.post(
        admin.path("inboxes"),
        json={"name": unique("Inbox"), "channel": {"type": "api"}},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


def test_contact_fields_are_normalised(client: httpx.Client, admin: Actor, db_conn: Db) -> None:
    response = _create(
        client,
        admin,
        name="  Ana Souza 🌻 ",
        email="Ana.Souza@Example.COM",
        phone_number="+55 11 98765-4321",
        custom_attributes={"plan": "gold", "seats": 3, "vip": True, "score": 9.5, "note": None},
    )
    assert response.status_code == 201, response.text
    contact = response.json()
    assert contact["name"] == "Ana Souza 🌻"
    assert contact["email"] == "ana.souza@example.com"
    assert contact["phone_number"] == "+5511987654321"
    assert contact["custom_attributes"]["seats"] == 3
    stored = db_conn.execute(
        "SELECT name, email, phone_number FROM contacts WHERE id = %s", (contact["id"],)
    ).fetchone()
    assert stored == ("Ana Souza 🌻", "ana.souza@example.com", "+5511987654321")
    assert client.get(admin.path(f"contacts/{contact['id']}"), headers=admin.headers).json() == contact


def test_contact_created_and_updated_publish_events(client: httpx.Client, admin: Actor, db_conn: Db) -> None:
    contact = _create(client, admin, name="Evented").json()
    client.patch(admin.path(f"contacts/{contact['id']}"), json={"name": "Renamed"}, headers=admin.headers)
    rows = db_conn.execute(
        "SELECT event_type, payload->>'name' FROM events"
        " WHERE account_id = %s AND (payload->>'id')::bigint = %s ORDER BY id",
        (admin.account_id, contact["id"]),
    ).fetchall()
    assert rows == [("contact.created", "Evented"), ("contact.updated", "Renamed")]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"phone_number": "12345"}, "phone_number"),
        ({"phone_number": "+55 11 1234"}, "phone_number"),
        ({"phone_number": "call me"}, "phone_number"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"name": "x" * 256}, "name"),
        ({"name": "nul\u0000"}, "name"),
        ({"name": 42}, "name"),
        ({"custom_attributes": {"k" * 65: 1}}, "custom_attributes"),
        ({"custom_attributes": {f"k{i}": i for i in range(51)}}, "custom_attributes"),
        ({"custom_attributes": {"nested": {"a": 1}}}, "custom_attributes"),
        ({"custom_attributes": {"list": [1, 2]}}, "custom_attributes"),
        ({"custom_attributes": {"long": "x" * 1025}}, "custom_attributes"),
        ({"custom_attributes": {"big": 2**60}}, "custom_attributes"),
        ({"custom_attributes": "gold"}, "custom_attributes"),
        ({"shoe_size": 42}, "shoe_size"),
    ],
)
def test_bad_contact_fields_are_named_and_nothing_is_written(
    client: httpx.Client, admin: Actor, db_conn: Db, body: dict[str, object], field: str
) -> None:
    before = _count(db_conn, admin.account_id)
    assert_problem(_create(client, admin, **body), 422, field=field)
    assert _count(db_conn, admin.account_id) == before


def test_non_finite_numbers_are_refused(client: httpx.Client, admin: Actor, db_conn: Db) -> None:
    before = _count(db_conn, admin.account_id)
    response = client.post(
        admin.path("contacts"),
        content=b'{"custom_attributes": {"score": NaN}}',
        headers={**admin.headers, "content-type": "application/json"},
    )
    assert_problem(response, 422, field="custom_attributes")
    assert _count(db_conn, admin.account_id) == before


def test_duplicate_phone_or_email_is_409_naming_the_field(client: httpx.Client, admin: Actor) -> None:
    phone = _phone()
    first = _create(client, admin, phone_number=phone, email="dup@example.com")
    assert first.status_code == 201, first.text
    assert_problem(_create(client, admin, phone_number=phone), 409, field="phone_number")
    assert_problem(_create(client, admin, email="DUP@example.com"), 409, field="email")
    other = _create(client, admin, name="Other").json()
    assert_problem(
        client.patch(
            admin.path(f"contacts/{other['id']}"), json={"phone_number": phone}, headers=admin.headers
        ),
        409,
        field="phone_number",
    )


def test_same_phone_in_two_accounts_is_fine(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    phone = _phone()
    assert _create(client, admin, phone_number=phone).status_code == 201
    other = new_account(live, client)
    assert _create(client, other, phone_number=phone).status_code == 201


def test_patch_changes_only_what_is_sent_and_clears_with_null(client: httpx.Client, admin: Actor) -> None:
    contact = _create(client, admin, name="Bia", email="bia@example.com", phone_number=_phone()).json()
    path = admin.path(f"contacts/{contact['id']}")
    response = client.patch(
        path, json={"email": None, "custom_attributes": {"tier": "b"}}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["email"] is None and updated["name"] == "Bia"
    assert updated["phone_number"] == contact["phone_number"]
    assert updated["custom_attributes"] == {"tier": "b"}
    assert_problem(
        client.patch(path, json={"phone_number": "0800"}, headers=admin.headers), 422, field="phone_number"
    )


def test_search_finds_by_name_email_and_phone_fragments(client: httpx.Client, live: LiveServer) -> None:
    admin = new_account(live, client)
    ana = _create(
        client, admin, name="Ana Beatriz Souza", email="ana.b@acme.io", phone_number="+5511987654321"
    ).json()
    joao = _create(
        client, admin, name="João Pereira", email="jp@globex.com", phone_number="+14155552671"
    ).json()

    def ids(q: str, path: str = "contacts/search") -> list[int]:
        response = client.get(admin.path(path), params={"q": q}, headers=admin.headers)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()["data"]]

    assert ids("bea") == [ana["id"]]
    assert ids("souza ana") == [ana["id"]]
    assert ids("joão") == [joao["id"]]
    assert ids("globex") == [joao["id"]]
    assert ids("acme.io") == [ana["id"]]
    assert ids("98765") == [ana["id"]]
    assert ids("(415) 555") == [joao["id"]]
    assert ids("nobody") == []
    assert ids("%") == []
    assert ids("jp@", path="contacts") == [joao["id"]]
    assert_problem(client.get(admin.path("contacts/search"), headers=admin.headers), 422, field="q")
    assert_problem(
        client.get(admin.path("contacts"), params={"q": "a\u0000b"}, headers=admin.headers), 422, field="q"
    )


def test_list_pages_by_activity_and_by_name(client: httpx.Client, live: LiveServer) -> None:
    admin = new_account(live, client)
    names = ["delta", "alpha", "Charlie", "bravo", "echo"]
    created = [_create(client, admin, name=n).json()["id"] for n in names]

    def walk(sort: str) -> list[int]:
        seen: list[int] = []
        cursor = None
        while True:
            params: dict[str, object] = {"sort": sort, "limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = client.get(admin.path("contacts"), params=params, headers=admin.headers).json()
            seen += [c["id"] for c in page["data"]]
            cursor = page["meta"]["next_cursor"]
            if not cursor:
                return seen

    assert walk("last_activity") == list(reversed(created))
    by_name = dict(zip(names, created, strict=True))
    assert walk("name") == [by_name[n] for n in ["alpha", "bravo", "Charlie", "delta", "echo"]]
    assert_problem(
        client.get(admin.path("contacts"), params={"sort": "age"}, headers=admin.headers), 422, field="sort"
    )
    assert_problem(
        client.get(admin.path("contacts"), params={"cursor": "bm9wZQ"}, headers=admin.headers),
        422,
        field="cursor",
    )


def test_merge_moves_identities_fills_gaps_and_deletes_the_other(
    client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox_id = _api_inbox(client, admin)
    base = _create(client, admin, name="Carla", custom_attributes={"plan": "gold", "city": "Rio"}).json()
    phone = _phone()
    other = _create(
        client,
        admin,
        email="carla@example.com",
        phone_number=phone,
        custom_attributes={"plan": "free", "age": 30},
    ).json()
    response = client.post(
        admin.path(f"contacts/{other['id']}/contact_inboxes"),
        json={"inbox_id": inbox_id, "source_id": "carla-web-1"},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text

    # A conversation of the other contact (written directly: the conversations API is another domain's).
    (conversation_id,) = db_conn.execute(
        "INSERT INTO conversations (account_id, display_id, inbox_id, contact_id) VALUES (%s, 1, %s, %s)"
        " RETURNING id",
        (admin.account_id, inbox_id, other["id"]),
    ).fetchone()  # type: ignore[misc]

    merged = client.post(
        admin.path(f"contacts/{base['id']}/merge"),
        json={"other_contact_id": other["id"]},
        headers=admin.headers,
    )
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["name"] == "Carla" and body["email"] == "carla@example.com" and body["phone_number"] == phone
    assert body["custom_attributes"] == {"plan": "gold", "city": "Rio", "age": 30}
    assert_problem(client.get(admin.path(f"contacts/{other['id']}"), headers=admin.headers), 404)
    identities = client.get(
        admin.path(f"contacts/{base['id']}/contact_inboxes"), headers=admin.headers
    ).json()
    assert [(ci["inbox_id"], ci["source_id"]) for ci in identities["data"]] == [(inbox_id, "carla-web-1")]
    moved = db_conn.execute(
        "SELECT contact_id FROM conversations WHERE id = %s", (conversation_id,)
    ).fetchone()
    assert moved == (base["id"],)
    audit = db_conn.execute(
        "SELECT changes->>'merged_contact_id' FROM audit_logs"
        " WHERE action = 'contact.merged' AND subject_id = %s",
        (base["id"],),
    ).fetchone()
    assert audit == (str(other["id"]),)


def test_merge_refuses_self_foreign_and_agents(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    contact = _create(client, admin, name="Solo").json()
    path = admin.path(f"contacts/{contact['id']}/merge")
    assert_problem(
        client.post(path, json={"other_contact_id": contact["id"]}, headers=admin.headers),
        422,
        field="other_contact_id",
    )
    other_account = new_account(live, client)
    foreign = _create(client, other_account, name="Foreign").json()
    assert_problem(
        client.post(path, json={"other_contact_id": foreign["id"]}, headers=admin.headers),
        404,
        field="other_contact_id",
    )
    assert (
        client.get(other_account.path(f"contacts/{foreign['id']}"), headers=other_account.headers).status_code
        == 200
    )
    agent = add_user(live, client, admin.account_id)
    victim = _create(client, admin, name="Victim").json()
    assert_problem(
        client.post(
            agent.path(f"contacts/{contact['id']}/merge"),
            json={"other_contact_id": victim["id"]},
            headers=agent.headers,
        ),
        403,
    )
    assert_problem(client.delete(agent.path(f"contacts/{contact['id']}"), headers=agent.headers), 403)


def test_contact_inboxes_conflict_and_respect_inbox_visibility(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    inbox_id = _api_inbox(client, admin)
    first = _create(client, admin, name="First").json()
    second = _create(client, admin, name="Second").json()
    body = {"inbox_id": inbox_id, "source_id": "same-id"}
    assert (
        client.post(
            admin.path(f"contacts/{first['id']}/contact_inboxes"), json=body, headers=admin.headers
        ).status_code
        == 201
    )
    assert_problem(
        client.post(admin.path(f"contacts/{second['id']}/contact_inboxes"), json=body, headers=admin.headers),
        409,
        field="source_id",
    )
    assert_problem(
        client.post(
            admin.path(f"contacts/{first['id']}/contact_inboxes"),
            json={"inbox_id": inbox_id, "source_id": ""},
            headers=admin.headers,
        ),
        422,
        field="source_id",
    )
    agent = add_user(live, client, admin.account_id)
    assert_problem(
        client.post(
            agent.path(f"contacts/{second['id']}/contact_inboxes"),
            json={"inbox_id": inbox_id, "source_id": "agent-made"},
            headers=agent.headers,
        ),
        404,
        field="inbox_id",
    )
    other = new_account(live, client)
    foreign_inbox = _api_inbox(client, other)
    assert_problem(
        client.post(
            admin.path(f"contacts/{second['id']}/contact_inboxes"),
            json={"inbox_id": foreign_inbox, "source_id": "x"},
            headers=admin.headers,
        ),
        404,
        field="inbox_id",
    )


def test_agents_create_and_edit_contacts(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    agent = add_user(live, client, admin.account_id)
    response = _create(client, agent, name="From agent")
    assert response.status_code == 201
    path = agent.path(f"contacts/{response.json()['id']}")
    assert client.patch(path, json={"name": "Edited"}, headers=agent.headers).json()["name"] == "Edited"


def test_admin_deletes_a_contact(client: httpx.Client, admin: Actor) -> None:
    contact = _create(client, admin, name="Gone").json()
    path = admin.path(f"contacts/{contact['id']}")
    assert client.delete(path, headers=admin.headers).status_code == 204
    assert_problem(client.get(path, headers=admin.headers), 404)


def test_another_accounts_contacts_are_404(live: LiveServer, client: httpx.Client, admin: Actor) -> None:
    other = new_account(live, client)
    foreign = _create(client, other, name="Secret Customer", phone_number=_phone()).json()
    path = admin.path(f"contacts/{foreign['id']}")
    assert_problem(client.get(path, headers=admin.headers), 404)
    assert_problem(client.patch(path, json={"name": "x"}, headers=admin.headers), 404)
    assert_problem(client.delete(path, headers=admin.headers), 404)
    assert_problem(client.get(f"{path}/contact_inboxes", headers=admin.headers), 404)
    found = client.get(admin.path("contacts/search"), params={"q": "secret"}, headers=admin.headers).json()
    assert found["data"] == []
    listed = client.get(admin.path("contacts"), params={"limit": 100}, headers=admin.headers).json()["data"]
    assert foreign["id"] not in [c["id"] for c in listed]


# --- find_or_create_by_source (the channels' entry point) ----------------------------------------


def _find_or_create(
    live: LiveServer,
    account_id: int,
    inbox_id: int,
    source_id: str,
    name: str,
    phone: str | None,
    times: int = 1,
) -> list[tuple[int, int]]:
    """Run ``times`` concurrent calls, each in its own transaction; (contact_id, contact_inbox_id)."""

    async def run(context: AppContext) -> list[tuple[int, int]]:
        async def one() -> tuple[int, int]:
            async with transaction(context.sessionmaker) as session:
                contact, contact_inbox = await contacts.find_or_create_by_source(
                    session, account_id, inbox_id, source_id, name=name, phone_number=phone
                )
                return contact.id, contact_inbox.id

        return list(await asyncio.gather(*(one() for _ in range(times))))

    result: Any = live.run(run)
    return list(result)


def test_find_or_create_by_source_is_idempotent(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox_id = _api_inbox(client, admin)
    wa_id = _phone()[1:]
    first = _find_or_create(live, admin.account_id, inbox_id, wa_id, "Maria", wa_id)
    again = _find_or_create(live, admin.account_id, inbox_id, wa_id, "Maria Silva", wa_id)
    assert first == again
    contact = client.get(admin.path(f"contacts/{first[0][0]}"), headers=admin.headers).json()
    assert contact["phone_number"] == "+" + wa_id and contact["name"] == "Maria"


def test_find_or_create_reuses_the_contact_with_that_phone(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    phone = _phone()
    existing = _create(client, admin, phone_number=phone).json()
    inbox_id = _api_inbox(client, admin)
    [(contact_id, _ci)] = _find_or_create(
        live, admin.account_id, inbox_id, phone[1:], "Named Later", phone[1:]
    )
    assert contact_id == existing["id"]
    assert (
        client.get(admin.path(f"contacts/{contact_id}"), headers=admin.headers).json()["name"]
        == "Named Later"
    )


@pytest.mark.parametrize("with_phone", [True, False])
def test_find_or_create_races_end_with_one_contact(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db, with_phone: bool
) -> None:
    inbox_id = _api_inbox(client, admin)
    before = _count(db_conn, admin.account_id)
    source_id = _phone()[1:]
    results = _find_or_create(
        live, admin.account_id, inbox_id, source_id, "Racer", source_id if with_phone else None, times=6
    )
    assert len(set(results)) == 1
    assert _count(db_conn, admin.account_id) == before + 1
    assert _count(db_conn, admin.account_id, "contact_inboxes") >= 1


def test_find_or_create_refuses_another_accounts_inbox(
    live: LiveServer, client: httpx.Client, admin: Actor
) -> None:
    other = new_account(live, client)
    foreign_inbox = _api_inbox(client, other)
    with pytest.raises(Exception, match="inbox not found"):
        _find_or_create(live, admin.account_id, foreign_inbox, "5511987650000", "X", None)
