"""Inbound WhatsApp Cloud API over real HTTP: Meta's signed webhooks in, conversations out.

The live app's Graph URL points at the fake Graph API, so media is fetched over HTTP exactly as
from Meta. Payloads come from ``tests/whatsapp_payloads.py`` (Meta's documented shapes).
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests import whatsapp_payloads as wa
from tests.support import Actor, LiveServer, assert_problem, new_account, start_live_server, unique
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, FakeGraphState, serve_fake_graph

Db = psycopg.Connection[tuple[Any, ...]]
ENV_VERIFY_TOKEN = "instance-wide-verify-token"
_customers = itertools.count(87650000)
HOOK = "/webhooks/whatsapp/cloud"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    with serve_fake_graph(FakeGraphState()) as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, graph: FakeGraphServer) -> Iterator[LiveServer]:
    with start_live_server(
        database_url,
        data_root / "app-whatsapp-inbound",
        WHATSAPP_GRAPH_URL=graph.base_url,
        WHATSAPP_WEBHOOK_VERIFY_TOKEN=ENV_VERIFY_TOKEN,
        WHATSAPP_CLOUD_API_TOKEN="instance-token",
    ) as server:
        yield server


@dataclass
class CloudInbox:
    admin: Actor
    id: int
    channel: dict[str, str]

    @property
    def phone_number_id(self) -> str:
        return self.channel["phone_number_id"]

    @property
    def app_secret(self) -> str:
        return self.channel["app_secret"]


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Actor:
    with httpx.Client(base_url=live.url) as http:
        return new_account(live, http)


def make_cloud_inbox(client: httpx.Client, admin: Actor, graph: FakeGraphServer, **body: Any) -> CloudInbox:
    channel = wa.cloud_channel()
    graph.state.add_token(channel["access_token"])
    response = client.post(
        admin.path("inboxes"),
        json={"name": unique("WhatsApp"), "channel": channel, **body},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return CloudInbox(admin, int(response.json()["id"]), channel)


@pytest.fixture
def inbox(client: httpx.Client, admin: Actor, graph: FakeGraphServer) -> CloudInbox:
    return make_cloud_inbox(client, admin, graph)


def post(client: httpx.Client, inbox: CloudInbox, body: Any) -> httpx.Response:
    raw, headers = wa.signed(body, inbox.app_secret)
    return client.post(HOOK, content=raw, headers=headers)


def deliver(client: httpx.Client, inbox: CloudInbox, body: Any) -> dict[str, Any]:
    response = post(client, inbox, body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def events_done(db: Db, inbox: CloudInbox) -> bool:
    row = db.execute(
        "SELECT count(*) FILTER (WHERE processed_at IS NULL) FROM whatsapp_inbound_events "
        "WHERE inbox_id = %s",
        (inbox.id,),
    ).fetchone()
    return row is not None and row[0] == 0


def settle(db: Db, inbox: CloudInbox) -> None:
    wa.wait_for(lambda: events_done(db, inbox), what="webhook events processed")


def stored(db: Db, inbox: CloudInbox, wamid: str) -> dict[str, Any] | None:
    row = db.execute(
        "SELECT id, conversation_id, message_type, content, content_type, content_attributes, status, "
        "external_error, sender_type, sender_id FROM messages WHERE inbox_id = %s AND source_id = %s",
        (inbox.id, wamid),
    ).fetchone()
    if row is None:
        return None
    keys = [
        "id",
        "conversation_id",
        "message_type",
        "content",
        "content_type",
        "content_attributes",
        "status",
        "external_error",
        "sender_type",
        "sender_id",
    ]
    return dict(zip(keys, row, strict=True))


def receive(
    client: httpx.Client, db: Db, inbox: CloudInbox, item: dict[str, Any], sender: str
) -> dict[str, Any]:
    """Deliver one customer message and wait until it is a stored message."""
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, item))
    settle(db, inbox)
    message = stored(db, inbox, item["id"])
    assert message is not None, f"message {item['id']} was not stored"
    return message


def count(db: Db, sql: str, *args: Any) -> int:
    row = db.execute(sql, args).fetchone()
    assert row is not None
    return int(row[0])


def customer() -> str:
    """A customer's wa_id: a valid Brazilian mobile number, without the ``+``."""
    return "55119" + str(next(_customers)).rjust(8, "0")


