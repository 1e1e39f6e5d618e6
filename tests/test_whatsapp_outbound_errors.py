"""When WhatsApp says no: throttling and outages retry with backoff, refusals fail the message with a
reason the agent can act on, and a reply is never sent twice."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conversation_support import Db, count
from tests.support import Actor, LiveServer, new_account
from tests.whatsapp_outbound_support import (
    cloud_inbox,
    customer_writes,
    live_with_graph,
    reply,
    wa_id,
    wait_for_jobs,
    wait_for_message,
)
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, GraphError, serve_fake_graph
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.jobs.service import defer

DELIVER = "whatsapp.deliver_message"


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    with serve_fake_graph() as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, graph: FakeGraphServer) -> Iterator[LiveServer]:
    with live_with_graph(database_url, data_root / "app-whatsapp-outbound-errors", graph) as server:
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
def conversation_id(live: LiveServer, admin: Actor, inbox: dict[str, Any]) -> int:
    conversation, _message, _wamid = customer_writes(live, admin.account_id, inbox["id"], wa_id())
    return conversation


def _jobs_of(db: Db, message_id: int) -> list[tuple[Any, ...]]:
    rows = db.execute(
        "SELECT id, status::text, attempts FROM procrastinate_jobs WHERE task_name = %s "
        "AND (args->>'message_id')::bigint = %s ORDER BY id",
        (DELIVER, message_id),
    ).fetchall()
    return list(rows)


def _message_sends(graph: FakeGraphServer) -> list[int]:
    return [r.status for r in graph.state.requests_to("messages", "POST")]


def test_a_rate_limited_reply_is_retried_and_then_sent(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int, db_conn: Db
) -> None:
    graph.state.fail_next("rate_limit", endpoint="messages")
    created = reply(client, admin, conversation_id, content="after a pause")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "sent" and settled["external_error"] is None
    assert _message_sends(graph) == [429, 200]
    ((_job, status, attempts),) = _jobs_of(db_conn, created["id"])
    assert (status, attempts) == ("succeeded", 2)


def test_a_server_error_and_an_outage_are_retried(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    graph.state.fail_next("server_error", endpoint="messages")
    graph.state.fail_next("unavailable", endpoint="messages")
    created = reply(client, admin, conversation_id, content="third time lucky")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "sent"
    assert _message_sends(graph) == [500, 503, 200]


def test_a_reply_that_keeps_failing_is_marked_failed_on_the_last_attempt(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int, db_conn: Db
) -> None:
    graph.state.fail_next("unavailable", times=3, endpoint="messages")
    created = reply(client, admin, conversation_id, content="into the void")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "failed"
    assert settled["external_error"].startswith("WhatsApp did not accept the message after several attempts")
    assert _message_sends(graph) == [503, 503, 503]
    wait_for_jobs(db_conn, DELIVER, 1)
    ((_job, status, attempts),) = _jobs_of(db_conn, created["id"])
    # The job is left failed too, where an administrator sees it in the failed-jobs list.
    assert (status, attempts) == ("failed", 3)


def test_outside_the_24_hour_window_the_agent_is_told_to_send_a_template(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int, db_conn: Db
) -> None:
    graph.state.fail_next("reengagement", endpoint="messages")
    created = reply(client, admin, conversation_id, content="are you still there?")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "failed" and settled["source_id"] is None
    error = settled["external_error"]
    assert "24-hour customer-service window is closed" in error
    assert "send a template message" in error and "131047" in error
    assert _message_sends(graph) == [400]
    ((_job, status, attempts),) = _jobs_of(db_conn, created["id"])
    assert (status, attempts) == ("succeeded", 1)
    failed_events = count(
        db_conn,
        "SELECT count(*) FROM events WHERE event_type = 'message.updated' AND (payload->>'id')::bigint = %s "
        "AND payload->>'status' = 'failed' AND payload->>'external_error' LIKE %s",
        created["id"],
        "%template%",
    )
    assert failed_events == 1


def test_an_expired_token_fails_the_reply_with_the_token_reason(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    graph.state.fail_next("expired_token", endpoint="messages")
    created = reply(client, admin, conversation_id, content="hello")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "failed"
    assert settled["external_error"].startswith("Meta rejected the access token (code 190)")
    assert "Update the inbox's access token" in settled["external_error"]
    assert _message_sends(graph) == [401]


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        ("recipient_not_on_whatsapp", "could not deliver the message to this number (code 131026)"),
        ("invalid_parameter", "refused a parameter of the request (code 100)"),
        (
            GraphError(400, 132001, "(#132001) Template name does not exist in the translation"),
            "(code 132001)",
        ),
    ],
)
def test_permanent_refusals_fail_at_once_with_meta_s_reason(
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    failure: str | GraphError,
    expected: str,
) -> None:
    graph.state.fail_next(failure, endpoint="messages")
    created = reply(client, admin, conversation_id, content="hello")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "failed"
    assert expected in settled["external_error"], settled["external_error"]
    assert len(_message_sends(graph)) == 1


def test_a_failed_media_upload_is_retried_before_the_send(
    graph: FakeGraphServer, client: httpx.Client, admin: Actor, conversation_id: int
) -> None:
    graph.state.fail_next("server_error", endpoint="media_upload")
    response = client.post(
        admin.path(f"conversations/{conversation_id}/messages"),
        data={"content_type": "image"},
        files=[("attachments[]", ("p.png", b"\x89PNG\r\n\x1a\n" + b"1" * 32, "image/png"))],
        headers=admin.headers,
    )
    assert response.status_code == 201, response.text
    settled = wait_for_message(client, admin, conversation_id, response.json()["id"])
    assert settled["status"] == "sent"
    assert [r.status for r in graph.state.requests_to("media_upload")] == [500, 200]
    assert _message_sends(graph) == [200]


def test_running_the_delivery_job_again_sends_nothing_more(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    db_conn: Db,
) -> None:
    created = reply(client, admin, conversation_id, content="only once")
    settled = wait_for_message(client, admin, conversation_id, created["id"])
    assert settled["status"] == "sent"

    async def again(context: AppContext) -> None:
        async with transaction(context.sessionmaker) as session:
            for _ in range(2):
                await defer(session, DELIVER, {"account_id": admin.account_id, "message_id": created["id"]})

    live.run(again)
    deadline_jobs = 3
    for _ in range(300):
        jobs = _jobs_of(db_conn, created["id"])
        if len(jobs) == deadline_jobs and all(status == "succeeded" for _id, status, _a in jobs):
            break
        time.sleep(0.05)
    assert [status for _id, status, _a in _jobs_of(db_conn, created["id"])] == ["succeeded"] * 3
    assert _message_sends(graph) == [200]
    after = wait_for_message(client, admin, conversation_id, created["id"])
    assert after["source_id"] == settled["source_id"]


def test_a_failed_reply_is_not_resent_by_a_later_run(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    db_conn: Db,
) -> None:
    graph.state.fail_next("reengagement", endpoint="messages")
    created = reply(client, admin, conversation_id, content="too late")
    assert wait_for_message(client, admin, conversation_id, created["id"])["status"] == "failed"

    async def again(context: AppContext) -> None:
        async with transaction(context.sessionmaker) as session:
            await defer(session, DELIVER, {"account_id": admin.account_id, "message_id": created["id"]})

    live.run(again)
    wait_for_jobs(
        db_conn,
        DELIVER,
        count(db_conn, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", DELIVER),
    )
    assert _message_sends(graph) == [400]


def test_a_job_for_a_message_of_another_account_does_nothing(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    db_conn: Db,
) -> None:
    created = reply(client, admin, conversation_id, content="mine")
    assert wait_for_message(client, admin, conversation_id, created["id"])["status"] == "sent"
    graph.state.reset()
    other = new_account(live, client)

    async def cross(context: AppContext) -> None:
        async with transaction(context.sessionmaker) as session:
            await defer(session, DELIVER, {"account_id": other.account_id, "message_id": created["id"]})

    live.run(cross)
    wait_for_jobs(
        db_conn,
        DELIVER,
        count(db_conn, "SELECT count(*) FROM procrastinate_jobs WHERE task_name = %s", DELIVER),
    )
    assert _message_sends(graph) == []


def test_an_attachment_missing_from_storage_fails_the_reply_without_retrying(
    live: LiveServer,
    graph: FakeGraphServer,
    client: httpx.Client,
    admin: Actor,
    conversation_id: int,
    db_conn: Db,
) -> None:
    row = db_conn.execute(
        "INSERT INTO messages (account_id, conversation_id, inbox_id, message_type, content, content_type, "
        "status, sender_type, sender_id) SELECT account_id, id, inbox_id, 'outgoing', 'lost', 'image', "
        "'pending', 'user', %s FROM conversations WHERE id = %s RETURNING id",
        (admin.user_id, conversation_id),
    ).fetchone()
    assert row is not None
    message_id = int(row[0])
    db_conn.execute(
        "INSERT INTO attachments (account_id, message_id, file_type, mime_type, file_name, byte_size, "
        "storage_key) VALUES (%s, %s, 'image', 'image/png', 'gone.png', 10, %s)",
        (admin.account_id, message_id, "0" * 64),
    )

    async def deliver(context: AppContext) -> None:
        async with transaction(context.sessionmaker) as session:
            await defer(session, DELIVER, {"account_id": admin.account_id, "message_id": message_id})

    live.run(deliver)
    settled = wait_for_message(client, admin, conversation_id, message_id)
    assert settled["status"] == "failed"
    assert "'gone.png' is missing from storage" in settled["external_error"]
    assert [status for _id, status, _a in _jobs_of(db_conn, message_id)] == ["succeeded"]
    assert graph.state.requests_to("media_upload") == [] and _message_sends(graph) == []
