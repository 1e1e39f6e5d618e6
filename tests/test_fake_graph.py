"""The fake Graph API answers like Meta's, over real HTTP: tests and the sandbox rely on its shapes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import httpx
import pytest

from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, FakeGraphState, serve_fake_graph

TOKEN = "EAAG-test-token"
PHONE_NUMBER_ID = "106540352242922"
WABA_ID = "102290129340398"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    state = FakeGraphState()
    state.add_token(TOKEN)
    state.add_phone_number(PHONE_NUMBER_ID, "+1 555-010-2030", verified_name="Acme Support")
    with serve_fake_graph(state) as server:
        yield server


@pytest.fixture
def http(graph: FakeGraphServer) -> Iterator[httpx.Client]:
    graph.state.reset()
    with httpx.Client(base_url=graph.base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def test_sending_a_text_answers_with_contacts_and_a_wamid(graph: FakeGraphServer, http: httpx.Client) -> None:
    body = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"body": "Hello", "preview_url": False},
    }
    response = http.post(f"/{PHONE_NUMBER_ID}/messages", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["messaging_product"] == "whatsapp"
    assert answer["contacts"] == [{"input": "+16505551234", "wa_id": "16505551234"}]
    assert answer["messages"][0]["id"].startswith("wamid.")
    assert graph.state.sent_messages() == [body]
    recorded = graph.state.requests_to("messages")[0]
    assert recorded.headers["authorization"] == f"Bearer {TOKEN}"
    assert recorded.path == f"/v23.0/{PHONE_NUMBER_ID}/messages"


def test_templates_are_accepted_and_mark_read_answers_success(http: httpx.Client) -> None:
    template = {
        "messaging_product": "whatsapp",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "hello_world", "language": {"code": "en_US"}},
    }
    sent = http.post(f"/{PHONE_NUMBER_ID}/messages", json=template).json()
    assert sent["messages"][0]["message_status"] == "accepted"
    read = http.post(
        f"/{PHONE_NUMBER_ID}/messages",
        json={"messaging_product": "whatsapp", "status": "read", "message_id": sent["messages"][0]["id"]},
    )
    assert read.json() == {"success": True}


def test_a_wrong_token_gets_metas_oauth_error(http: httpx.Client) -> None:
    response = http.get(f"/{PHONE_NUMBER_ID}", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["type"] == "OAuthException"
    assert error["code"] == 190
    assert "fbtrace_id" in error
    assert http.get(f"/{PHONE_NUMBER_ID}", headers={"Authorization": ""}).status_code == 401


def test_phone_number_details(http: httpx.Client) -> None:
    details = http.get(f"/{PHONE_NUMBER_ID}").json()
    assert details["display_phone_number"] == "+1 555-010-2030"
    assert details["verified_name"] == "Acme Support"
    assert details["quality_rating"] == "GREEN"
    assert details["id"] == PHONE_NUMBER_ID
    only = http.get(f"/{PHONE_NUMBER_ID}", params={"fields": "verified_name"}).json()
    assert only == {"verified_name": "Acme Support", "id": PHONE_NUMBER_ID}


def test_media_upload_then_info_then_download_with_the_token(
    graph: FakeGraphServer, http: httpx.Client
) -> None:
    content = b"\x89PNG fake image bytes"
    uploaded = http.post(
        f"/{PHONE_NUMBER_ID}/media",
        data={"messaging_product": "whatsapp", "type": "image/png"},
        files={"file": ("photo.png", content, "image/png")},
    )
    assert uploaded.status_code == 200
    media_id = uploaded.json()["id"]
    info = http.get(f"/{media_id}").json()
    assert info["messaging_product"] == "whatsapp"
    assert info["mime_type"] == "image/png"
    assert info["sha256"] == hashlib.sha256(content).hexdigest()
    assert info["file_size"] == len(content)
    assert info["id"] == media_id
    with httpx.Client() as plain:
        assert plain.get(info["url"]).status_code == 401
        downloaded = plain.get(info["url"], headers={"Authorization": f"Bearer {TOKEN}"})
    assert downloaded.status_code == 200
    assert downloaded.content == content
    assert downloaded.headers["content-type"] == "image/png"
    assert http.delete(f"/{media_id}").json() == {"success": True}
    assert http.get(f"/{media_id}").status_code == 400


def test_templates_are_listed_in_pages(graph: FakeGraphServer, http: httpx.Client) -> None:
    for n in range(3):
        graph.state.add_template(WABA_ID, f"order_update_{n}", body="Order {{1}} is on its way")
    first = http.get(f"/{WABA_ID}/message_templates", params={"limit": 2}).json()
    assert [t["name"] for t in first["data"]] == ["order_update_0", "order_update_1"]
    assert first["data"][0]["status"] == "APPROVED"
    assert first["data"][0]["components"] == [{"type": "BODY", "text": "Order {{1}} is on its way"}]
    second = httpx.get(first["paging"]["next"], headers=http.headers).json()
    assert [t["name"] for t in second["data"]] == ["order_update_2"]
    assert "next" not in second["paging"]


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        ("rate_limit", 429, 130429),
        ("too_many_messages", 429, 80007),
        ("server_error", 500, 1),
        ("unavailable", 503, 2),
        ("reengagement", 400, 131047),
        ("expired_token", 401, 190),
    ],
)
def test_it_fails_the_next_calls_on_demand(
    graph: FakeGraphServer, http: httpx.Client, error: str, status: int, code: int
) -> None:
    graph.state.fail_next(error, times=2, endpoint="messages")
    body = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "x"}}
    assert http.get(f"/{PHONE_NUMBER_ID}").status_code == 200  # another endpoint is unaffected
    for _ in range(2):
        failed = http.post(f"/{PHONE_NUMBER_ID}/messages", json=body)
        assert failed.status_code == status
        assert failed.json()["error"]["code"] == code
    assert http.post(f"/{PHONE_NUMBER_ID}/messages", json=body).status_code == 200


def test_another_process_drives_it_through_the_control_endpoints(graph: FakeGraphServer) -> None:
    with httpx.Client(base_url=graph.root_url) as control:
        control.post("/_fake/reset")
        assert control.post("/_fake/fail", json={"error": "rate_limit", "endpoint": "messages"}).json() == {
            "ok": True
        }
        assert control.post("/_fake/fail", json={"error": "no-such-error"}).status_code == 400
        media_id = control.post("/_fake/media", files={"file": ("voice.ogg", b"OggS", "audio/ogg")}).json()[
            "id"
        ]
        body = {"messaging_product": "whatsapp", "to": "1555", "type": "text", "text": {"body": "x"}}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        url = f"{graph.base_url}/{PHONE_NUMBER_ID}/messages"
        assert httpx.post(url, json=body, headers=headers).status_code == 429
        assert httpx.post(url, json=body, headers=headers).status_code == 200
        assert httpx.get(f"{graph.base_url}/{media_id}", headers=headers).json()["mime_type"] == "audio/ogg"
        seen = control.get("/_fake/requests").json()["requests"]
        assert [(r["endpoint"], r["status"]) for r in seen] == [
            ("messages", 429),
            ("messages", 200),
            ("media_info", 200),
        ]
        assert control.get("/_fake/requests", params={"since": 2}).json()["requests"][0]["endpoint"] == (
            "media_info"
        )


def test_bad_send_bodies_get_invalid_parameter(http: httpx.Client) -> None:
    for body in ({"to": "1555", "text": {"body": "x"}}, {"messaging_product": "whatsapp", "type": "text"}):
        response = http.post(f"/{PHONE_NUMBER_ID}/messages", json=body)
        assert response.status_code == 400
        assert response.json()["error"]["code"] == 100
