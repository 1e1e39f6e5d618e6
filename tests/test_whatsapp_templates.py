"""WhatsApp message templates: synced from the fake Graph API (paged), listed, checked before a send,
and sent with their variables as Meta's components."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conversation_support import Db, count
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account
from tests.whatsapp_outbound_support import (
    cloud_inbox,
    customer_writes,
    live_with_graph,
    reply,
    wa_id,
    wait_for_message,
)
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, serve_fake_graph

ORDER_UPDATE = [
    {"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
    {"type": "BODY", "text": "Hi {{1}}, your order {{2}} ships on {{3}}."},
    {"type": "FOOTER", "text": "WhatWut Store"},
    {
        "type": "BUTTONS",
        "buttons": [
            {"type": "URL", "text": "Track", "url": "https://example.com/track/{{1}}"},
            {"type": "QUICK_REPLY", "text": "Stop"},
        ],
    },
]


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    with serve_fake_graph() as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, graph: FakeGraphServer) -> Iterator[LiveServer]:
    with live_with_graph(database_url, data_root / "app-whatsapp-templates", graph) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_graph(graph: FakeGraphServer) -> None:
    graph.state.reset()


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Actor:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        return new_account(live, http)


@pytest.fixture(scope="module")
def inbox(live: LiveServer, admin: Actor, graph: FakeGraphServer) -> dict[str, Any]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        created = cloud_inbox(http, admin)
    waba = created["channel"]["business_account_id"]
    graph.state.add_template(waba, "hello_world", body="Hello {{1}}, welcome!")
    graph.state.add_template(waba, "order_update", language="pt_BR", components=ORDER_UPDATE)
    graph.state.add_template(
        waba,
        "greeting_named",
        components=[{"type": "BODY", "text": "Hi {{first_name}}, code {{code}}"}],
    )
    graph.state.templates[waba][-1]["parameter_format"] = "NAMED"
    graph.state.add_template(
        waba,
        "receipt_pdf",
        components=[{"type": "HEADER", "format": "DOCUMENT"}, {"type": "BODY", "text": "Your receipt"}],
    )
    graph.state.add_template(waba, "under_review", status="PENDING")
    graph.state.add_template(waba, "was_rejected", status="REJECTED", category="MARKETING")
    with httpx.Client(base_url=live.url, timeout=30) as http:
        synced = http.post(
            admin.path(f"inboxes/{created['id']}/whatsapp/templates/sync"), headers=admin.headers
        )
    assert synced.status_code == 200, synced.text
    assert synced.json() == {"synced": 6, "approved": 4, "removed": 0}
    return created


@pytest.fixture
def conversation_id(live: LiveServer, admin: Actor, inbox: dict[str, Any]) -> int:
    conversation, _message, _wamid = customer_writes(live, admin.account_id, inbox["id"], wa_id())
    return conversation


def _templates(client: httpx.Client, actor: Actor, inbox_id: int, **params: Any) -> dict[str, Any]:
    response = client.get(
        actor.path(f"inboxes/{inbox_id}/whatsapp/templates"), params=params, headers=actor.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- sync and list -----------------------------------------------------------------------------------


def test_synced_templates_are_listed_with_every_field(
    client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    listed = _templates(client, admin, inbox["id"])["data"]
    assert [(t["name"], t["language"], t["status"]) for t in listed] == [
        ("greeting_named", "en_US", "APPROVED"),
        ("hello_world", "en_US", "APPROVED"),
        ("order_update", "pt_BR", "APPROVED"),
        ("receipt_pdf", "en_US", "APPROVED"),
        ("under_review", "en_US", "PENDING"),
        ("was_rejected", "en_US", "REJECTED"),
    ]
    order = next(t for t in listed if t["name"] == "order_update")
    assert order["components"] == ORDER_UPDATE
    assert order["category"] == "UTILITY" and order["body_parameter_count"] == 3
    assert next(t for t in listed if t["name"] == "greeting_named")["parameter_format"] == "NAMED"
    approved = _templates(client, admin, inbox["id"], status="APPROVED")["data"]
    assert len(approved) == 4


def test_sync_follows_meta_s_pages_and_forgets_deleted_templates(
    live: LiveServer, graph: FakeGraphServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    created = cloud_inbox(client, admin)
    waba = created["channel"]["business_account_id"]
    for n in range(130):
        graph.state.add_template(waba, f"bulk_{n:03d}", body=f"Template {n} for {{{{1}}}}")
    path = admin.path(f"inboxes/{created['id']}/whatsapp/templates/sync")
    first = client.post(path, headers=admin.headers)
    assert first.json() == {"synced": 130, "approved": 130, "removed": 0}
    assert len(graph.state.requests_to("templates")) == 2
    # Paged listing of what was stored: cursors walk all 130 in name order.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor:
            params["cursor"] = cursor
        page = _templates(client, admin, created["id"], **params)
        seen += [t["name"] for t in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"bulk_{n:03d}" for n in range(130)]
    graph.state.templates[waba] = graph.state.templates[waba][:100]
    graph.state.templates[waba][0]["status"] = "PAUSED"
    second = client.post(path, headers=admin.headers)
    assert second.json() == {"synced": 100, "approved": 99, "removed": 30}
    stored = count(db_conn, "SELECT count(*) FROM whatsapp_templates WHERE inbox_id = %s", created["id"])
    assert stored == 100
    assert _templates(client, admin, created["id"], status="PAUSED")["data"][0]["name"] == "bulk_000"
    assert (
        count(
            db_conn,
            "SELECT count(*) FROM audit_logs WHERE action = 'whatsapp.templates_synced' AND subject_id = %s",
            created["id"],
        )
        == 2
    )


def test_sync_with_a_bad_token_is_a_422_naming_the_token_and_keeps_the_old_copy(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    graph.state.fail_next("invalid_token", endpoint="templates")
    response = client.post(
        admin.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=admin.headers
    )
    body = assert_problem(response, 422, field="channel.access_token")
    assert str(body["detail"]).startswith("Meta rejected the access token (code 190)")
    assert len(_templates(client, admin, inbox["id"])["data"]) == 6


def test_sync_when_meta_is_down_is_a_502(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    graph.state.fail_next("unavailable", endpoint="templates")
    response = client.post(
        admin.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=admin.headers
    )
    assert_problem(response, 502)


def test_agents_list_templates_of_their_inboxes_but_only_administrators_sync(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    agent = add_user(live, client, admin.account_id)
    assert_problem(
        client.get(agent.path(f"inboxes/{inbox['id']}/whatsapp/templates"), headers=agent.headers), 404
    )
    response = client.post(
        admin.path(f"inboxes/{inbox['id']}/members"),
        json={"user_ids": [agent.user_id]},
        headers=admin.headers,
    )
    assert response.status_code == 200
    assert len(_templates(client, agent, inbox["id"])["data"]) == 6
    sync = client.post(agent.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=agent.headers)
    assert_problem(sync, 403)
    stranger = new_account(live, client)
    assert_problem(
        client.get(stranger.path(f"inboxes/{inbox['id']}/whatsapp/templates"), headers=stranger.headers), 404
    )
    assert_problem(
        client.post(
            stranger.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=stranger.headers
        ),
        404,
    )


def test_bad_list_parameters_are_refused(client: httpx.Client, admin: Actor, inbox: dict[str, Any]) -> None:
    path = admin.path(f"inboxes/{inbox['id']}/whatsapp/templates")
    assert_problem(client.get(path, params={"status": "NOPE"}, headers=admin.headers), 422, field="status")
    assert_problem(client.get(path, params={"cursor": "garbage"}, headers=admin.headers), 422, field="cursor")
    assert_problem(client.get(path, params={"limit": 0}, headers=admin.headers), 422, field="limit")


# --- sending -----------------------------------------------------------------------------------------


def _template(**spec: Any) -> dict[str, Any]:
    return {"content_type": "template", "content_attributes": {"template": spec}}


def test_a_template_is_sent_with_its_variables_as_components(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    created = reply(
        client,
        admin,
        conversation_id,
        **_template(
            name="order_update",
            language="pt_BR",
            parameters=["Ana", "#1234", "Friday"],
            header_parameters=["#1234"],
            button_parameters=[{"index": 0, "text": "1234"}],
        ),
    )
    assert created["content"] == "Hi Ana, your order #1234 ships on Friday."
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "sent", settled
    (payload,) = graph.state.sent_messages()
    assert payload["type"] == "template"
    assert payload["template"] == {
        "name": "order_update",
        "language": {"code": "pt_BR"},
        "components": [
            {"type": "header", "parameters": [{"type": "text", "text": "#1234"}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Ana"},
                    {"type": "text", "text": "#1234"},
                    {"type": "text", "text": "Friday"},
                ],
            },
            {
                "type": "button",
                "sub_type": "url",
                "index": "0",
                "parameters": [{"type": "text", "text": "1234"}],
            },
        ],
    }


def test_named_variables_and_a_document_header(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    named = reply(
        client,
        admin,
        conversation_id,
        **_template(name="greeting_named", language="en_US", parameters={"code": "X1", "first_name": "Bo"}),
    )
    assert named["content"] == "Hi Bo, code X1"
    assert wait_for_message(client, admin, conversation_id, named["id"])["status"] == "sent"
    document = reply(
        client,
        admin,
        conversation_id,
        **_template(
            name="receipt_pdf",
            language="en_US",
            header_media={"type": "document", "link": "https://example.com/r.pdf", "filename": "r.pdf"},
        ),
    )
    assert wait_for_message(client, admin, conversation_id, document["id"])["status"] == "sent"
    first, second = graph.state.sent_messages()
    assert first["template"]["components"] == [
        {
            "type": "body",
            "parameters": [
                {"type": "text", "parameter_name": "first_name", "text": "Bo"},
                {"type": "text", "parameter_name": "code", "text": "X1"},
            ],
        }
    ]
    assert second["template"]["components"] == [
        {
            "type": "header",
            "parameters": [
                {"type": "document", "document": {"link": "https://example.com/r.pdf", "filename": "r.pdf"}}
            ],
        }
    ]


def test_a_template_without_variables_needs_no_parameters(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int, inbox: dict[str, Any]
) -> None:
    graph.state.add_template(
        inbox["channel"]["business_account_id"], "plain_notice", body="We are open today."
    )
    client.post(admin.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=admin.headers)
    created = reply(client, admin, conversation_id, **_template(name="plain_notice", language="en_US"))
    assert wait_for_message(client, admin, conversation_id, created["id"])["status"] == "sent"
    (payload,) = [p for p in graph.state.sent_messages() if p["type"] == "template"]
    assert payload["template"] == {"name": "plain_notice", "language": {"code": "en_US"}}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ({"name": "nope", "language": "en_US"}, "template.name", "not among this inbox's synced templates"),
        ({"name": "hello_world", "language": "pt_BR"}, "template.name", "not among"),
        ({"name": "under_review", "language": "en_US"}, "template.name", "is PENDING"),
        ({"name": "was_rejected", "language": "en_US"}, "template.name", "is REJECTED"),
        ({"name": "hello_world", "language": "en_US"}, "template.parameters", "1 body variable(s); 0 given"),
        (
            {"name": "hello_world", "language": "en_US", "parameters": ["a", "b"]},
            "template.parameters",
            "2 given",
        ),
        (
            {"name": "greeting_named", "language": "en_US", "parameters": ["Bo", "X1"]},
            "template.parameters",
            "named body variables",
        ),
        (
            {"name": "greeting_named", "language": "en_US", "parameters": {"first_name": "Bo"}},
            "template.parameters",
            "exactly those keys",
        ),
        (
            {"name": "order_update", "language": "pt_BR", "parameters": ["a", "b", "c"]},
            "template.header_parameters",
            "1 header variable",
        ),
        (
            {
                "name": "order_update",
                "language": "pt_BR",
                "parameters": ["a", "b", "c"],
                "header_parameters": ["x"],
            },
            "template.button_parameters",
            "button index",
        ),
        ({"name": "receipt_pdf", "language": "en_US"}, "template.header_media", "document header"),
        (
            {
                "name": "hello_world",
                "language": "en_US",
                "parameters": ["a"],
                "header_media": {"type": "image", "id": "1"},
            },
            "template.header_media",
            "no media header",
        ),
        (
            {"name": "receipt_pdf", "language": "en_US", "header_media": {"type": "document"}},
            "header_media",
            "exactly one",
        ),
        ({"name": "hello_world", "language": "en_US", "parameters": [""]}, "parameters", "at least 1"),
        ({"name": "Hello", "language": "en_US"}, "template.name", "pattern"),
        ({"name": "hello_world"}, "template.language", "required"),
    ],
)
def test_a_template_send_is_refused_unless_synced_approved_and_filled(
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    db_conn: Db,
    spec: dict[str, Any],
    field: str,
    words: str,
) -> None:
    before = count(db_conn, "SELECT count(*) FROM messages WHERE conversation_id = %s", conversation_id)
    response = client.post(
        admin.path(f"conversations/{conversation_id}/messages"), json=_template(**spec), headers=admin.headers
    )
    body = assert_problem(response, 422, field=field)
    assert words in str(body["detail"]), body
    assert (
        count(db_conn, "SELECT count(*) FROM messages WHERE conversation_id = %s", conversation_id) == before
    )
    assert graph.state.sent_messages() == []


def test_raw_components_pass_through_for_shapes_the_fields_do_not_cover(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    raw = [
        {
            "type": "body",
            "parameters": [
                {
                    "type": "currency",
                    "currency": {"fallback_value": "$10", "code": "USD", "amount_1000": 10000},
                }
            ],
        }
    ]
    created = reply(
        client, admin, conversation_id, **_template(name="hello_world", language="en_US", components=raw)
    )
    assert wait_for_message(client, admin, conversation_id, created["id"])["status"] == "sent"
    (payload,) = graph.state.sent_messages()
    assert payload["template"]["components"] == raw
