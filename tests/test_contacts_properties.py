"""Property tests: whatever a client sends as a contact, the answer is a consistent 2xx or a
4xx problem+json, never a 500, and a refused request writes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Actor, LiveServer, new_account

Db = psycopg.Connection[tuple[object, ...]]

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=False
)

# Any code point, lone surrogates included: JSON can carry them, PostgreSQL cannot store them.
any_text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=80)
names = st.one_of(
    st.text(max_size=300),
    any_text,
    st.sampled_from(["Ana 🌻", "  ", "José da Silva", "李小龍", "\u0000", "x" * 255, "x" * 256]),
    st.integers(),
    st.none(),
)
phones = st.one_of(
    st.sampled_from(
        ["+55 11 98765-4321", "+1 (415) 555-2671", "+4915112345678", "+447700900123", "", "   ", "+", "0800"]
    ),
    st.from_regex(r"\+?[0-9 ()\-.]{0,24}", fullmatch=True),
    any_text,
    st.integers(),
    st.none(),
)
emails = st.one_of(st.emails(), any_text, st.sampled_from(["A@B.CO", "a@b", "@x.io", ""]), st.none())
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    any_text,
    st.text(min_size=1000, max_size=1100),
)
attribute_values = st.one_of(
    scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2)
)
custom_attributes = st.one_of(
    st.dictionaries(st.one_of(st.text(max_size=70), any_text), attribute_values, max_size=55),
    st.lists(scalars, max_size=3),
    st.text(max_size=10),
    st.none(),
)
extra_fields = st.dictionaries(
    st.sampled_from(["shoe_size", "id", "account_id", "created_at", "avatar", "Name"]), scalars, max_size=2
)


@st.composite
def contact_payloads(draw: st.DrawFn) -> dict[str, Any]:
    fields = {"name": names, "phone_number": phones, "email": emails, "identifier": names}
    payload: dict[str, Any] = {}
    for key, strategy in fields.items():
        if draw(st.booleans()):
            payload[key] = draw(strategy)
    if draw(st.booleans()):
        payload["custom_attributes"] = draw(custom_attributes)
    payload.update(draw(extra_fields))
    return payload


@st.composite
def plausible_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-valid contacts, so the accepted path is exercised as hard as the refused one."""
    safe_scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=60),
    )
    payload: dict[str, Any] = {"name": draw(st.text(max_size=120))}
    if draw(st.booleans()):
        payload["phone_number"] = "+55 11 9" + draw(st.from_regex(r"[0-9]{4}-?[0-9]{4}", fullmatch=True))
    if draw(st.booleans()):
        payload["email"] = draw(st.emails())
    if draw(st.booleans()):
        payload["custom_attributes"] = draw(
            st.dictionaries(st.text(min_size=1, max_size=64), safe_scalars, max_size=8)
        )
    return payload


def _send(
    http: httpx.Client, method: str, path: str, actor: Actor, payload: dict[str, Any]
) -> httpx.Response:
    # ensure_ascii keeps lone surrogates as \\u escapes; allow_nan sends NaN/Infinity as Python's json does.
    body = json.dumps(payload, ensure_ascii=True, allow_nan=True).encode()
    return http.request(
        method, path, content=body, headers={**actor.headers, "content-type": "application/json"}
    )


def _counts(db_conn: Db, account_id: int) -> tuple[object, ...]:
    row = db_conn.execute(
        "SELECT (SELECT count(*) FROM contacts WHERE account_id = %(a)s),"
        " (SELECT count(*) FROM events WHERE account_id = %(a)s)",
        {"a": account_id},
    ).fetchone()
    assert row is not None
    return row


def _stored(db_conn: Db, contact_id: int) -> tuple[object, ...] | None:
    return db_conn.execute(
        "SELECT name, email, phone_number, identifier, custom_attributes FROM contacts WHERE id = %s",
        (contact_id,),
    ).fetchone()


def _assert_problem(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == response.status_code and body["detail"]


@pytest.fixture(scope="module")
def http(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def actor(live: LiveServer, http: httpx.Client) -> Actor:
    return new_account(live, http)


def test_any_contact_payload_is_stored_consistently_or_refused_cleanly(
    http: httpx.Client, actor: Actor, db_conn: Db
) -> None:
    @PROPERTY_SETTINGS
    @given(payload=st.one_of(contact_payloads(), plausible_payloads()))
    def check(payload: dict[str, Any]) -> None:
        before = _counts(db_conn, actor.account_id)
        response = _send(http, "POST", actor.path("contacts"), actor, payload)
        if response.status_code == 201:
            contact = response.json()
            stored = _stored(db_conn, contact["id"])
            assert stored == (
                contact["name"],
                contact["email"],
                contact["phone_number"],
                contact["identifier"],
                contact["custom_attributes"],
            )
            assert contact["phone_number"] is None or contact["phone_number"].startswith("+")
            assert contact["email"] is None or contact["email"] == contact["email"].lower()
            assert _counts(db_conn, actor.account_id) == (before[0] + 1, before[1] + 1)  # type: ignore[operator]
        else:
            _assert_problem(response)
            assert _counts(db_conn, actor.account_id) == before

    check()


def test_any_contact_patch_is_applied_consistently_or_changes_nothing(
    http: httpx.Client, actor: Actor, db_conn: Db
) -> None:
    created = _send(http, "POST", actor.path("contacts"), actor, {"name": "Patched Often"})
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    path = actor.path(f"contacts/{contact_id}")

    @PROPERTY_SETTINGS
    @given(payload=st.one_of(contact_payloads(), plausible_payloads()))
    def check(payload: dict[str, Any]) -> None:
        row_before, counts_before = _stored(db_conn, contact_id), _counts(db_conn, actor.account_id)
        response = _send(http, "PATCH", path, actor, payload)
        if response.status_code == 200:
            contact = response.json()
            assert _stored(db_conn, contact_id) == (
                contact["name"],
                contact["email"],
                contact["phone_number"],
                contact["identifier"],
                contact["custom_attributes"],
            )
        else:
            _assert_problem(response)
            assert _stored(db_conn, contact_id) == row_before
            assert _counts(db_conn, actor.account_id) == counts_before

    check()


def test_any_search_query_answers_a_page_or_a_problem(http: httpx.Client, actor: Actor) -> None:
    @settings(max_examples=40, deadline=None)
    @given(q=st.one_of(st.text(max_size=220), any_text), sort=st.sampled_from(["name", "last_activity", "x"]))
    def check(q: str, sort: str) -> None:
        try:
            response = http.get(actor.path("contacts"), params={"q": q, "sort": sort}, headers=actor.headers)
        except UnicodeEncodeError:
            return  # the client itself cannot put a lone surrogate in a URL
        if response.status_code == 200:
            assert set(response.json()) == {"data", "meta"}
        else:
            _assert_problem(response)

    check()
