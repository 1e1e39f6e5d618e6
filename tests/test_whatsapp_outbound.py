"""Agents' replies reach WhatsApp: each content type's exact Cloud API payload, as the fake Graph
server received it over HTTP; read receipts; the 24-hour window; the connection check."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conversation_support import Db, count, messages
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account
from tests.whatsapp_outbound_support import (
    cloud_inbox,
    customer_writes,
    live_with_graph,
    reply,
    wa_id,
    wait_for_jobs,
    wait_for_message,
)
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, serve_fake_graph

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
PDF = b"%PDF-1.4\n" + b"x" * 64


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    with serve_fake_graph() as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, graph: FakeGraphServer) -> Iterator[LiveServer]:
    with live_with_graph(database_url, data_root / "app-whatsapp-outbound", graph) as server:
        yield server


@pytest.fixture(autouse=True)
def fresh_graph(graph: FakeGraphServer) -> None:
    graph.state.reset()


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Actor:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        return new_account(live, http)


@pytest.fixture(scope="module")
def inbox(live: LiveServer, admin: Actor) -> dict[str, Any]:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        return cloud_inbox(http, admin)


@pytest.fixture
def chat(live: LiveServer, admin: Actor, inbox: dict[str, Any]) -> dict[str, Any]:
    """A customer who just wrote in (the 24-hour window is open)."""
    customer = wa_id()
    conversation_id, message_id, wamid = customer_writes(live, admin.account_id, inbox["id"], customer)
    return {"conversation_id": conversation_id, "message_id": message_id, "wamid": wamid, "wa_id": customer}


def _sent(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any], **body: Any
) -> Any:
    """Send a reply, wait for its job, and return (the message, the one payload Meta received)."""
    created = reply(client, admin, chat["conversation_id"], **body)
    assert created["status"] == "pending"
    settled = wait_for_message(client, admin, chat["conversation_id"], created["id"])
    assert settled["status"] == "sent", settled
    assert settled["source_id"].startswith("wamid.") and settled["external_error"] is None
    return settled, graph.state.sent_messages()


def _envelope(chat: dict[str, Any], kind: str) -> dict[str, Any]:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": chat["wa_id"],
        "type": kind,
    }


def test_text_reply_is_sent_with_link_preview_and_quoted_message(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    settled, payloads = _sent(
        graph,
        client,
        admin,
        chat,
        content="See https://example.com/track",
        content_attributes={"preview_url": True, "in_reply_to": chat["message_id"]},
    )
    assert payloads == [
        {
            **_envelope(chat, "text"),
            "text": {"preview_url": True, "body": "See https://example.com/track"},
            "context": {"message_id": chat["wamid"]},
        }
    ]
    (request,) = graph.state.requests_to("messages", "POST")
    inbox_path = request.path.rsplit("/", 2)
    assert inbox_path[-1] == "messages"
    assert request.headers["authorization"] == "Bearer EAAG-test-token"
    assert settled["external_error"] is None


def test_plain_text_reply_has_no_preview_and_no_context(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    _settled, payloads = _sent(graph, client, admin, chat, content="Thanks!")
    assert payloads == [{**_envelope(chat, "text"), "text": {"preview_url": False, "body": "Thanks!"}}]


def test_the_sent_status_and_wamid_reach_the_agent_as_message_updated(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any], db_conn: Db
) -> None:
    settled, _ = _sent(graph, client, admin, chat, content="ping")
    updates = count(
        db_conn,
        "SELECT count(*) FROM events WHERE event_type = 'message.updated' AND (payload->>'id')::bigint = %s "
        "AND payload->>'status' = 'sent' AND payload->>'source_id' = %s",
        settled["id"],
        settled["source_id"],
    )
    assert updates == 1


def _upload(
    client: httpx.Client, admin: Actor, chat: dict[str, Any], data: dict[str, str], files: Any
) -> Any:
    response = client.post(
        admin.path(f"conversations/{chat['conversation_id']}/messages"),
        data=data,
        files=files,
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_image_is_uploaded_then_sent_by_media_id_with_its_caption(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    created = _upload(
        client,
        admin,
        chat,
        {"content": "Your receipt", "content_type": "image"},
        [("attachments[]", ("receipt.png", PNG, "image/png"))],
    )
    settled = wait_for_message(client, admin, chat["conversation_id"], created["id"])
    assert settled["status"] == "sent", settled
    (upload,) = graph.state.requests_to("media_upload")
    assert upload.form == {"messaging_product": "whatsapp", "type": "image/png"}
    assert upload.files is not None
    assert upload.files["file"]["filename"] == "receipt.png"
    assert upload.files["file"]["content"] == PNG
    (payload,) = graph.state.sent_messages()
    media_id = payload["image"]["id"]
    assert graph.state.media[media_id].content == PNG
    assert payload == {**_envelope(chat, "image"), "image": {"id": media_id, "caption": "Your receipt"}}


def test_document_keeps_its_file_name_and_audio_has_no_caption(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    document = _upload(
        client,
        admin,
        chat,
        {"content": "The invoice", "content_type": "file"},
        [("attachments[]", ("invoice 2024.pdf", PDF, "application/pdf"))],
    )
    assert wait_for_message(client, admin, chat["conversation_id"], document["id"])["status"] == "sent"
    (payload,) = graph.state.sent_messages()
    assert payload == {
        **_envelope(chat, "document"),
        "document": {
            "id": payload["document"]["id"],
            "caption": "The invoice",
            "filename": "invoice 2024.pdf",
        },
    }
    graph.state.reset()
    voice = _upload(
        client,
        admin,
        chat,
        {"content_type": "audio"},
        [("attachments[]", ("note.ogg", b"OggS" + b"0" * 40, "audio/ogg"))],
    )
    assert wait_for_message(client, admin, chat["conversation_id"], voice["id"])["status"] == "sent"
    (payload,) = graph.state.sent_messages()
    assert payload == {**_envelope(chat, "audio"), "audio": {"id": payload["audio"]["id"]}}


def test_location_payload(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    attributes = {
        "latitude": -23.5505,
        "longitude": -46.6333,
        "name": "Store",
        "address": "Av. Paulista, 1000",
    }
    _settled, payloads = _sent(
        graph, client, admin, chat, content_type="location", content_attributes=attributes
    )
    assert payloads == [{**_envelope(chat, "location"), "location": attributes}]


def test_reaction_targets_the_wamid_of_the_message_it_reacts_to(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    _settled, payloads = _sent(
        graph,
        client,
        admin,
        chat,
        content="👍",
        content_type="reaction",
        content_attributes={"in_reply_to": chat["message_id"]},
    )
    assert payloads == [
        {**_envelope(chat, "reaction"), "reaction": {"message_id": chat["wamid"], "emoji": "👍"}}
    ]


def test_reaction_to_a_message_of_another_conversation_fails_with_a_reason(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    chat: dict[str, Any],
    inbox: dict[str, Any],
) -> None:
    _other, other_message, _ = customer_writes(live, admin.account_id, inbox["id"], wa_id())
    created = reply(
        client,
        admin,
        chat["conversation_id"],
        content="👍",
        content_type="reaction",
        content_attributes={"in_reply_to": other_message},
    )
    settled = wait_for_message(client, admin, chat["conversation_id"], created["id"])
    assert settled["status"] == "failed"
    assert "reacted to" in settled["external_error"]
    assert graph.state.sent_messages() == []


def test_interactive_reply_buttons_payload(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    attributes = {
        "type": "button",
        "header": "Your order",
        "footer": "WhatWut Store",
        "buttons": [{"id": "confirm", "title": "Confirm"}, {"id": "cancel", "title": "Cancel"}],
    }
    _settled, payloads = _sent(
        graph,
        client,
        admin,
        chat,
        content="Confirm the delivery?",
        content_type="interactive",
        content_attributes=attributes,
    )
    assert payloads == [
        {
            **_envelope(chat, "interactive"),
            "interactive": {
                "type": "button",
                "header": {"type": "text", "text": "Your order"},
                "body": {"text": "Confirm the delivery?"},
                "footer": {"text": "WhatWut Store"},
                "action": {
                    "buttons": [
                        {"type": "reply", "reply": {"id": "confirm", "title": "Confirm"}},
                        {"type": "reply", "reply": {"id": "cancel", "title": "Cancel"}},
                    ]
                },
            },
        }
    ]


def test_interactive_list_payload(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    attributes = {
        "type": "list",
        "button_text": "Pick a slot",
        "section_title": "Tomorrow",
        "buttons": [
            {"id": "am", "title": "Morning", "description": "8:00-12:00"},
            {"id": "pm", "title": "Afternoon"},
        ],
    }
    _settled, payloads = _sent(
        graph,
        client,
        admin,
        chat,
        content="When should we come?",
        content_type="interactive",
        content_attributes=attributes,
    )
    assert payloads[0]["interactive"] == {
        "type": "list",
        "body": {"text": "When should we come?"},
        "action": {
            "button": "Pick a slot",
            "sections": [
                {
                    "title": "Tomorrow",
                    "rows": [
                        {"id": "am", "title": "Morning", "description": "8:00-12:00"},
                        {"id": "pm", "title": "Afternoon"},
                    ],
                }
            ],
        },
    }


def test_contact_card_payload(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    attributes = {
        "contacts": [{"name": "Ana Support", "phone_number": "+55 11 5555-0000", "email": "ana@example.com"}]
    }
    _settled, payloads = _sent(
        graph, client, admin, chat, content_type="contact_card", content_attributes=attributes
    )
    (payload,) = payloads
    assert payload["type"] == "contacts" and payload["to"] == chat["wa_id"]
    assert payload["contacts"] == [
        {
            "name": {"formatted_name": "Ana Support", "first_name": "Ana Support"},
            "phones": [{"phone": "+55 11 5555-0000", "type": "CELL"}],
            "emails": [{"email": "ana@example.com", "type": "WORK"}],
        }
    ]


def test_private_notes_never_reach_whatsapp(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any], db_conn: Db
) -> None:
    note = reply(client, admin, chat["conversation_id"], content="internal only", private=True)
    assert note["status"] == "sent"
    jobs = count(
        db_conn,
        "SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'whatsapp.deliver_message' "
        "AND (args->>'message_id')::bigint = %s",
        note["id"],
    )
    assert jobs == 0
    time.sleep(0.3)
    assert graph.state.sent_messages() == []


def test_replies_in_an_api_inbox_defer_no_whatsapp_job(
    client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    from tests.conversation_support import make_contact, make_inbox, start_conversation

    api_inbox = make_inbox(client, admin)
    conversation = start_conversation(client, admin, api_inbox, make_contact(db_conn, admin.account_id))
    created = reply(client, admin, conversation["id"], content="hello")
    assert created["status"] == "sent"
    assert (
        count(
            db_conn,
            "SELECT count(*) FROM procrastinate_jobs WHERE (args->>'message_id')::bigint = %s",
            created["id"],
        )
        == 0
    )


# --- read receipts ---------------------------------------------------------------------------------


def _read_receipts(graph: FakeGraphServer) -> list[Any]:
    return [
        r.json for r in graph.state.requests_to("messages", "POST") if (r.json or {}).get("status") == "read"
    ]


def test_opening_a_conversation_marks_the_latest_incoming_message_read_once(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    inbox: dict[str, Any],
    db_conn: Db,
) -> None:
    customer = wa_id()
    conversation_id, _first, _ = customer_writes(live, admin.account_id, inbox["id"], customer, "one")
    _c, _second, latest = customer_writes(live, admin.account_id, inbox["id"], customer, "two")
    seen = client.post(admin.path(f"conversations/{conversation_id}/update_last_seen"), headers=admin.headers)
    assert seen.status_code == 200, seen.text
    graph.state.wait_for_requests("messages", 1)
    wait_for_jobs(db_conn, "whatsapp.mark_read", 1)
    assert _read_receipts(graph) == [
        {"messaging_product": "whatsapp", "status": "read", "message_id": latest}
    ]
    # Opening it again (or another agent opening it) sends nothing more for the same messages.
    other = add_user(live, client, admin.account_id, role="administrator")
    for actor in (admin, other):
        response = client.post(
            actor.path(f"conversations/{conversation_id}/update_last_seen"), headers=actor.headers
        )
        assert response.status_code == 200
    wait_for_jobs(db_conn, "whatsapp.mark_read", 2)
    time.sleep(0.3)
    assert len(_read_receipts(graph)) == 1
    _c, _third, newest = customer_writes(live, admin.account_id, inbox["id"], customer, "three")
    client.post(admin.path(f"conversations/{conversation_id}/update_last_seen"), headers=admin.headers)
    graph.state.wait_for_requests("messages", 2)
    assert [r["message_id"] for r in _read_receipts(graph)] == [latest, newest]


def test_opening_the_conversation_page_sends_the_read_receipt_too(
    live: LiveServer, graph: FakeGraphServer, client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    from tests.support import PASSWORD

    conversation_id, _m, wamid = customer_writes(live, admin.account_id, inbox["id"], wa_id(), "hi there")
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        page = browser.get("/login")
        csrf = browser.cookies.get("whatwut_login_csrf")
        signed_in = browser.post(
            "/login", data={"email": admin.email, "password": PASSWORD, "csrf_token": csrf, "next": "/"}
        )
        assert signed_in.status_code == 303, page.text
        opened = browser.get(f"/app/accounts/{admin.account_id}/conversations/{conversation_id}")
        assert opened.status_code == 200
    graph.state.wait_for_requests("messages", 1)
    assert _read_receipts(graph) == [{"messaging_product": "whatsapp", "status": "read", "message_id": wamid}]


# --- the 24-hour window ----------------------------------------------------------------------------


def test_the_conversation_shows_whether_the_24_hour_window_is_open_and_until_when(
    client: httpx.Client, admin: Actor, chat: dict[str, Any], db_conn: Db
) -> None:
    path = admin.path(f"conversations/{chat['conversation_id']}")
    shown = client.get(path, headers=admin.headers).json()
    last = datetime.fromisoformat(shown["last_incoming_at"])
    assert shown["service_window"]["open"] is True
    assert datetime.fromisoformat(shown["service_window"]["expires_at"]) == last + timedelta(hours=24)
    long_ago = datetime.now(UTC) - timedelta(hours=25)
    db_conn.execute(
        "UPDATE conversations SET last_incoming_at = %s WHERE id = %s", (long_ago, chat["conversation_id"])
    )
    closed = client.get(path, headers=admin.headers).json()["service_window"]
    assert closed["open"] is False
    assert datetime.fromisoformat(closed["expires_at"]) == long_ago + timedelta(hours=24)
    listed = client.get(admin.path("conversations"), params={"status": "all"}, headers=admin.headers).json()[
        "data"
    ]
    assert next(c for c in listed if c["id"] == chat["conversation_id"])["service_window"]["open"] is False


def test_a_conversation_the_customer_never_wrote_in_has_a_closed_window(
    client: httpx.Client, admin: Actor, inbox: dict[str, Any], db_conn: Db
) -> None:
    from tests.conversation_support import make_contact, start_conversation

    conversation = start_conversation(client, admin, inbox["id"], make_contact(db_conn, admin.account_id))
    assert conversation["service_window"] == {"open": False, "expires_at": None}


# --- check connection ------------------------------------------------------------------------------


def _instance_status(db: Db, inbox_id: int) -> str:
    row = db.execute("SELECT status FROM whatsapp_instances WHERE inbox_id = %s", (inbox_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_check_connection_reports_the_phone_details_and_marks_the_instance_connected(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    created = cloud_inbox(client, admin)
    phone_number_id = created["channel"]["phone_number_id"]
    graph.state.add_phone_number(phone_number_id, "+1 555-010-0042", verified_name="Acme Support")
    response = client.post(admin.path(f"inboxes/{created['id']}/whatsapp/check"), headers=admin.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is True and report["status"] == "connected" and report["error"] is None
    assert report["phone"]["display_phone_number"] == "+1 555-010-0042"
    assert report["phone"]["verified_name"] == "Acme Support"
    (request,) = graph.state.requests_to("phone_number")
    assert request.path.endswith(f"/{phone_number_id}")
    assert _instance_status(db_conn, created["id"]) == "connected"


def test_check_connection_with_a_bad_token_says_meta_rejected_it(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    created = cloud_inbox(client, admin)
    graph.state.fail_next("expired_token", endpoint="phone_number")
    response = client.post(admin.path(f"inboxes/{created['id']}/whatsapp/check"), headers=admin.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["ok"] is False and report["status"] == "error" and report["code"] == 190
    assert report["error"].startswith(
        "Meta rejected the access token (code 190): Error validating access token"
    )
    assert report["retryable"] is False
    assert _instance_status(db_conn, created["id"]) == "error"
    audit = count(
        db_conn,
        "SELECT count(*) FROM audit_logs WHERE action = 'whatsapp.connection_checked' AND subject_id = %s",
        created["id"],
    )
    assert audit == 1


def test_check_connection_is_for_administrators_of_the_account_and_cloud_inboxes_only(
    live: LiveServer, client: httpx.Client, admin: Actor, inbox: dict[str, Any]
) -> None:
    from tests.conversation_support import make_inbox

    agent = add_user(live, client, admin.account_id)
    assert_problem(
        client.post(agent.path(f"inboxes/{inbox['id']}/whatsapp/check"), headers=agent.headers), 403
    )
    stranger = new_account(live, client)
    assert_problem(
        client.post(stranger.path(f"inboxes/{inbox['id']}/whatsapp/check"), headers=stranger.headers), 404
    )
    api_inbox = make_inbox(client, admin)
    assert_problem(
        client.post(admin.path(f"inboxes/{api_inbox}/whatsapp/check"), headers=admin.headers),
        422,
        field="inbox_id",
    )
    assert_problem(client.post(admin.path("inboxes/99999999/whatsapp/check"), headers=admin.headers), 404)


def test_messages_list_shows_the_delivery_for_each_reply(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, chat: dict[str, Any]
) -> None:
    first = reply(client, admin, chat["conversation_id"], content="one")
    second = reply(client, admin, chat["conversation_id"], content="two")
    for created in (first, second):
        assert wait_for_message(client, admin, chat["conversation_id"], created["id"])["status"] == "sent"
    listed = {m["id"]: m for m in messages(client, admin, chat["conversation_id"])}
    wamids = {listed[first["id"]]["source_id"], listed[second["id"]]["source_id"]}
    assert len(wamids) == 2
    assert sorted(p["text"]["body"] for p in graph.state.sent_messages()) == ["one", "two"]