# --- connecting an inbox ---------------------------------------------------------------------------


def test_creating_a_cloud_inbox_creates_its_whatsapp_instance(
    client: httpx.Client, db_conn: Db, admin: Actor, graph: FakeGraphServer
) -> None:
    inbox = make_cloud_inbox(client, admin, graph)
    row = db_conn.execute(
        "SELECT account_id, connection_type, status, phone_number, settings->>'phone_number_id', "
        "instance_key "
        "FROM whatsapp_instances WHERE inbox_id = %s",
        (inbox.id,),
    ).fetchone()
    assert row is not None
    assert row[:3] == (admin.account_id, "cloud_api", "pending")
    assert row[3].startswith("+55119") and row[4] == inbox.phone_number_id and len(row[5]) == 32
    assert graph.state.requests_to("phone_number") == []  # creating does not call Meta
    changed = client.patch(
        admin.path(f"inboxes/{inbox.id}"),
        json={"channel": {"phone_number": "+55 11 98765 0000"}},
        headers=admin.headers,
    )
    assert changed.status_code == 200, changed.text
    phone = db_conn.execute("SELECT phone_number FROM whatsapp_instances WHERE inbox_id = %s", (inbox.id,))
    assert phone.fetchone() == ("+5511987650000",)


# --- the handshake ---------------------------------------------------------------------------------


