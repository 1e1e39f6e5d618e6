"""Messages over HTTP: pages, replies and private notes, content types, attachments, incoming."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from tests.conversation_support import (
    Db,
    count,
    make_contact,
    make_contact_inbox,
    make_inbox,
    messages,
    receive,
    start_conversation,
)
from tests.support import Actor, LiveServer, assert_problem, new_account
from whatwut.context import AppContext
from whatwut.conversations import service
from whatwut.db.engine import transaction

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


@pytest.fixture
def conversation(client: httpx.Client, admin: Actor, db_conn: Db) -> dict[str, Any]:
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    return start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id, "Rita"))


def _post(client: httpx.Client, admin: Actor, conversation: dict[str, Any], **kwargs: Any) -> httpx.Response:
    return client.post(
        admin.path(f"conversations/{conversation['id']}/messages"), headers=admin.headers, **kwargs
    )


def _stored(db: Db, conversation: dict[str, Any]) -> int:
    return count(db, "SELECT count(*) FROM messages WHERE conversation_id = %s", conversation["id"])


def test_reply_is_outgoing_from_the_agent(
    client: httpx.Client, admin: Actor, conversation: dict[str, Any], db_conn: Db
) -> None:
    response = _post(client, admin, conversation, json={"content": "  Olá! 👋  "})
    assert response.status_code == 201, response.text
    message = response.json()
    assert message["message_type"] == "outgoing" and message["content"] == "  Olá! 👋  "
    assert message["sender"] == {"type": "user", "id": admin.user_id, "name": "Test User"}
    assert message["status"] == "sent"  # an API inbox has no channel to wait for
    assert message["private"] is False and message["attachments"] == []
    assert set(message) >= {"id", "content_type", "content_attributes", "source_id", "created_at"}
    published = count(
        db_conn,
        "SELECT count(*) FROM events WHERE event_type = 'message.created' AND (payload->>'id')::bigint = %s",
        message["id"],
    )
    assert published == 1


def test_private_note_is_kept_apart(client: httpx.Client, admin: Actor, conversation: dict[str, Any]) -> None:
    note = _post(client, admin, conversation, json={"content": "customer is angry", "private": True}).json()
    assert note["private"] is True and note["status"] == "sent"
    (listed,) = messages(client, admin, conversation["id"])
    assert listed["private"] is True and listed["content"] == "customer is angry"


def test_messages_come_newest_page_first_oldest_first_within(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    contact = make_contact(db_conn, admin.account_id, "Paulo")
    contact_inbox = make_contact_inbox(db_conn, admin.account_id, contact, inbox)
    for n in range(1, 8):
        receive(live, admin.account_id, inbox, contact_inbox, f"m{n}")
    conversation_id = client.get(admin.path("conversations"), headers=admin.headers).json()["data"][0]["id"]
    path = admin.path(f"conversations/{conversation_id}/messages")
    first = client.get(path, params={"limit": 3}, headers=admin.headers).json()
    assert [m["content"] for m in first["data"]] == ["m5", "m6", "m7"]
    assert first["data"][0]["sender"] == {"type": "contact", "id": contact, "name": "Paulo"}
    second = client.get(
        path, params={"limit": 3, "before": first["meta"]["next_cursor"]}, headers=admin.headers
    )
    assert [m["content"] for m in second.json()["data"]] == ["m2", "m3", "m4"]
    last = client.get(
        path, params={"limit": 3, "before": second.json()["meta"]["next_cursor"]}, headers=admin.headers
    )
    assert [m["content"] for m in last.json()["data"]] == ["m1"] and last.json()["meta"][
        "next_cursor"
    ] is None
    assert_problem(client.get(path, params={"limit": 0}, headers=admin.headers), 422, field="limit")
    assert_problem(client.get(path, params={"before": "x"}, headers=admin.headers), 422, field="before")


def test_duplicate_source_id_is_stored_once(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    contact_inbox = make_contact_inbox(
        db_conn, admin.account_id, make_contact(db_conn, admin.account_id), inbox
    )
    first = receive(live, admin.account_id, inbox, contact_inbox, "hello", source_id="wamid.ABC")
    again = receive(live, admin.account_id, inbox, contact_inbox, "hello", source_id="wamid.ABC")
    assert first is not None and again is None
    assert count(db_conn, "SELECT count(*) FROM messages WHERE source_id = 'wamid.ABC'") == 1
    assert count(db_conn, "SELECT count(*) FROM conversations WHERE inbox_id = %s", inbox) == 1


def test_incoming_text_with_nul_is_made_storable(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    contact_inbox = make_contact_inbox(
        db_conn, admin.account_id, make_contact(db_conn, admin.account_id), inbox
    )
    message_id = receive(
        live, admin.account_id, inbox, contact_inbox, "a\x00b\ud800", content_attributes={"k": "\x00"}
    )
    row = db_conn.execute(
        "SELECT content, content_attributes FROM messages WHERE id = %s", (message_id,)
    ).fetchone()
    assert row == ("ab\ufffd", {"k": ""}) or row == ("ab?", {"k": ""})


@pytest.mark.parametrize(
    ("content_type", "attributes", "content"),
    [
        ("location", {"latitude": -23.55, "longitude": -46.63, "name": "Office"}, None),
        ("contact_card", {"contacts": [{"name": "Ana", "phone_number": "+55 11 5555-0000"}]}, None),
        ("interactive", {"type": "button", "buttons": [{"id": "yes", "title": "Yes"}]}, "Agree?"),
        (
            "interactive",
            {"type": "list", "button_text": "Pick", "buttons": [{"id": "a", "title": "A"}]},
            "Choose",
        ),
        (
            "template",
            {"template": {"name": "order_update", "language": "pt_BR", "components": [{"type": "body"}]}},
            None,
        ),
        ("reaction", {"in_reply_to": 1}, "👍"),
        ("text", {"in_reply_to": 1}, "quoted"),
    ],
)
def test_valid_content_types_are_accepted(
    client: httpx.Client,
    admin: Actor,
    conversation: dict[str, Any],
    content_type: str,
    attributes: dict[str, Any],
    content: str | None,
) -> None:
    body = {"content": content, "content_type": content_type, "content_attributes": attributes}
    response = _post(client, admin, conversation, json=body)
    assert response.status_code == 201, response.text
    assert response.json()["content_type"] == content_type
    assert response.json()["content_attributes"] == attributes


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"content": ""}, "content"),
        ({"content": "   "}, "content"),
        ({}, "content"),
        ({"content": "x" * 4097}, "content"),
        ({"content": "a\u0000b"}, "content"),
        ({"content": 5}, "content"),
        ({"content": "hi", "content_type": "unsupported"}, "content_type"),
        ({"content": "hi", "content_type": "reaction"}, "in_reply_to"),
        ({"content": "hi", "private": "sometimes"}, "private"),
        ({"content": "hi", "unknown": 1}, "unknown"),
        ({"content": "hi", "content_attributes": {"nope": 1}}, "content_attributes.nope"),
        ({"content_type": "location", "content_attributes": {"latitude": 91, "longitude": 0}}, "latitude"),
        ({"content_type": "location", "content_attributes": {"latitude": 0, "longitude": -181}}, "longitude"),
        ({"content_type": "location", "content_attributes": {"latitude": 0}}, "longitude"),
        ({"content_type": "contact_card", "content_attributes": {"contacts": []}}, "contacts"),
        (
            {
                "content": "b",
                "content_type": "interactive",
                "content_attributes": {
                    "type": "button",
                    "buttons": [{"id": str(n), "title": "t"} for n in range(4)],
                },
            },
            "content_attributes",
        ),
        ({"content_type": "interactive", "content_attributes": {"type": "list", "buttons": []}}, "buttons"),
        (
            {
                "content_type": "template",
                "content_attributes": {"template": {"name": "Bad Name", "language": "en"}},
            },
            "name",
        ),
        ({"content_type": "template", "content_attributes": {"name": "flat", "language": "en"}}, "template"),
        ({"content_type": "image"}, "attachments"),
        ({"content": "hi", "private": True, "content_type": "template"}, "content_type"),
    ],
)
def test_invalid_messages_are_refused_and_nothing_is_written(
    client: httpx.Client,
    admin: Actor,
    conversation: dict[str, Any],
    db_conn: Db,
    body: dict[str, Any],
    field: str,
) -> None:
    before = _stored(db_conn, conversation)
    assert_problem(_post(client, admin, conversation, json=body), 422, field=field)
    assert _stored(db_conn, conversation) == before


def test_malformed_json_body_is_a_problem(
    client: httpx.Client, admin: Actor, conversation: dict[str, Any]
) -> None:
    path = admin.path(f"conversations/{conversation['id']}/messages")
    headers = {**admin.headers, "content-type": "application/json"}
    assert_problem(client.post(path, content=b"{nope", headers=headers), 422)
    assert_problem(client.post(path, json=["a"], headers=admin.headers), 422)


def test_attachment_upload_and_download(
    client: httpx.Client, admin: Actor, conversation: dict[str, Any], db_conn: Db
) -> None:
    files = [
        ("attachments[]", ("../../etc/photo one.png", PNG, "image/png")),
        ("attachments[]", ("notes.txt", "olá".encode(), "text/plain")),
    ]
    response = _post(client, admin, conversation, data={"content": "see attached"}, files=files)
    assert response.status_code == 201, response.text
    message = response.json()
    image, text = message["attachments"]
    assert image["file_type"] == "image" and image["file_name"] == "photo one.png"
    assert image["byte_size"] == len(PNG) and text["file_type"] == "file"
    download = client.get(image["data_url"], headers=admin.headers)
    assert download.status_code == 200 and download.content == PNG
    assert download.headers["content-type"] == "image/png"
    assert download.headers["x-content-type-options"] == "nosniff"
    assert 'filename="photo one.png"' in download.headers["content-disposition"]
    row = db_conn.execute("SELECT sha256 FROM attachments WHERE id = %s", (image["id"],)).fetchone()
    assert row == (hashlib.sha256(PNG).hexdigest(),)
    (listed,) = messages(client, admin, conversation["id"])
    assert [a["id"] for a in listed["attachments"]] == [image["id"], text["id"]]


def test_media_message_with_only_an_attachment(
    client: httpx.Client, admin: Actor, conversation: dict[str, Any]
) -> None:
    files = [("attachments[]", ("pic.png", PNG, "image/png"))]
    response = _post(
        client, admin, conversation, data={"content_type": "image", "private": "false"}, files=files
    )
    assert response.status_code == 201, response.text
    assert response.json()["content"] is None and response.json()["content_type"] == "image"


@pytest.mark.parametrize(
    ("files", "data", "field"),
    [
        ([("attachments[]", ("x.exe", b"MZ\x90\x00", "application/x-msdownload"))], {}, "attachments"),
        ([("attachments[]", ("fake.png", b"not a png", "image/png"))], {}, "attachments"),
        ([("attachments[]", ("empty.txt", b"", "text/plain"))], {}, "attachments"),
        (
            [("attachments[]", ("a.txt", b"a", "text/plain"))],
            {"content_attributes": "{not json"},
            "content_attributes",
        ),
        ([("attachments[]", ("a.txt", b"a", "text/plain"))], {"color": "red"}, "color"),
        ([("other", ("a.txt", b"a", "text/plain"))], {}, "other"),
        ([("attachments[]", (f"{n}.txt", b"a", "text/plain")) for n in range(11)], {}, "attachments"),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_written(
    client: httpx.Client,
    admin: Actor,
    conversation: dict[str, Any],
    db_conn: Db,
    files: list[Any],
    data: dict[str, str],
    field: str,
) -> None:
    before = _stored(db_conn, conversation)
    response = _post(client, admin, conversation, data=data, files=files)
    assert response.status_code in (400, 422), response.text
    assert_problem(response, response.status_code)
    if response.status_code == 422:
        assert_problem(response, 422, field=field)
    assert _stored(db_conn, conversation) == before
    assert count(db_conn, "SELECT count(*) FROM attachments WHERE account_id = %s", admin.account_id) == 0


def test_unknown_attachment_is_404(client: httpx.Client, admin: Actor) -> None:
    assert_problem(client.get(admin.path("attachments/999999"), headers=admin.headers), 404)


def test_replies_in_a_whatsapp_inbox_wait_for_the_channel_and_statuses_only_move_forward(
    live: LiveServer, client: httpx.Client, admin: Actor, db_conn: Db
) -> None:
    channel = {
        "type": "whatsapp_cloud",
        "phone_number": "+5511987650000",
        "phone_number_id": "1098765432101",
        "business_account_id": "102290129340398",
        "access_token": "token",
        "app_secret": "secret",
        "verify_token": "verify",
    }
    inbox = make_inbox(client, admin, channel=channel, enable_auto_assignment=False)
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    reply = _post(client, admin, conversation, json={"content": "on it"}).json()
    assert reply["status"] == "pending"
    note = _post(client, admin, conversation, json={"content": "internal", "private": True}).json()
    assert note["status"] == "sent"
    # The reply's delivery job now runs (and fails: this contact has no WhatsApp id); receipts are
    # applied to a pending reply written as the channel would find it.
    row = db_conn.execute(
        "INSERT INTO messages (account_id, conversation_id, inbox_id, message_type, content, status, "
        "sender_type) VALUES (%s, %s, %s, 'outgoing', 'on it', 'pending', 'user') RETURNING id",
        (admin.account_id, conversation["id"], inbox),
    ).fetchone()
    assert row is not None
    pending_id = int(row[0])

    async def receipt(context: AppContext, status: str, source_id: str | None = None) -> str:
        async with transaction(context.sessionmaker) as session:
            message = await service.update_delivery_status(
                session,
                account_id=admin.account_id,
                message_id=pending_id,
                status=status,
                source_id=source_id,
            )
            assert message is not None
            return message.status

    def apply(status: str, source_id: str | None = None) -> str:
        return live.run(lambda context: receipt(context, status, source_id))  # type: ignore[return-value]

    assert apply("sent", "wamid.OUT1") == "sent"
    assert apply("read") == "read"
    assert apply("delivered") == "read"
    assert apply("failed") == "read"
    (listed,) = [m for m in messages(client, admin, conversation["id"]) if m["id"] == pending_id]
    assert listed["status"] == "read" and listed["source_id"] == "wamid.OUT1"
    updates = count(
        db_conn,
        "SELECT count(*) FROM events WHERE event_type = 'message.updated' AND (payload->>'id')::bigint = %s",
        pending_id,
    )
    assert updates == 2
