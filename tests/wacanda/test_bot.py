"""Wacanda as WhatWut's bot, both apps over real HTTP on 127.0.0.1: a customer message in an inbox
with the Wacanda agent is answered with sources, its sentiment is stored, and person requests,
anger and unanswerable questions hand the conversation to a human."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
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
from tests.support import Actor, LiveServer, add_user, new_account
from tests.wacanda.conftest import WacandaServer, upload, wait_processed
from wacanda.bot.api import ANSWER_JOB
from whatwut.bots.signing import sign

RETURNS = (
    b"# Returns\n\nYou have 14 days to return a phone you bought.\n\n"
    b"## Refunds\n\nRefunds reach your card within 5 business days after we receive the phone.\n"
)


def bots_file(data_root: Path) -> Path:
    return data_root / f"wacanda-{__name__.rsplit('.', 1)[-1]}" / "wacanda-bots.json"


def register(data_root: Path, live: LiveServer, agent: dict[str, Any]) -> None:
    """What ``whatwut serve`` does for the Wacanda it starts: the agent's credentials in the data dir."""
    path = bots_file(data_root)
    data = json.loads(path.read_text()) if path.exists() else {"api_url": live.url, "agents": {}}
    data["agents"][str(agent["id"])] = {
        "api_key": agent["api_key"],
        "webhook_secret": agent["webhook_secret"],
    }
    path.write_text(json.dumps(data))


class Shop:
    def __init__(self, admin: Actor, human: Actor, inbox_id: int, agent: dict[str, Any]) -> None:
        self.admin, self.human, self.inbox_id, self.agent = admin, human, inbox_id, agent


@pytest.fixture(scope="module")
def shop(live: LiveServer, wacanda_live: WacandaServer, db_conn: Db, data_root: Path) -> Shop:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        admin = new_account(live, client)
        human = add_user(live, client, admin.account_id)
        inbox_id = make_inbox(client, admin)
        set_members(client, admin, inbox_id, [human.user_id])
        set_availability(db_conn, admin.account_id, human.user_id, "online")
        response = client.post(
            admin.path("ai_agents"),
            json={"name": "Wacanda", "webhook_url": f"{wacanda_live.url}/webhooks/whatwut"},
            headers=admin.headers,
        )
        assert response.status_code == 201, response.text
        agent = response.json()
        attach = client.put(
            admin.path(f"inboxes/{inbox_id}/ai_agent"),
            json={"ai_agent_id": agent["id"]},
            headers=admin.headers,
        )
        assert attach.status_code == 200, attach.text
    register(data_root, live, agent)
    with httpx.Client(base_url=wacanda_live.url, timeout=60) as http:
        headers = wacanda_live.headers(admin.account_id)
        assert (
            wait_processed(http, headers, upload(http, headers, "returns.md", RETURNS))["status"] == "ready"
        )
    return Shop(admin, human, inbox_id, agent)


def new_customer(db_conn: Db, shop: Shop) -> int:
    contact_id = make_contact(db_conn, shop.admin.account_id, name="Customer")
    return make_contact_inbox(db_conn, shop.admin.account_id, contact_id, shop.inbox_id)


def conversation_with(client: httpx.Client, shop: Shop, message_id: int) -> dict[str, Any]:
    response = client.get(
        shop.admin.path("conversations"), params={"status": "all"}, headers=shop.admin.headers
    )
    for conversation in response.json()["data"]:
        if message_id in [m["id"] for m in messages(client, shop.admin, conversation["id"])]:
            return dict(conversation)
    raise AssertionError("no conversation holds the message")


def wait_until(check: Any, seconds: float = 90) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def bot_messages(client: httpx.Client, shop: Shop, conversation_id: int) -> list[dict[str, Any]]:
    return [
        m
        for m in messages(client, shop.admin, conversation_id, limit=100)
        if m["sender"] and m["sender"]["type"] == "bot"
    ]


def test_a_question_from_the_documents_is_answered_with_sources(
    live: LiveServer, client: httpx.Client, db_conn: Db, shop: Shop
) -> None:
    contact_inbox = new_customer(db_conn, shop)
    message_id = receive(
        live, shop.admin.account_id, shop.inbox_id, contact_inbox, "How long do refunds take?"
    )
    assert message_id is not None
    conversation = conversation_with(client, shop, message_id)
    assert conversation["status"] == "pending"
    (answer,) = wait_until(lambda: bot_messages(client, shop, conversation["id"]))
    assert "5 business days" in answer["content"] and "Sources:" in answer["content"]
    attributes = answer["content_attributes"]
    assert {"document": "returns.md", "heading": "Refunds"}.items() <= attributes["sources"][0].items()
    assert 0.5 <= attributes["confidence"] <= 1 and attributes["answers_message_id"] == message_id
    incoming = next(m for m in messages(client, shop.admin, conversation["id"]) if m["id"] == message_id)
    sentiment = incoming["content_attributes"]["sentiment"]
    assert sentiment["label"] in ("neutral", "positive") and -1 <= sentiment["score"] <= 1
    assert conversation_with(client, shop, message_id)["status"] == "pending"  # still the bot's

    # A follow-up in the same conversation is answered after the first, from the same session.
    second = receive(
        live, shop.admin.account_id, shop.inbox_id, contact_inbox, "And how many days to return a phone?"
    )
    assert second is not None
    answers = wait_until(
        lambda: (
            len(bot_messages(client, shop, conversation["id"])) == 2
            and bot_messages(client, shop, conversation["id"])
        )
    )
    assert "14 days" in answers[1]["content"]
    assert [a["content_attributes"]["answers_message_id"] for a in answers] == [message_id, second]