def test_handshake_echoes_the_challenge_for_an_inbox_verify_token(
    client: httpx.Client, inbox: CloudInbox
) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": inbox.channel["verify_token"],
        "hub.challenge": "1158201444",
    }
    response = client.get(HOOK, params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


def test_handshake_accepts_the_instance_wide_verify_token(client: httpx.Client) -> None:
    params = {"hub.mode": "subscribe", "hub.verify_token": ENV_VERIFY_TOKEN, "hub.challenge": "42"}
    assert client.get(HOOK, params=params).text == "42"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {"hub.mode": "unsubscribe", "hub.verify_token": ENV_VERIFY_TOKEN, "hub.challenge": "1"},
        {"hub.mode": "subscribe", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_with_a_wrong_token_or_mode_is_403(client: httpx.Client, params: dict[str, str]) -> None:
    assert_problem(client.get(HOOK, params=params), 403, field="hub.verify_token")


# --- signatures and bad bodies ---------------------------------------------------------------------


def test_missing_or_wrong_signature_is_401_and_nothing_is_stored(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    item = wa.text_message(customer(), "hello")
    raw = wa.encode(wa.inbound(inbox.phone_number_id, item["from"], item))
    for headers in (
        {},
        {"X-Hub-Signature-256": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": wa.signature(raw, "another-apps-secret")},
        {"X-Hub-Signature-256": "sha1=" + "0" * 40},
        {"X-Hub-Signature-256": wa.signature(raw + b" ", inbox.app_secret)},
    ):
        assert_problem(client.post(HOOK, content=raw, headers=headers), 401, field="X-Hub-Signature-256")
    assert count(db_conn, "SELECT count(*) FROM whatsapp_inbound_events WHERE inbox_id = %s", inbox.id) == 0
    assert count(db_conn, "SELECT count(*) FROM messages WHERE source_id = %s", item["id"]) == 0


def test_a_changed_app_secret_verifies_at_once_though_the_route_is_cached(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    assert (
        deliver(client, inbox, wa.inbound(inbox.phone_number_id, "1555", wa.text_message("1555", "a")))[
            "stored"
        ]
        == 1
    )  # the route (and the old secret) is now cached in the server
    response = client.patch(
        inbox.admin.path(f"inboxes/{inbox.id}"),
        json={"channel": {"type": "whatsapp_cloud", "app_secret": "a-new-app-secret"}},
        headers=inbox.admin.headers,
    )
    assert response.status_code == 200, response.text
    item = wa.text_message("1555", "b")
    raw, headers = wa.signed(wa.inbound(inbox.phone_number_id, "1555", item), "a-new-app-secret")
    answer = client.post(HOOK, content=raw, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["stored"] == 1
    assert count(db_conn, "SELECT count(*) FROM whatsapp_inbound_events WHERE inbox_id = %s", inbox.id) == 2


def test_non_json_and_truncated_bodies_are_400(client: httpx.Client, inbox: CloudInbox) -> None:
    good = wa.encode(wa.inbound(inbox.phone_number_id, "1555", wa.text_message("1555", "hi")))
    for raw in (b"not json", good[: len(good) // 2], b"[1, 2]", b'{"a": NaN}', b"\xff\xfe"):
        headers = {"X-Hub-Signature-256": wa.signature(raw, inbox.app_secret)}
        assert_problem(client.post(HOOK, content=raw, headers=headers), 400, field="body")


def test_a_huge_body_is_413(client: httpx.Client, inbox: CloudInbox) -> None:
    raw = b'{"object": "whatsapp_business_account", "pad": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    response = client.post(
        HOOK, content=raw, headers={"X-Hub-Signature-256": wa.signature(raw, inbox.app_secret)}
    )
    assert_problem(response, 413)


def test_unknown_phone_number_id_is_200_and_nothing_stored(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    item = wa.text_message("15550001", "to nobody")
    before = count(db_conn, "SELECT count(*) FROM whatsapp_inbound_events")
    answer = deliver(client, inbox, wa.inbound("999000999000999", "15550001", item))
    assert answer == {"stored": 0, "duplicates": 0, "ignored": 1}
    assert count(db_conn, "SELECT count(*) FROM whatsapp_inbound_events") == before


def test_unknown_object_is_200_and_nothing_stored(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    body = wa.inbound(inbox.phone_number_id, "1555", wa.text_message("1555", "hi"))
    body["object"] = "instagram"
    assert deliver(client, inbox, body)["stored"] == 0
    assert count(db_conn, "SELECT count(*) FROM whatsapp_inbound_events WHERE inbox_id = %s", inbox.id) == 0


def test_other_webhook_fields_are_200_and_ignored(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": wa.WABA_ID,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": "APPROVED",
                            "message_template_id": 1,
                            "message_template_name": "x",
                        },
                    }
                ],
            }
        ],
    }
    assert deliver(client, inbox, body)["ignored"] == 1


# --- messages ----------------------------------------------------------------------------------------


def test_a_text_message_opens_a_conversation_with_the_contact(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    item = wa.text_message(sender, "Olá, preciso de ajuda 🙏")
    answer = deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, item, name="Ana Souza"))
    assert answer == {"stored": 1, "duplicates": 0, "ignored": 0}
    settle(db_conn, inbox)
    message = stored(db_conn, inbox, item["id"])
    assert message is not None
    assert (message["message_type"], message["content"], message["content_type"]) == (
        "incoming",
        "Olá, preciso de ajuda 🙏",
        "text",
    )
    contact = db_conn.execute(
        "SELECT name, phone_number FROM contacts WHERE id = %s", (message["sender_id"],)
    )
    assert contact.fetchone() == ("Ana Souza", "+" + sender)
    wa_contact = db_conn.execute(
        "SELECT c.whatsapp_id, c.profile_name FROM whatsapp_contacts c JOIN whatsapp_instances i "
        "ON i.id = c.whatsapp_instance_id WHERE i.inbox_id = %s",
        (inbox.id,),
    ).fetchall()
    assert wa_contact == [(sender, "Ana Souza")]
    wa_message = db_conn.execute(
        "SELECT whatsapp_message_id FROM whatsapp_messages WHERE message_id = %s", (message["id"],)
    ).fetchone()
    assert wa_message == (item["id"],)
    listed = client.get(
        inbox.admin.path("conversations"), params={"inbox_id": inbox.id}, headers=inbox.admin.headers
    ).json()["data"]
    assert len(listed) == 1 and listed[0]["status"] == "open"


def test_the_same_wamid_delivered_twice_is_stored_once(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    item = wa.text_message(sender, "retry me")
    body = wa.inbound(inbox.phone_number_id, sender, item)
    assert deliver(client, inbox, body)["stored"] == 1
    assert deliver(client, inbox, body) == {"stored": 0, "duplicates": 1, "ignored": 0}
    settle(db_conn, inbox)
    assert count(db_conn, "SELECT count(*) FROM messages WHERE source_id = %s", item["id"]) == 1


def test_concurrent_duplicate_deliveries_store_one_message(
    live: LiveServer, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    items = [wa.text_message(sender, f"burst {n}") for n in range(5)]
    bodies = [wa.inbound(inbox.phone_number_id, sender, item) for item in items] * 4

    def send(body: dict[str, Any]) -> int:
        with httpx.Client(base_url=live.url, timeout=30) as http:
            return post(http, inbox, body).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(send, bodies)) == {200}
    settle(db_conn, inbox)
    for item in items:
        assert count(db_conn, "SELECT count(*) FROM messages WHERE source_id = %s", item["id"]) == 1
    assert (
        count(
            db_conn,
            "SELECT count(*) FROM contacts c JOIN contact_inboxes ci ON ci.contact_id = c.id "
            "WHERE ci.inbox_id = %s AND ci.source_id = %s",
            inbox.id,
            sender,
        )
        == 1
    )
    assert count(db_conn, "SELECT count(*) FROM conversations WHERE inbox_id = %s", inbox.id) == 1


def test_one_delivery_with_many_messages_and_contacts(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    senders = [customer() for _ in range(3)]
    items = [wa.text_message(s, f"from {s}") for s in senders]
    body = wa.delivery(
        inbox.phone_number_id, messages=items, contacts=[wa.contact(s, f"Name {s}") for s in senders]
    )
    assert deliver(client, inbox, body)["stored"] == 3
    settle(db_conn, inbox)
    names = {
        row[0]
        for row in db_conn.execute(
            "SELECT c.name FROM messages m JOIN contacts c ON c.id = m.sender_id WHERE m.source_id = ANY(%s)",
            ([i["id"] for i in items],),
        )
    }
    assert names == {f"Name {s}" for s in senders}
    assert count(db_conn, "SELECT count(*) FROM conversations WHERE inbox_id = %s", inbox.id) == 3


@pytest.mark.parametrize(
    ("kind", "content", "expected_type", "expected_content", "expected_attributes"),
    [
        (
            "location",
            wa.location(-23.5505, -46.6333, "Loja Centro", "Praça da Sé"),
            "location",
            "Loja Centro",
            {"latitude": -23.5505, "longitude": -46.6333, "name": "Loja Centro", "address": "Praça da Sé"},
        ),
        (
            "interactive",
            wa.button_reply("yes-1", "Yes, please"),
            "text",
            "Yes, please",
            {"interactive_reply": {"type": "button_reply", "id": "yes-1", "title": "Yes, please"}},
        ),
        (
            "interactive",
            wa.list_reply("row-2", "Tuesday", "Afternoon"),
            "text",
            "Tuesday",
            {
                "interactive_reply": {
                    "type": "list_reply",
                    "id": "row-2",
                    "title": "Tuesday",
                    "description": "Afternoon",
                }
            },
        ),
        (
            "button",
            {"payload": "STOP_PROMOS", "text": "Stop promotions"},
            "text",
            "Stop promotions",
            {"button": {"payload": "STOP_PROMOS", "text": "Stop promotions"}},
        ),
        (
            "order",
            {
                "catalog_id": "123",
                "text": "Please deliver",
                "product_items": [
                    {"product_retailer_id": "sku-1", "quantity": 2, "item_price": 9.5, "currency": "BRL"}
                ],
            },
            "text",
            "Please deliver",
            {
                "order": {
                    "catalog_id": "123",
                    "text": "Please deliver",
                    "product_items": [
                        {
                            "product_retailer_id": "sku-1",
                            "quantity": 2.0,
                            "item_price": 9.5,
                            "currency": "BRL",
                        }
                    ],
                }
            },
        ),
        (
            "system",
            {"body": "Customer changed their number", "new_wa_id": "15550009", "type": "user_changed_number"},
            "text",
            "Customer changed their number",
            {
                "system": {
                    "body": "Customer changed their number",
                    "new_wa_id": "15550009",
                    "type": "user_changed_number",
                }
            },
        ),
    ],
)
def test_structured_message_types_are_stored(
    client: httpx.Client,
    db_conn: Db,
    inbox: CloudInbox,
    kind: str,
    content: dict[str, Any],
    expected_type: str,
    expected_content: str,
    expected_attributes: dict[str, Any],
) -> None:
    sender = customer()
    message = receive(client, db_conn, inbox, wa.message(sender, kind, content), sender)
    assert (message["content_type"], message["content"]) == (expected_type, expected_content)
    attributes = message["content_attributes"]
    for key, value in expected_attributes.items():
        assert attributes[key] == value, (key, attributes)
    if kind == "location":
        row = db_conn.execute(
            "SELECT location_data FROM whatsapp_messages WHERE message_id = %s", (message["id"],)
        )
        assert row.fetchone() == (expected_attributes,)


def test_a_contacts_message_keeps_the_vcard_and_a_contact_card(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    card = wa.contact_card("Bruno Lima", "+55 11 98765 4321", "bruno@example.com")
    message = receive(client, db_conn, inbox, wa.message(sender, "contacts", card), sender)
    assert message["content_type"] == "contact_card"
    assert message["content_attributes"]["contacts"] == [
        {
            "name": "Bruno Lima",
            "phone_number": "+55 11 98765 4321",
            "wa_id": "5511987654321",
            "email": "bruno@example.com",
        }
    ]
    vcard = db_conn.execute(
        "SELECT contact_vcard FROM whatsapp_messages WHERE message_id = %s", (message["id"],)
    )
    text = vcard.fetchone()[0]
    assert text.startswith("BEGIN:VCARD") and "FN:Bruno Lima" in text and "waid=5511987654321" in text
    assert "EMAIL;type=WORK:bruno@example.com" in text


@pytest.mark.parametrize("kind", ["unsupported", "hologram"])
def test_unsupported_and_unknown_types_are_visible(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox, kind: str
) -> None:
    sender = customer()
    errors = [wa.meta_error(131051, "Message type unknown", "Message type is currently not supported.")]
    message = receive(
        client, db_conn, inbox, wa.message(sender, kind, {"some": "thing"}, errors=errors), sender
    )
    assert message["content_type"] == "unsupported"
    assert "Message type unknown" in message["content"]
    assert message["content_attributes"]["unsupported"]["type"] == kind


def test_media_is_fetched_from_the_graph_api_and_stored_as_an_attachment(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox, graph: FakeGraphServer
) -> None:
    content = b"\xff\xd8\xff\xe0 a tiny jpeg"
    media_id = graph.state.add_media(content, "image/jpeg")
    sender = customer()
    message = receive(
        client, db_conn, inbox, wa.message(sender, "image", wa.image(media_id, "My receipt")), sender
    )
    assert (message["content_type"], message["content"]) == ("image", "My receipt")

    def attachment() -> Any:
        return db_conn.execute(
            "SELECT file_type, mime_type, byte_size, storage_key, sha256 FROM attachments "
            "WHERE message_id = %s",
            (message["id"],),
        ).fetchone()

    row = wa.wait_for(attachment, what="media attachment")
    assert row[:3] == ("image", "image/jpeg", len(content))
    lookups = [r for r in graph.state.requests_to("media_info") if r.path.endswith(media_id)]
    downloads = [r for r in graph.state.requests_to("media_download") if media_id in r.path]
    assert lookups and downloads
    assert downloads[-1].headers["authorization"] == f"Bearer {inbox.channel['access_token']}"
    wa_row = db_conn.execute(
        "SELECT media_type, media_id, media_status, media_url FROM whatsapp_messages WHERE message_id = %s",
        (message["id"],),
    ).fetchone()
    assert wa_row[:3] == ("image", media_id, "stored") and "/_media/" in wa_row[3]
    conversation = message["conversation_id"]
    listed = client.get(
        inbox.admin.path(f"conversations/{conversation}/messages"), headers=inbox.admin.headers
    ).json()["data"]
    shown = next(m for m in listed if m["id"] == message["id"])
    data_url = shown["attachments"][0]["data_url"]
    downloaded = client.get(data_url, headers=inbox.admin.headers)
    assert downloaded.status_code == 200 and downloaded.content == content


@pytest.mark.parametrize(
    ("kind", "body_of", "content_type", "file_type"),
    [
        ("audio", lambda m: wa.audio(m, voice=True), "audio", "audio"),
        (
            "video",
            lambda m: {"id": m, "mime_type": "video/mp4", "sha256": "x", "caption": "clip"},
            "video",
            "video",
        ),
        ("document", lambda m: wa.document(m, "invoice-42.pdf", "Invoice"), "file", "file"),
        (
            "sticker",
            lambda m: {"id": m, "mime_type": "image/webp", "sha256": "x", "animated": False},
            "sticker",
            "image",
        ),
    ],
)
def test_every_media_type_is_downloaded(
    client: httpx.Client,
    db_conn: Db,
    inbox: CloudInbox,
    graph: FakeGraphServer,
    kind: str,
    body_of: Any,
    content_type: str,
    file_type: str,
) -> None:
    mime = {
        "audio": "audio/ogg",
        "video": "video/mp4",
        "document": "application/pdf",
        "sticker": "image/webp",
    }[kind]
    media_id = graph.state.add_media(b"%PDF- or other bytes " + kind.encode(), mime)
    sender = customer()
    message = receive(client, db_conn, inbox, wa.message(sender, kind, body_of(media_id)), sender)
    assert message["content_type"] == content_type
    if kind == "audio":
        assert message["content_attributes"]["voice"] is True
    row = wa.wait_for(
        lambda: db_conn.execute(
            "SELECT file_type, mime_type, file_name FROM attachments WHERE message_id = %s", (message["id"],)
        ).fetchone(),
        what="attachment",
    )
    assert row[0] == file_type and row[1] == mime
    if kind == "document":
        assert row[2] == "invoice-42.pdf"


def test_media_that_meta_no_longer_has_is_marked_on_the_message(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    message = receive(
        client, db_conn, inbox, wa.message(sender, "image", wa.image("987654321012345")), sender
    )

    def failed() -> Any:
        row = db_conn.execute(
            "SELECT w.media_status, m.content_attributes FROM whatsapp_messages w JOIN messages m "
            "ON m.id = w.message_id WHERE w.message_id = %s",
            (message["id"],),
        ).fetchone()
        return row if row and row[0] == "failed" else None

    row = wa.wait_for(failed, what="media failure recorded")
    assert "media lookup" in row[1]["media_error"]


# --- replies, reactions, edits, revokes, context ---------------------------------------------------


def test_a_reply_links_to_the_quoted_message(client: httpx.Client, db_conn: Db, inbox: CloudInbox) -> None:
    sender = customer()
    first = receive(client, db_conn, inbox, wa.text_message(sender, "first"), sender)
    first_wamid = db_conn.execute("SELECT source_id FROM messages WHERE id = %s", (first["id"],)).fetchone()[
        0
    ]
    reply = wa.text_message(sender, "about that", context={"from": sender, "id": first_wamid})
    message = receive(client, db_conn, inbox, reply, sender)
    assert message["content_attributes"]["in_reply_to"] == first["id"]
    assert message["content_attributes"]["in_reply_to_external_id"] == first_wamid


def test_a_reaction_is_shown_on_the_message_it_reacts_to(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    target = wa.text_message(sender, "thanks!")
    receive(client, db_conn, inbox, target, sender)
    before = count(db_conn, "SELECT count(*) FROM messages WHERE inbox_id = %s", inbox.id)
    deliver(
        client,
        inbox,
        wa.inbound(
            inbox.phone_number_id, sender, wa.message(sender, "reaction", wa.reaction(target["id"], "❤️"))
        ),
    )
    settle(db_conn, inbox)
    reactions = stored(db_conn, inbox, target["id"])["content_attributes"]["reactions"]  # type: ignore[index]
    assert [(r["emoji"], r["from"]) for r in reactions] == [("❤️", sender)]
    assert count(db_conn, "SELECT count(*) FROM messages WHERE inbox_id = %s", inbox.id) == before
    later = str(int(wa.now()) + 5)
    removal = wa.message(sender, "reaction", wa.reaction(target["id"], ""), timestamp=later)
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, removal))
    settle(db_conn, inbox)
    assert stored(db_conn, inbox, target["id"])["content_attributes"]["reactions"] == []  # type: ignore[index]


def test_a_reaction_that_arrives_before_its_message_is_applied_once_the_message_is_stored(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    target = wa.text_message(sender, "late message")
    deliver(
        client,
        inbox,
        wa.inbound(
            inbox.phone_number_id, sender, wa.message(sender, "reaction", wa.reaction(target["id"], "👍"))
        ),
    )
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, target))

    def reacted() -> Any:
        message = stored(db_conn, inbox, target["id"])
        return message and message["content_attributes"].get("reactions")

    assert wa.wait_for(reacted, what="reaction applied")[0]["emoji"] == "👍"


def test_an_edit_changes_the_original_and_keeps_its_history(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    original = wa.text_message(sender, "see you at 10")
    receive(client, db_conn, inbox, original, sender)
    edit = wa.message(
        sender,
        "edit",
        {
            "original_message_id": original["id"],
            "message": {"type": "text", "text": {"body": "see you at 11"}},
        },
    )
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, edit))
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, edit))  # Meta's retry
    settle(db_conn, inbox)
    message = stored(db_conn, inbox, original["id"])
    assert message is not None and message["content"] == "see you at 11"
    history = message["content_attributes"]["edit_history"]
    assert [h["content"] for h in history] == ["see you at 10"]
    assert message["content_attributes"]["edited"] is True
    assert stored(db_conn, inbox, edit["id"]) is None  # not a new bubble


def test_a_revoke_marks_the_original_deleted(client: httpx.Client, db_conn: Db, inbox: CloudInbox) -> None:
    sender = customer()
    original = wa.text_message(sender, "oops, wrong chat")
    receive(client, db_conn, inbox, original, sender)
    revoke = wa.message(sender, "revoke", {"original_message_id": original["id"]})
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, revoke))
    settle(db_conn, inbox)
    message = stored(db_conn, inbox, original["id"])
    assert message is not None and message["content"] is None
    assert message["content_attributes"]["deleted"] is True


