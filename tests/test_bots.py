"""AI agents over real HTTP: the admin API, the Agent API, signed webhooks, handoff and takeover.

The bot is a small real HTTP server on 127.0.0.1 that records what WhatWut sends it; what it
answers is driven through the Agent API exactly as Wacanda (or any third-party bot) does.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.conversation_support import (
    Db,
    activities,
    make_contact,
    make_contact_inbox,
    make_inbox,
    messages,
    receive,
    set_availability,
    set_members,
)
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account


@dataclass
class FakeBot:
    """Records webhooks; answers each with the next scripted status (200 when the script is empty)."""

    url: str = ""
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(body) for _, body in self.received]

    def wait_for(self, count: int, seconds: float = 30) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} webhooks, got {len(self.received)}")
            time.sleep(0.05)
        return self.bodies()


@pytest.fixture(scope="module")
def bot() -> Iterator[FakeBot]:
    state = FakeBot()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with state.lock:
                state.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                status = state.statuses.pop(0) if state.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}/webhook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()


@dataclass(frozen=True)
class Setup:
    admin: Actor
    human: Actor
    inbox_id: int
    agent: dict[str, Any]
    token: str

    @property
    def bot_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_agent(client: httpx.Client, admin: Actor, url: str, name: str = "Wacanda") -> dict[str, Any]:
    response = client.post(
        admin.path("ai_agents"), json={"name": name, "webhook_url": url}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def agent_token(client: httpx.Client, api_key: str) -> str:
    response = client.post("/api/agents/auth", json={"api_key": api_key})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def setup(live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot) -> Setup:
    admin = new_account(live, client)
    human = add_user(live, client, admin.account_id)
    inbox_id = make_inbox(client, admin)
    set_members(client, admin, inbox_id, [human.user_id])
    set_availability(db_conn, admin.account_id, human.user_id, "online")
    agent = make_agent(client, admin, bot.url)
    response = client.put(
        admin.path(f"inboxes/{inbox_id}/ai_agent"), json={"ai_agent_id": agent["id"]}, headers=admin.headers
    )
    assert response.status_code == 200, response.text
    return Setup(admin, human, inbox_id, agent, agent_token(client, agent["api_key"]))


def customer(db_conn: Db, s: Setup) -> int:
    contact_id = make_contact(db_conn, s.admin.account_id)
    return make_contact_inbox(db_conn, s.admin.account_id, contact_id, s.inbox_id)


def conversation_of(client: httpx.Client, s: Setup, message_id: int) -> dict[str, Any]:
    response = client.get(s.admin.path("conversations"), params={"status": "all"}, headers=s.admin.headers)
    assert response.status_code == 200
    for conversation in response.json()["data"]:
        ids = [m["id"] for m in messages(client, s.admin, conversation["id"])]
        if message_id in ids:
            return dict(conversation)
    raise AssertionError("conversation not found")


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    parts = dict(p.split("=", 1) for p in headers["x-whatwut-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_a_new_conversation_goes_to_the_bot_with_a_signed_webhook(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    before = len(bot.received)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "How long is shipping?")
    assert message_id is not None
    conversation = conversation_of(client, s, message_id)
    assert conversation["status"] == "pending" and conversation["ai_agent_id"] == s.agent["id"]
    assert conversation["assignee"] is None  # the bot has it, not round robin

    bot.wait_for(before + 1)
    headers, raw = bot.received[before]
    assert verify(s.agent["webhook_secret"], headers, raw)
    assert headers["x-whatwut-event"] == "message_created" and headers["x-whatwut-event-id"]
    payload = json.loads(raw)
    assert payload["message"] == payload["message"] | {"id": message_id, "content": "How long is shipping?"}
    assert payload["conversation"]["id"] == conversation["id"]
    assert payload["account"]["id"] == s.admin.account_id

    assigned = client.get("/api/conversations/assigned", headers=s.bot_headers)
    assert assigned.status_code == 200
    assert [c["id"] for c in assigned.json()["data"]] == [conversation["id"]]
    me = client.get("/api/agents/me", headers=s.bot_headers).json()
    assert me["id"] == s.agent["id"] and me["inbox_ids"] == [s.inbox_id]
    deliveries = client.get(s.admin.path(f"ai_agents/{s.agent['id']}/deliveries"), headers=s.admin.headers)
    assert deliveries.json()["data"][0]["status"] in ("pending", "delivered")


def test_the_bot_answers_with_sources_and_records_the_sentiment(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "Where is my parcel???")
    assert message_id is not None
    conversation_id = conversation_of(client, s, message_id)["id"]

    answer = client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={
            "content": "Parcels arrive in 3 days [1].",
            "sources": [{"document": "shipping.md", "heading": "Delivery times", "number": 1}],
            "confidence": 0.82,
            "in_reply_to": message_id,
        },
        headers=s.bot_headers,
    )
    assert answer.status_code == 201, answer.text
    sent = answer.json()
    assert sent["sender"]["type"] == "bot" and sent["sender"]["name"] == "Wacanda"
    assert sent["content_attributes"]["sources"][0]["document"] == "shipping.md"
    assert sent["content_attributes"]["confidence"] == 0.82

    mood = client.put(
        f"/api/conversations/{conversation_id}/messages/{message_id}/sentiment",
        json={"score": -0.6},
        headers=s.bot_headers,
    )
    assert mood.status_code == 200, mood.text
    assert mood.json() == {"message_id": message_id, "score": -0.6, "label": "negative"}

    stored = {m["id"]: m for m in messages(client, s.admin, conversation_id)}
    assert stored[message_id]["content_attributes"]["sentiment"] == {"score": -0.6, "label": "negative"}
    assert stored[sent["id"]]["content_attributes"]["sources"]
    listed = conversation_of(client, s, message_id)
    assert listed["status"] == "pending"
    assert listed["additional_attributes"]["mood"]["label"] == "negative"
    agent = client.get(s.admin.path(f"ai_agents/{s.agent['id']}"), headers=s.admin.headers).json()
    assert agent["performance_metrics"]["answers"] == 1


def test_a_handoff_opens_assigns_and_stops_the_bot(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    contact_inbox = customer(db_conn, s)
    first_id = receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "this is taking forever")
    message_id = receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "I want to talk to a human")
    assert first_id is not None and message_id is not None
    conversation_id = conversation_of(client, s, message_id)["id"]
    bot.wait_for(len(bot.received))
    for recorded, score in ((first_id, -0.8), (message_id, 0.2)):
        mood = client.put(
            f"/api/conversations/{conversation_id}/messages/{recorded}/sentiment",
            json={"score": score},
            headers=s.bot_headers,
        )
        assert mood.status_code == 200, mood.text

    handoff = client.put(
        f"/api/conversations/{conversation_id}/status",
        json={"status": "open", "reason": "human_request", "detail": "talk to a human"},
        headers=s.bot_headers,
    )
    assert handoff.status_code == 200, handoff.text
    conversation = conversation_of(client, s, message_id)
    assert conversation["status"] == "open" and conversation["ai_agent_id"] is None
    assert conversation["assignee"]["id"] == s.human.user_id
    assert "Wacanda handed the conversation to a human: customer asked for a person" in activities(
        client, s.admin, conversation_id
    )
    spans = client.get(
        s.admin.path(f"conversations/{conversation_id}/ai_agent_spans"), headers=s.admin.headers
    ).json()["data"]
    assert spans[0]["handoff_reason"] == "human_request" and spans[0]["ended_at"]
    # Estimated from the sentiment of the customer's last messages in the span: (-0.8 + 0.2) / 2 → 0..1.
    assert spans[0]["satisfaction_score"] == 0.35

    # The bot no longer hears of the conversation and can no longer write in it.
    before = len(bot.received)
    receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "hello?")
    late = client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "late"}, headers=s.bot_headers
    )
    assert_problem(late, 409)
    time.sleep(1.5)
    assert len(bot.received) == before
    assert client.get("/api/conversations/assigned", headers=s.bot_headers).json()["data"] == []


def test_a_human_reply_takes_over(live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot) -> None:
    s = setup(live, client, db_conn, bot)
    contact_inbox = customer(db_conn, s)
    message_id = receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "hi")
    assert message_id is not None
    conversation_id = conversation_of(client, s, message_id)["id"]
    reply = client.post(
        s.human.path(f"conversations/{conversation_id}/messages"),
        json={"content": "Hi, Ana here"},
        headers=s.human.headers,
    )
    assert reply.status_code == 201, reply.text
    conversation = conversation_of(client, s, message_id)
    assert conversation["status"] == "open" and conversation["ai_agent_id"] is None
    assert any(
        "took over the conversation from Wacanda" in a for a in activities(client, s.admin, conversation_id)
    )
    spans = client.get(
        s.admin.path(f"conversations/{conversation_id}/ai_agent_spans"), headers=s.admin.headers
    ).json()["data"]
    assert spans[0]["handoff_reason"].startswith("human_takeover")
    assert spans[0]["satisfaction_score"] is None  # no sentiment recorded: nothing to estimate from
    late = client.put(
        f"/api/conversations/{conversation_id}/status", json={"status": "open"}, headers=s.bot_headers
    )
    assert_problem(late, 409)


def test_a_bot_that_keeps_failing_hands_off(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    with bot.lock:
        bot.statuses[:] = [500, 503, 500, 502, 500]
    before = len(bot.received)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "anyone?")
    assert message_id is not None
    bot.wait_for(before + 5, seconds=60)
    deadline = time.monotonic() + 30
    while conversation_of(client, s, message_id)["status"] != "open":
        assert time.monotonic() < deadline, "no handoff after the last failed delivery"
        time.sleep(0.2)
    conversation = conversation_of(client, s, message_id)
    assert conversation["assignee"]["id"] == s.human.user_id
    assert any("could not be reached" in a for a in activities(client, s.admin, conversation["id"]))
    (delivery, *_) = client.get(
        s.admin.path(f"ai_agents/{s.agent['id']}/deliveries"), headers=s.admin.headers
    ).json()["data"]
    assert delivery["status"] == "failed" and delivery["attempts"] == 5 and "500" in delivery["last_error"]


def test_a_retried_delivery_keeps_the_order(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    contact_inbox = customer(db_conn, s)
    with bot.lock:
        bot.statuses[:] = [500]
    before = len(bot.received)
    receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "first")
    receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "second")
    bodies = bot.wait_for(before + 3)[before:]
    assert [b["message"]["content"] for b in bodies] == ["first", "first", "second"]


def test_other_accounts_and_other_tokens_see_nothing(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    other = setup(live, client, db_conn, bot)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "mine")
    assert message_id is not None
    conversation_id = conversation_of(client, s, message_id)["id"]
    for method, path, body in (
        ("POST", f"/api/conversations/{conversation_id}/messages", {"content": "x"}),
        ("PUT", f"/api/conversations/{conversation_id}/status", {"status": "open"}),
        ("PUT", f"/api/conversations/{conversation_id}/messages/{message_id}/sentiment", {"score": 0}),
    ):
        assert_problem(client.request(method, path, json=body, headers=other.bot_headers), 404)
    # Admin routes of another account, and the bot token on the account API.
    assert_problem(
        client.get(other.admin.path(f"ai_agents/{s.agent['id']}"), headers=other.admin.headers), 404
    )
    assert_problem(client.get(s.admin.path("conversations"), headers=s.bot_headers), 404)
    # A person's token is not an agent's.
    assert_problem(client.get("/api/agents/me", headers=s.admin.headers), 401)
    assert_problem(client.get("/api/agents/me"), 401)


def test_bad_input_on_the_agent_api(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    assert_problem(client.post("/api/agents/auth", json={"api_key": "wwb_nope"}), 401)
    assert_problem(client.post("/api/agents/auth", json={"api_key": ""}), 422, field="api_key")
    assert_problem(client.post("/api/agents/auth", json={"key": "x"}), 422)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "hi")
    assert message_id is not None
    conversation_id = conversation_of(client, s, message_id)["id"]
    path = f"/api/conversations/{conversation_id}"
    cases: list[tuple[str, str, object, str]] = [
        ("POST", f"{path}/messages", {"content": ""}, "content"),
        ("POST", f"{path}/messages", {"content": "x" * 5000}, "content"),
        ("POST", f"{path}/messages", {"content": "x", "confidence": 2}, "confidence"),
        ("POST", f"{path}/messages", {"content": "x", "hack": 1}, "hack"),
        ("POST", f"{path}/messages", {"content": "x", "in_reply_to": 999999999}, "in_reply_to"),
        ("PUT", f"{path}/messages/{message_id}/sentiment", {"score": 7}, "score"),
        ("PUT", f"{path}/messages/{message_id}/sentiment", {"score": "nan"}, "score"),
        ("PUT", f"{path}/status", {"status": "snoozed"}, "status"),
        ("PUT", f"{path}/status", {"status": "open", "reason": "r" * 300}, "reason"),
    ]
    for method, url, body, field_name in cases:
        assert_problem(client.request(method, url, json=body, headers=s.bot_headers), 422, field=field_name)
    assert_problem(client.post(f"{path}/messages", content=b"{not json", headers=s.bot_headers), 422)
    # Still the bot's, nothing written.
    assert [m["message_type"] for m in messages(client, s.admin, conversation_id)] == ["incoming"]
    # Admin API: bad URL, duplicate name, unknown agent for an inbox.
    bad = client.post(
        s.admin.path("ai_agents"), json={"name": "X", "webhook_url": "nope"}, headers=s.admin.headers
    )
    assert_problem(bad, 422, field="webhook_url")
    dup = client.post(
        s.admin.path("ai_agents"), json={"name": "Wacanda", "webhook_url": bot.url}, headers=s.admin.headers
    )
    assert_problem(dup, 409, field="name")
    unknown = client.put(
        s.admin.path(f"inboxes/{s.inbox_id}/ai_agent"),
        json={"ai_agent_id": 99999999},
        headers=s.admin.headers,
    )
    assert_problem(unknown, 422, field="ai_agent_id")
    agent_user = add_user(live, client, s.admin.account_id, role="agent")
    forbidden = client.post(
        agent_user.path("ai_agents"), json={"name": "Y", "webhook_url": bot.url}, headers=agent_user.headers
    )
    assert_problem(forbidden, 403)


def test_a_rotated_key_stops_working(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    rotated = client.post(s.admin.path(f"ai_agents/{s.agent['id']}/credentials"), headers=s.admin.headers)
    assert rotated.status_code == 200, rotated.text
    assert_problem(client.post("/api/agents/auth", json={"api_key": s.agent["api_key"]}), 401)
    assert agent_token(client, rotated.json()["api_key"])
    disabled = client.patch(
        s.admin.path(f"ai_agents/{s.agent['id']}"), json={"status": "disabled"}, headers=s.admin.headers
    )
    assert disabled.status_code == 200
    assert_problem(client.get("/api/agents/me", headers=s.bot_headers), 401)


def test_a_bot_that_accepts_but_never_answers_hands_off_after_its_timeout(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    changed = client.patch(
        s.admin.path(f"ai_agents/{s.agent['id']}"),
        json={"answer_timeout_seconds": 5},
        headers=s.admin.headers,
    )
    assert changed.status_code == 200 and changed.json()["answer_timeout_seconds"] == 5
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "hello?")
    assert message_id is not None
    deadline = time.monotonic() + 60
    while conversation_of(client, s, message_id)["status"] != "open":
        assert time.monotonic() < deadline, "the silent bot kept the conversation"
        time.sleep(0.3)
    conversation = conversation_of(client, s, message_id)
    assert any("did not answer in time" in a for a in activities(client, s.admin, conversation["id"]))


def test_a_bot_that_answers_in_time_keeps_the_conversation(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    client.patch(
        s.admin.path(f"ai_agents/{s.agent['id']}"),
        json={"answer_timeout_seconds": 5},
        headers=s.admin.headers,
    )
    before = len(bot.received)
    message_id = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "hello?")
    assert message_id is not None
    bot.wait_for(before + 1)
    conversation_id = conversation_of(client, s, message_id)["id"]
    answer = client.post(
        f"/api/conversations/{conversation_id}/messages", json={"content": "Hi!"}, headers=s.bot_headers
    )
    assert answer.status_code == 201
    time.sleep(8)
    assert conversation_of(client, s, message_id)["status"] == "pending"


def test_disabling_or_deleting_the_bot_hands_its_conversations_to_people(
    live: LiveServer, client: httpx.Client, db_conn: Db, bot: FakeBot
) -> None:
    s = setup(live, client, db_conn, bot)
    contact_inbox = customer(db_conn, s)
    first = receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "hi")
    assert first is not None
    disabled = client.patch(
        s.admin.path(f"ai_agents/{s.agent['id']}"), json={"status": "disabled"}, headers=s.admin.headers
    )
    assert disabled.status_code == 200
    receive(live, s.admin.account_id, s.inbox_id, contact_inbox, "still there?")
    conversation = conversation_of(client, s, first)
    assert conversation["status"] == "open" and conversation["ai_agent_id"] is None
    assert any("the bot was disabled" in a for a in activities(client, s.admin, conversation["id"]))

    client.patch(
        s.admin.path(f"ai_agents/{s.agent['id']}"), json={"status": "active"}, headers=s.admin.headers
    )
    other = receive(live, s.admin.account_id, s.inbox_id, customer(db_conn, s), "hello")
    assert other is not None
    assert conversation_of(client, s, other)["ai_agent_id"] == s.agent["id"]
    deleted = client.delete(s.admin.path(f"ai_agents/{s.agent['id']}"), headers=s.admin.headers)
    assert deleted.status_code == 204
    assert conversation_of(client, s, other)["status"] == "open"
    assert_problem(client.get(s.admin.path(f"ai_agents/{s.agent['id']}"), headers=s.admin.headers), 404)
    inbox = client.get(s.admin.path(f"inboxes/{s.inbox_id}/ai_agent"), headers=s.admin.headers).json()
    assert inbox["ai_agent"] is None
    audit = client.get(s.admin.path("audit_logs"), params={"limit": 100}, headers=s.admin.headers)
    assert audit.status_code == 200, audit.text
    actions = {entry["action"] for entry in audit.json()["data"]}
    assert {"ai_agent.created", "inbox.ai_agent_set", "ai_agent.updated", "ai_agent.deleted"} <= actions