@pytest.mark.parametrize(
    ("text", "reason", "why"),
    [
        ("I want to talk to a human", "human_request", "customer asked for a person"),
        ("This is ridiculous, worst experience ever, I am so angry!!!", "negative_sentiment", "upset"),
        ("What is the capital of Australia?", "low_confidence", "not confident"),
    ],
)
def test_the_bot_hands_off_and_a_human_gets_the_conversation(
    live: LiveServer, client: httpx.Client, db_conn: Db, shop: Shop, text: str, reason: str, why: str
) -> None:
    contact_inbox = new_customer(db_conn, shop)
    message_id = receive(live, shop.admin.account_id, shop.inbox_id, contact_inbox, text)
    assert message_id is not None
    conversation_id = conversation_with(client, shop, message_id)["id"]
    conversation = wait_until(
        lambda: (c := conversation_with(client, shop, message_id))["status"] == "open" and c
    )
    assert conversation["ai_agent_id"] is None and conversation["assignee"]["id"] == shop.human.user_id
    handoff = [a for a in activities(client, shop.admin, conversation_id) if "handed the conversation" in a]
    assert handoff and why in handoff[0], handoff
    spans = client.get(
        shop.admin.path(f"conversations/{conversation_id}/ai_agent_spans"), headers=shop.admin.headers
    ).json()["data"]
    assert spans[0]["handoff_reason"] == reason
    incoming = next(m for m in messages(client, shop.admin, conversation_id) if m["id"] == message_id)
    assert "sentiment" in incoming["content_attributes"]
    if reason == "negative_sentiment":
        assert incoming["content_attributes"]["sentiment"]["label"] == "negative"
        assert conversation["additional_attributes"]["mood"]["label"] == "negative"


def test_a_human_who_took_over_is_never_interrupted_by_the_bot(
    live: LiveServer, client: httpx.Client, db_conn: Db, shop: Shop
) -> None:
    contact_inbox = new_customer(db_conn, shop)
    first = receive(live, shop.admin.account_id, shop.inbox_id, contact_inbox, "How long do refunds take?")
    assert first is not None
    conversation_id = conversation_with(client, shop, first)["id"]
    wait_until(lambda: bot_messages(client, shop, conversation_id))
    taken = client.post(
        shop.human.path(f"conversations/{conversation_id}/assignments"),
        json={"assignee_id": shop.human.user_id},
        headers=shop.human.headers,
    )
    assert taken.status_code == 200, taken.text
    receive(live, shop.admin.account_id, shop.inbox_id, contact_inbox, "And how many days to return a phone?")
    time.sleep(3)
    assert len(bot_messages(client, shop, conversation_id)) == 1
    assert conversation_with(client, shop, first)["ai_agent_id"] is None


def test_a_wrongly_signed_webhook_is_refused_and_nothing_is_done(
    wacanda_live: WacandaServer, shop: Shop, db_conn: Db
) -> None:
    body = json.dumps(
        {
            "event": "message_created",
            "id": "forged",
            "account": {"id": shop.admin.account_id},
            "conversation": {"id": 1},
            "message": {"id": 1, "content": "hi"},
        }
    ).encode()
    # Answer jobs only: the queue's housekeeping (wacanda.retry_stalled) may tick meanwhile.
    answer_jobs = "SELECT count(*) FROM wacanda.procrastinate_jobs WHERE task_name = %s"
    jobs_before = db_conn.execute(answer_jobs, (ANSWER_JOB,)).fetchone()
    with httpx.Client(base_url=wacanda_live.url, timeout=30) as http:
        headers = {"X-WhatWut-Agent-Id": str(shop.agent["id"]), "Content-Type": "application/json"}
        for signature in (
            sign("not-the-secret", body),
            "t=1,v1=00",
            "",
            sign(shop.agent["webhook_secret"], body, timestamp=int(time.time()) - 3600),  # replayed
        ):
            response = http.post(
                "/webhooks/whatwut", content=body, headers={**headers, "X-WhatWut-Signature": signature}
            )
            assert response.status_code == 401, response.text
        # Signed by the right secret but for an agent this Wacanda does not serve.
        unknown = http.post(
            "/webhooks/whatwut",
            content=body,
            headers={
                "X-WhatWut-Agent-Id": "999999",
                "X-WhatWut-Signature": sign(shop.agent["webhook_secret"], body),
            },
        )
        assert unknown.status_code == 401
        good = sign(shop.agent["webhook_secret"], b"{not json")
        broken = http.post(
            "/webhooks/whatwut", content=b"{not json", headers={**headers, "X-WhatWut-Signature": good}
        )
        assert broken.status_code == 422
        no_ids = json.dumps({"event": "message_created", "account": {}, "message": {}}).encode()
        missing = http.post(
            "/webhooks/whatwut",
            content=no_ids,
            headers={**headers, "X-WhatWut-Signature": sign(shop.agent["webhook_secret"], no_ids)},
        )
        assert missing.status_code == 422
    assert db_conn.execute(answer_jobs, (ANSWER_JOB,)).fetchone() == jobs_before


