"""Property tests: any message payload is stored as sent (2xx) or refused as problem+json, never 500,
and a refusal writes nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.conversation_support import Db, count, make_contact, make_inbox, start_conversation
from tests.support import Actor, LiveServer, new_account
from whatwut.conversations.models import CONTENT_TYPES

#: Any code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
huge_text = st.integers(4000, 20_000).map(lambda n: "é" * n)
texts = st.one_of(
    any_text, st.text(max_size=300), huge_text, st.sampled_from(["", " ", "\x00", "\ud800", "ok"])
)
numbers = st.one_of(st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | texts,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)
location = st.fixed_dictionaries(
    {"latitude": numbers, "longitude": numbers},
    optional={"name": texts, "address": texts, "extra": json_values},
)
buttons = st.lists(st.fixed_dictionaries({"id": texts, "title": texts}), min_size=0, max_size=5)
interactive = st.fixed_dictionaries(
    {"type": st.sampled_from(["button", "list", "carousel"]), "buttons": buttons},
    optional={"button_text": texts, "header": texts, "footer": texts},
)
template = st.fixed_dictionaries(
    {
        "name": st.one_of(st.from_regex(r"^[a-z_]{1,20}$", fullmatch=True), texts),
        "language": st.sampled_from(["en", "pt_BR", "xx-YY", ""]),
    },
    optional={"components": st.lists(st.dictionaries(texts, json_values, max_size=3), max_size=3)},
)
card = st.fixed_dictionaries(
    {
        "contacts": st.lists(
            st.fixed_dictionaries({"name": texts}, optional={"phone_number": texts}), max_size=3
        )
    }
)
attributes = st.one_of(
    st.just({}),
    location,
    interactive,
    template,
    card,
    st.dictionaries(texts, json_values, max_size=3),
    json_values,
)
payloads = st.fixed_dictionaries(
    {},
    optional={
        "content": st.one_of(st.none(), texts, numbers),
        "content_type": st.one_of(st.sampled_from(CONTENT_TYPES), texts),
        "content_attributes": attributes,
        "private": st.one_of(st.booleans(), texts, st.none()),
        "surprise": json_values,
    },
)

#: Payloads near the valid ones, so that stored messages are exercised as much as refusals.
storable = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=4200)
plausible = st.one_of(
    st.fixed_dictionaries({"content": storable}, optional={"private": st.booleans()}),
    st.fixed_dictionaries(
        {
            "content_type": st.just("location"),
            "content_attributes": st.fixed_dictionaries(
                {"latitude": st.floats(-95, 95), "longitude": st.floats(-185, 185)},
                optional={"name": storable},
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "content": storable,
            "content_type": st.just("interactive"),
            "content_attributes": st.fixed_dictionaries(
                {
                    "type": st.just("button"),
                    "buttons": st.lists(
                        st.fixed_dictionaries({"id": storable, "title": storable}), min_size=1, max_size=4
                    ),
                }
            ),
        }
    ),
)


@pytest.fixture(scope="module")
def setup(live: LiveServer, db_conn: Db) -> tuple[Actor, int]:
    with httpx.Client(base_url=live.url, timeout=30) as client:
        admin = new_account(live, client)
        inbox = make_inbox(client, admin, enable_auto_assignment=False)
        conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    return admin, int(conversation["id"])


def _counts(db: Db, conversation_id: int) -> tuple[int, int]:
    return (
        count(db, "SELECT count(*) FROM messages WHERE conversation_id = %s", conversation_id),
        count(db, "SELECT count(*) FROM events WHERE event_type = 'message.created'"),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.one_of(payloads, plausible))
def test_message_payloads_are_stored_or_refused_cleanly(
    live: LiveServer, db_conn: Db, setup: tuple[Actor, int], payload: dict[str, Any]
) -> None:
    admin, conversation_id = setup
    before = _counts(db_conn, conversation_id)
    body = json.dumps(payload, ensure_ascii=True).encode()
    with httpx.Client(base_url=live.url, timeout=30) as http:
        response = http.post(
            admin.path(f"conversations/{conversation_id}/messages"),
            content=body,
            headers={**admin.headers, "content-type": "application/json"},
        )
    after = _counts(db_conn, conversation_id)
    event(f"status {response.status_code}")
    if response.status_code == 201:
        message = response.json()
        assert after == (before[0] + 1, before[1] + 1)
        assert message["content_type"] == payload.get("content_type", "text")
        if isinstance(payload.get("content"), str) and payload["content"].strip():
            assert message["content"] == payload["content"]
    else:
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        problem = response.json()
        assert problem["status"] == response.status_code and problem["detail"]
        assert after == before