def test_referral_forwarded_flags_and_newer_fields_are_kept(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    referral = {
        "source_url": "https://fb.me/abc",
        "source_id": "120210",
        "source_type": "ad",
        "headline": "Summer sale",
        "body": "Up to 50% off",
        "media_type": "image",
        "image_url": "https://example.com/ad.jpg",
        "ctwa_clid": "ARAkLkA",
    }
    item = wa.text_message(
        sender,
        "I saw your ad",
        referral=referral,
        context={"forwarded": True, "frequently_forwarded": True},
        from_user_id="US.13491208655302741918",
        parent_user_id="US.ENT.1",
        some_future_field={"nested": [1, 2, 3]},
    )
    body = wa.inbound(inbox.phone_number_id, sender, item)
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["user_id"] = "US.13491208655302741918"
    body["entry"][0]["changes"][0]["value"]["brand_new_block"] = {"x": 1}
    deliver(client, inbox, body)
    settle(db_conn, inbox)
    message = stored(db_conn, inbox, item["id"])
    assert message is not None
    attributes = message["content_attributes"]
    assert attributes["referral"] == referral
    assert attributes["forwarded"] is True and attributes["frequently_forwarded"] is True
    assert attributes["whatsapp"] == {
        "from_user_id": "US.13491208655302741918",
        "user_id": "US.13491208655302741918",
        "parent_user_id": "US.ENT.1",
    }
    business_id = db_conn.execute(
        "SELECT c.business_user_id FROM whatsapp_contacts c "
        "JOIN whatsapp_instances i ON i.id = c.whatsapp_instance_id "
        "WHERE i.inbox_id = %s AND c.whatsapp_id = %s",
        (inbox.id, sender),
    ).fetchone()
    assert business_id == ("US.13491208655302741918",)


def test_a_resolved_conversation_reopens_on_a_new_message(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    first = receive(client, db_conn, inbox, wa.text_message(sender, "hi"), sender)
    conversation = first["conversation_id"]
    resolved = client.post(
        inbox.admin.path(f"conversations/{conversation}/toggle_status"),
        json={"status": "resolved"},
        headers=inbox.admin.headers,
    )
    assert resolved.status_code == 200, resolved.text
    again = receive(client, db_conn, inbox, wa.text_message(sender, "me again"), sender)
    assert again["conversation_id"] == conversation
    status = db_conn.execute("SELECT status FROM conversations WHERE id = %s", (conversation,)).fetchone()
    assert status == ("open",)


# --- statuses ---------------------------------------------------------------------------------------


def outgoing(db: Db, inbox: CloudInbox, conversation_id: int, wamid: str, status: str = "sent") -> int:
    """An agent's reply as the send job leaves it: sent to Meta, with Meta's wamid."""
    row = db.execute(
        "INSERT INTO messages (account_id, conversation_id, inbox_id, message_type, content, content_type, "
        "status, source_id, sender_type) "
        "VALUES (%s, %s, %s, 'outgoing', 'reply', 'text', %s, %s, 'user') RETURNING id",
        (inbox.admin.account_id, conversation_id, inbox.id, status, wamid),
    ).fetchone()
    assert row is not None
    return int(row[0])


def delivery_status(db: Db, message_id: int) -> tuple[str, str | None]:
    row = db.execute("SELECT status, external_error FROM messages WHERE id = %s", (message_id,)).fetchone()
    assert row is not None
    return row[0], row[1]


def test_statuses_move_a_reply_forward_and_never_back(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    first = receive(client, db_conn, inbox, wa.text_message(sender, "hi"), sender)
    wamid = wa.wamid()
    reply = outgoing(db_conn, inbox, first["conversation_id"], wamid)
    deliver(
        client, inbox, wa.delivery(inbox.phone_number_id, statuses=[wa.status(wamid, "delivered", sender)])
    )
    settle(db_conn, inbox)
    assert delivery_status(db_conn, reply) == ("delivered", None)
    # read, then a late "delivered" and a duplicate "sent": still read.
    deliver(client, inbox, wa.delivery(inbox.phone_number_id, statuses=[wa.status(wamid, "read", sender)]))
    deliver(
        client,
        inbox,
        wa.delivery(
            inbox.phone_number_id,
            statuses=[wa.status(wamid, "sent", sender), wa.status(wamid, "delivered", sender)],
        ),
    )
    settle(db_conn, inbox)
    assert delivery_status(db_conn, reply) == ("read", None)


def test_a_failed_status_records_metas_code_and_title(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    first = receive(client, db_conn, inbox, wa.text_message(sender, "hi"), sender)
    wamid = wa.wamid()
    reply = outgoing(db_conn, inbox, first["conversation_id"], wamid)
    error = wa.meta_error(
        131047, "Re-engagement message", "More than 24 hours have passed since the customer last replied"
    )
    deliver(
        client,
        inbox,
        wa.delivery(inbox.phone_number_id, statuses=[wa.status(wamid, "failed", sender, errors=[error])]),
    )
    settle(db_conn, inbox)
    status, external_error = delivery_status(db_conn, reply)
    assert status == "failed"
    assert (
        external_error is not None
        and "Re-engagement message" in external_error
        and "131047" in external_error
    )


def test_a_status_that_arrives_before_the_wamid_is_stored_is_applied_on_retry(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    first = receive(client, db_conn, inbox, wa.text_message(sender, "hi"), sender)
    wamid = wa.wamid()
    deliver(
        client, inbox, wa.delivery(inbox.phone_number_id, statuses=[wa.status(wamid, "delivered", sender)])
    )
    wa.wait_for(
        lambda: count(
            db_conn,
            "SELECT count(*) FROM whatsapp_inbound_events WHERE event_key = %s AND attempts >= 1",
            f"{wamid}:delivered",
        ),
        what="first attempt",
    )
    reply = outgoing(db_conn, inbox, first["conversation_id"], wamid)
    wa.wait_for(lambda: delivery_status(db_conn, reply)[0] == "delivered", what="status applied on retry")


def test_a_status_for_a_message_that_never_existed_changes_nothing(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    wamid = wa.wamid()
    before = count(db_conn, "SELECT count(*) FROM messages")
    assert (
        deliver(
            client, inbox, wa.delivery(inbox.phone_number_id, statuses=[wa.status(wamid, "read", "1555")])
        )["stored"]
        == 1
    )
    row = wa.wait_for(
        lambda: db_conn.execute(
            "SELECT attempts, processed_at FROM whatsapp_inbound_events "
            "WHERE event_key = %s AND attempts >= 1",
            (f"{wamid}:read",),
        ).fetchone(),
        what="status retried",
    )
    assert row[1] is None  # still waiting for the message, bounded by MAX_WAITS
    assert count(db_conn, "SELECT count(*) FROM messages") == before


def test_inbound_events_keep_the_raw_payload_for_the_record(
    client: httpx.Client, db_conn: Db, inbox: CloudInbox
) -> None:
    sender = customer()
    item = wa.text_message(sender, "keep me")
    deliver(client, inbox, wa.inbound(inbox.phone_number_id, sender, item))
    settle(db_conn, inbox)
    row = db_conn.execute(
        "SELECT kind, payload, outcome FROM whatsapp_inbound_events WHERE inbox_id = %s AND event_key = %s",
        (inbox.id, item["id"]),
    ).fetchone()
    assert row is not None
    assert row[0] == "message" and row[2] == "stored"
    assert row[1]["message"] == json.loads(json.dumps(item))
    assert row[1]["contact"]["wa_id"] == sender