def test_two_quick_messages_are_answered_in_order_and_nothing_after_a_handoff(
    live: LiveServer, client: httpx.Client, db_conn: Db, shop: Shop
) -> None:
    contact_inbox = new_customer(db_conn, shop)
    first = receive(live, shop.admin.account_id, shop.inbox_id, contact_inbox, "How long do refunds take?")
    second = receive(
        live,
        shop.admin.account_id,
        shop.inbox_id,
        contact_inbox,
        "How many days do I have to return a phone?",
    )
    assert first is not None and second is not None
    conversation_id = conversation_with(client, shop, first)["id"]
    answers = wait_until(lambda: len(found := bot_messages(client, shop, conversation_id)) == 2 and found)
    assert [a["content_attributes"]["answers_message_id"] for a in answers] == [first, second]
    assert "5 business days" in answers[0]["content"] and "14 days" in answers[1]["content"]

    other = new_customer(db_conn, shop)
    asks = receive(live, shop.admin.account_id, shop.inbox_id, other, "I want to talk to a human")
    late = receive(live, shop.admin.account_id, shop.inbox_id, other, "How long do refunds take?")
    assert asks is not None and late is not None
    handed = conversation_with(client, shop, asks)["id"]
    wait_until(lambda: conversation_with(client, shop, asks)["status"] == "open")
    time.sleep(3)  # time for the second message's job, had it been sent
    replies = bot_messages(client, shop, handed)
    # Only the note that goes with the handoff; the message after it is left to the person.
    assert [r["content_attributes"]["answers_message_id"] for r in replies] == [asks], replies


def ingestion_job_status(database_url: str, document_id: int) -> str | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status::text FROM wacanda.procrastinate_jobs"
            " WHERE task_name = 'wacanda.ingest_document' AND (args->>'document_id')::bigint = %s",
            (document_id,),
        ).fetchone()
    return None if row is None else str(row[0])


def test_a_customer_is_answered_while_an_upload_is_still_being_ingested(
    live: LiveServer, client: httpx.Client, db_conn: Db, shop: Shop, wacanda_live: WacandaServer
) -> None:
    """Replies have workers of their own: with the knowledge-base worker held by an ingestion (its
    document row locked here, so the job waits in the database), a customer is still answered."""
    catalogue = "\n\n".join(
        f"## Accessory {n}\n\nThe accessory number {n} ships in a box of {n % 7 + 2} pieces."
        for n in range(40)
    ).encode()
    # Another account's upload: the worker slot is shared, and that account's jobs are its alone
    # (the shop's own account may still have replies of earlier tests queued).
    headers = wacanda_live.headers(shop.admin.account_id + 10**9)
    with httpx.Client(base_url=wacanda_live.url, timeout=60) as http:
        document_id = upload(http, headers, "catalogue.md", catalogue)
        with psycopg.connect(wacanda_live.database_url) as holder:
            holder.execute("SELECT 1 FROM wacanda.documents WHERE id = %s FOR UPDATE", (document_id,))
            wait_until(lambda: ingestion_job_status(wacanda_live.database_url, document_id) == "doing", 30)
            # Operators see it in the agent's status, per queue (other accounts' jobs are not counted).
            jobs = http.get("/functions/v1/agent-status", headers=headers).json()["jobs"]
            assert jobs == {
                "knowledge_base": {"waiting": 0, "running": 1},
                "replies": {"waiting": 0, "running": 0},
            }
            shops = http.get(
                "/functions/v1/agent-status", headers=wacanda_live.headers(shop.admin.account_id)
            )
            assert shops.json()["jobs"]["knowledge_base"]["running"] == 0
            other = http.get("/functions/v1/agent-status", headers=wacanda_live.headers(10**12)).json()
            assert other["jobs"]["knowledge_base"] == {"waiting": 0, "running": 0}

            contact_inbox = new_customer(db_conn, shop)
            message_id = receive(
                live, shop.admin.account_id, shop.inbox_id, contact_inbox, "How long do refunds take?"
            )
            assert message_id is not None
            conversation_id = conversation_with(client, shop, message_id)["id"]
            (answer,) = wait_until(lambda: bot_messages(client, shop, conversation_id), 60)
            assert "5 business days" in answer["content"]
            # The ingestion is still where the lock holds it: the answer did not wait for it.
            assert ingestion_job_status(wacanda_live.database_url, document_id) == "doing"
            status = http.get(f"/functions/v1/document-status/{document_id}", headers=headers).json()
            assert status["status"] == "processing"
            holder.rollback()
        assert wait_processed(http, headers, document_id)["status"] == "ready"
