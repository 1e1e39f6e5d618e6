"""Group commit on the webhook's accept path, and processing many deliveries per job (ADR 0008).

Concurrent deliveries are written together in one transaction; each is answered 200 only after
that commit, and a delivery whose write fails is answered 503 with nothing of it stored. Over real
HTTP against the live app, plus :class:`GroupCommit` driven directly on the real database to pin
what a batch is. No timing asserted.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests import whatsapp_payloads as wa
from tests.support import Actor, LiveServer, assert_problem, new_account, start_live_server, unique
from whatwut.channels.whatsapp.cloud import service
from whatwut.channels.whatsapp.cloud.ingest import GroupCommit, IngestUnavailable
from whatwut.db.engine import make_engine

Db = psycopg.Connection[tuple[Any, ...]]
HOOK = "/webhooks/whatsapp/cloud"
REFUSED = "wamid.REFUSE"


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path) -> Iterator[LiveServer]:
    with start_live_server(
        database_url, data_root / "app-webhook-group-commit", WHATSAPP_GRAPH_URL="http://127.0.0.1:9/v23.0"
    ) as server:
        yield server


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Actor:
    with httpx.Client(base_url=live.url) as http:
        return new_account(live, http)


@pytest.fixture
def channel(client: httpx.Client, admin: Actor) -> dict[str, Any]:
    channel = wa.cloud_channel()
    response = client.post(
        admin.path("inboxes"),
        json={"name": unique("WhatsApp"), "channel": channel, "enable_auto_assignment": False},
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    return {**channel, "inbox_id": int(response.json()["id"]), "account_id": admin.account_id}


@pytest.fixture
def refuse_at_commit(db_conn: Db) -> Iterator[None]:
    """A deferred trigger that fails the COMMIT of any transaction storing a ``wamid.REFUSE…`` key."""
    db_conn.execute(
        "CREATE OR REPLACE FUNCTION test_refuse_commit() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN IF NEW.event_key LIKE '{REFUSED}%' THEN RAISE EXCEPTION 'refused at commit'; END IF; "
        "RETURN NULL; END $$"
    )
    db_conn.execute(
        "CREATE CONSTRAINT TRIGGER test_refuse_commit AFTER INSERT ON whatsapp_inbound_events "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_refuse_commit()"
    )
    try:
        yield
    finally:
        db_conn.execute("DROP TRIGGER test_refuse_commit ON whatsapp_inbound_events")
        db_conn.execute("DROP FUNCTION test_refuse_commit()")


def signed_message(channel: dict[str, Any], wamid: str, sender: str) -> tuple[bytes, dict[str, str]]:
    body = wa.inbound(channel["phone_number_id"], sender, wa.text_message(sender, f"hi {wamid}", id=wamid))
    return wa.signed(body, channel["app_secret"])


def send_all(url: str, requests: list[tuple[bytes, dict[str, str]]], threads: int) -> list[httpx.Response]:
    """Every request at once-ish, from ``threads`` keep-alive clients."""

    def send(item: tuple[bytes, dict[str, str]]) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=60) as http:
            return http.post(HOOK, content=item[0], headers=item[1])

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(send, requests))


def event_keys(db: Db, inbox_id: int) -> list[str]:
    rows = db.execute(
        "SELECT event_key FROM whatsapp_inbound_events WHERE inbox_id = %s ORDER BY id", (inbox_id,)
    ).fetchall()
    return [str(row[0]) for row in rows]


def job_event_ids(db: Db, inbox_id: int) -> list[int]:
    rows = db.execute(
        "SELECT args FROM procrastinate_jobs WHERE task_name = %s AND (args->>'inbox_id')::bigint = %s",
        (service.PROCESS_TASK, inbox_id),
    ).fetchall()
    return [int(event_id) for (args,) in rows for event_id in args["event_ids"]]


def settled(db: Db, inbox_id: int) -> bool:
    row = db.execute(
        "SELECT count(*) FROM whatsapp_inbound_events WHERE inbox_id = %s AND processed_at IS NULL",
        (inbox_id,),
    ).fetchone()
    return row == (0,)


def messages_per_wamid(db: Db, inbox_id: int) -> dict[str, int]:
    rows = db.execute(
        "SELECT source_id, count(*) FROM messages WHERE inbox_id = %s AND message_type = 'incoming' "
        "GROUP BY source_id",
        (inbox_id,),
    ).fetchall()
    return {str(wamid): int(n) for wamid, n in rows}


# --- over HTTP -------------------------------------------------------------------------------------


def test_concurrent_webhooks_are_each_stored_once_with_one_job_per_event(
    live: LiveServer, db_conn: Db, channel: dict[str, Any]
) -> None:
    wamids = [wa.wamid() for _ in range(100)]
    requests = [signed_message(channel, w, f"55119{n % 17:08d}") for n, w in enumerate(wamids)]
    requests += requests[::5]  # Meta's re-deliveries, byte for byte, in the same burst
    answers = send_all(live.url, requests, threads=24)
    assert [a.status_code for a in answers] == [200] * len(requests)
    assert all(a.headers.get("x-request-id") for a in answers)  # the request-id middleware still runs
    bodies = [a.json() for a in answers]
    assert sum(b["stored"] for b in bodies) == len(wamids)
    assert sum(b["duplicates"] for b in bodies) == len(requests) - len(wamids)
    keys = event_keys(db_conn, channel["inbox_id"])
    assert sorted(keys) == sorted(wamids)
    # every stored event is in exactly one processing job (committed with it)
    ids = db_conn.execute(
        "SELECT id FROM whatsapp_inbound_events WHERE inbox_id = %s", (channel["inbox_id"],)
    ).fetchall()
    assert sorted(job_event_ids(db_conn, channel["inbox_id"])) == sorted(int(row[0]) for row in ids)
    wa.wait_for(lambda: settled(db_conn, channel["inbox_id"]), timeout=120, what="events processed")
    assert messages_per_wamid(db_conn, channel["inbox_id"]) == dict.fromkeys(wamids, 1)


def test_a_delivery_whose_commit_fails_is_503_and_nothing_of_it_is_stored(
    client: httpx.Client, db_conn: Db, channel: dict[str, Any], refuse_at_commit: None
) -> None:
    raw, headers = signed_message(channel, f"{REFUSED}{wa.wamid()}", "5511900000001")
    answer = client.post(HOOK, content=raw, headers=headers)
    assert_problem(answer, 503)
    assert answer.headers["retry-after"] == "1"
    assert event_keys(db_conn, channel["inbox_id"]) == []
    assert job_event_ids(db_conn, channel["inbox_id"]) == []


def test_a_failing_delivery_does_not_sink_the_others_written_with_it(
    live: LiveServer, db_conn: Db, channel: dict[str, Any], refuse_at_commit: None
) -> None:
    good = [wa.wamid() for _ in range(40)]
    bad = [f"{REFUSED}{wa.wamid()}" for _ in range(4)]
    order = good[:10] + bad[:2] + good[10:30] + bad[2:] + good[30:]
    answers = send_all(live.url, [signed_message(channel, w, "5511900000002") for w in order], threads=16)
    status = {w: a.status_code for w, a in zip(order, answers, strict=True)}
    assert {w: status[w] for w in bad} == dict.fromkeys(bad, 503)
    assert {w: status[w] for w in good} == dict.fromkeys(good, 200)
    assert sorted(event_keys(db_conn, channel["inbox_id"])) == sorted(good)
    wa.wait_for(lambda: settled(db_conn, channel["inbox_id"]), timeout=60, what="events processed")
    assert messages_per_wamid(db_conn, channel["inbox_id"]) == dict.fromkeys(good, 1)


def test_one_job_applies_messages_statuses_reactions_and_duplicates_of_many_deliveries(
    client: httpx.Client, live: LiveServer, db_conn: Db, channel: dict[str, Any]
) -> None:
    phone_number_id, secret = channel["phone_number_id"], channel["app_secret"]
    first_sender = "5511900000003"
    first = wa.text_message(first_sender, "hello")
    answer = client.post(HOOK, **_content(wa.inbound(phone_number_id, first_sender, first), secret))
    assert answer.status_code == 200
    wa.wait_for(lambda: settled(db_conn, channel["inbox_id"]), what="first message processed")
    conversation = db_conn.execute(
        "SELECT conversation_id FROM messages WHERE source_id = %s", (first["id"],)
    ).fetchone()
    assert conversation is not None
    reply_wamid = wa.wamid()
    reply = db_conn.execute(
        "INSERT INTO messages (account_id, conversation_id, inbox_id, message_type, content, content_type, "
        "status, source_id, sender_type) "
        "VALUES (%s, %s, %s, 'outgoing', 'reply', 'text', 'sent', %s, 'user') RETURNING id",
        (channel["account_id"], conversation[0], channel["inbox_id"], reply_wamid),
    ).fetchone()
    assert reply is not None
    senders = [f"55119100{n:05d}" for n in range(6)]
    news = [wa.text_message(s, f"news {n}") for n, s in enumerate(senders)]
    reacted = wa.message(first_sender, "reaction", wa.reaction(first["id"], "👍"))
    bodies = [wa.inbound(phone_number_id, s, m) for s, m in zip(senders, news, strict=True)]
    bodies += [
        wa.delivery(phone_number_id, statuses=[wa.status(reply_wamid, "delivered", first_sender)]),
        wa.delivery(phone_number_id, statuses=[wa.status(reply_wamid, "read", first_sender)]),
        wa.inbound(phone_number_id, first_sender, reacted),
        # one delivery carrying several messages and a status, and the same message twice
        wa.delivery(
            phone_number_id,
            messages=[news[0], news[1], news[1]],
            contacts=[wa.contact(senders[0]), wa.contact(senders[1])],
            statuses=[wa.status(reply_wamid, "delivered", first_sender)],
        ),
    ]
    requests = [wa.signed(body, secret) for body in bodies]
    answers = send_all(live.url, requests + requests[:3], threads=12)
    assert [a.status_code for a in answers] == [200] * len(answers)
    wa.wait_for(lambda: settled(db_conn, channel["inbox_id"]), timeout=60, what="events processed")
    per_wamid = messages_per_wamid(db_conn, channel["inbox_id"])
    assert per_wamid == {first["id"]: 1, **{m["id"]: 1 for m in news}}
    status = db_conn.execute("SELECT status FROM messages WHERE id = %s", (reply[0],)).fetchone()
    assert status == ("read",)
    attributes = db_conn.execute(
        "SELECT content_attributes FROM messages WHERE source_id = %s", (first["id"],)
    ).fetchone()
    assert attributes is not None
    assert [r["emoji"] for r in attributes[0]["reactions"]] == ["👍"]
    outcomes = db_conn.execute(
        "SELECT kind, event_key, outcome FROM whatsapp_inbound_events WHERE inbox_id = %s ORDER BY id",
        (channel["inbox_id"],),
    ).fetchall()
    assert all(outcome for _kind, _key, outcome in outcomes), outcomes
    assert sorted(key for kind, key, _ in outcomes if kind == "status") == [
        f"{reply_wamid}:delivered",
        f"{reply_wamid}:read",
    ]


def _content(body: Any, secret: str) -> dict[str, Any]:
    raw, headers = wa.signed(body, secret)
    return {"content": raw, "headers": headers}


# --- the group commit itself, on the real database --------------------------------------------------


def _route(channel: dict[str, Any]) -> service.Route:
    return service.Route(
        channel["inbox_id"], channel["account_id"], channel["phone_number_id"], channel["app_secret"]
    )


def _events(channel: dict[str, Any], wamid: str) -> list[service.InboxEvents]:
    message = wa.text_message("5511900000009", "hi", id=wamid)
    return [(_route(channel), [("message", wamid, {"message": message, "metadata": {}})])]


def test_deliveries_queued_together_are_one_transaction_and_one_job(
    database_url: str, db_conn: Db, channel: dict[str, Any]
) -> None:
    wamids = [wa.wamid() for _ in range(20)]
    arrivals = [*wamids[:10], wamids[3], *wamids[10:]]  # a re-delivery inside the batch

    async def run() -> tuple[list[list[int]], GroupCommit]:
        engine = make_engine(database_url)
        try:
            committer = GroupCommit(engine)
            results = await asyncio.gather(*(committer.store(_events(channel, w)) for w in arrivals))
            return results, committer
        finally:
            await engine.dispose()

    results, committer = asyncio.run(run())
    assert (committer.batches, committer.deliveries) == (1, len(arrivals))
    assert results == [[1]] * 10 + [[0]] + [[1]] * 10  # the first delivery carrying a key stored it
    jobs = db_conn.execute(
        "SELECT args FROM procrastinate_jobs WHERE task_name = %s AND (args->>'inbox_id')::bigint = %s",
        (service.PROCESS_TASK, channel["inbox_id"]),
    ).fetchall()
    assert len(jobs) == 1
    by_id = dict(
        db_conn.execute(
            "SELECT id, event_key FROM whatsapp_inbound_events WHERE inbox_id = %s", (channel["inbox_id"],)
        ).fetchall()
    )
    # the job lists the events in the order they arrived (the order they are applied in)
    assert [by_id[i] for i in jobs[0][0]["event_ids"]] == wamids


def test_a_batch_that_cannot_be_written_answers_every_delivery_unavailable(
    channel: dict[str, Any], db_conn: Db
) -> None:
    wamids = [wa.wamid() for _ in range(5)]

    async def run() -> list[BaseException | list[int]]:
        engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/nothing?connect_timeout=2")
        try:
            committer = GroupCommit(engine)
            stores = (committer.store(_events(channel, w)) for w in wamids)
            return await asyncio.gather(*stores, return_exceptions=True)
        finally:
            await engine.dispose()

    outcomes = asyncio.run(run())
    assert all(isinstance(outcome, IngestUnavailable) for outcome in outcomes), outcomes
    assert all(outcome.status_code == 503 for outcome in outcomes if isinstance(outcome, IngestUnavailable))
    found = db_conn.execute(
        "SELECT count(*) FROM whatsapp_inbound_events WHERE event_key = ANY(%s)", (wamids,)
    ).fetchone()
    assert found == (0,)


def test_the_events_json_parameter_keeps_arrival_order_and_drops_what_postgres_cannot_store(
    channel: dict[str, Any],
) -> None:
    route = _route(channel)
    batch: list[service.InboxEvents] = [
        (route, [("message", "b", {"text": "nul\x00byte"}), ("message", "a", {"text": "lone \udc80"})]),
        (route, [("status", "b:read", {})]),
    ]
    rows = json.loads(service.events_json(batch))
    assert [(r["ord"], r["kind"], r["key"]) for r in rows] == [
        (0, "message", "b"),
        (1, "message", "a"),
        (2, "status", "b:read"),
    ]
    assert "\x00" not in rows[0]["payload"]["text"]
    rows[1]["payload"]["text"].encode("utf-8")  # a lone surrogate would not encode
