"""Real-time events over SSE: only what was committed, only to who may see it, replayed on reconnect."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.sse_client import SseStream
from tests.support import Actor, LiveServer, add_user, assert_problem, new_account, unique
from whatwut.context import AppContext
from whatwut.db.engine import transaction
from whatwut.jobs.service import defer
from whatwut.realtime import service as realtime
from whatwut.realtime.hub import Subscription
from whatwut.realtime.service import PublishedEvent


class Rollback(Exception):
    pass


def publish(
    live: LiveServer,
    account_id: int,
    event_type: str,
    payload: dict[str, Any],
    *,
    inbox_id: int | None = None,
    commit: bool = True,
    count: int = 1,
) -> list[int]:
    """Publish through the service in one transaction, committed or rolled back; returns the ids."""

    async def go(context: AppContext) -> list[int]:
        ids: list[int] = []
        try:
            async with transaction(context.sessionmaker) as session:
                for _ in range(count):
                    ids.append(
                        await realtime.publish(session, account_id, event_type, payload, inbox_id=inbox_id)
                    )
                if not commit:
                    raise Rollback
        except Rollback:
            pass
        return ids

    return live.run(go)  # type: ignore[return-value]


def events_stream(live: LiveServer, actor: Actor, **kwargs: Any) -> SseStream:
    return SseStream(
        live.url, actor.path("events"), headers={**actor.headers, **kwargs.pop("headers", {})}, **kwargs
    )


def marker(live: LiveServer, actor: Actor) -> str:
    """Publish a visible event that tells a test everything committed before it has been delivered."""
    tag = unique("marker")
    publish(live, actor.account_id, "conversation.updated", {"marker": tag})
    return tag


def is_marker(tag: str):  # type: ignore[no-untyped-def]
    return lambda event: event.event == "conversation.updated" and event.payload.get("marker") == tag


def new_inbox(client: httpx.Client, admin: Actor, member_ids: list[int]) -> int:
    created = client.post(
        admin.path("inboxes"),
        json={"name": unique("Inbox"), "channel": {"type": "api"}},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    inbox_id = int(created.json()["id"])
    if member_ids:
        members = client.post(
            admin.path(f"inboxes/{inbox_id}/members"), json={"user_ids": member_ids}, headers=admin.headers
        )
        assert members.status_code == 200, members.text
    return inbox_id


def test_committed_event_reaches_the_stream(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    with events_stream(live, admin) as stream:
        assert stream.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        stream.wait_connected()
        [event_id] = publish(live, admin.account_id, "message.created", {"id": 7, "content": "hello"})
        event = stream.next_event()
    assert event is not None
    assert event.id == str(event_id) and event.event == "message.created"
    assert event.payload == {"id": 7, "content": "hello"}


def test_rolled_back_event_never_arrives(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    with events_stream(live, admin) as stream:
        stream.wait_connected()
        [ghost] = publish(live, admin.account_id, "message.created", {"ghost": True}, commit=False)
        tag = marker(live, admin)
        seen = stream.until(is_marker(tag))
    assert [e.id for e in seen if e.id == str(ghost)] == []
    assert all(not e.payload.get("ghost") for e in seen)
    # And it is not in the log either, so no replay can bring it back.
    with events_stream(live, admin, headers={"Last-Event-ID": str(ghost - 1)}) as replay:
        replay.wait_connected()
        first = replay.next_event()
    assert first is not None and first.id != str(ghost)


def test_other_accounts_never_see_the_events_and_get_404(live: LiveServer, client: httpx.Client) -> None:
    alice = new_account(live, client)
    bob = new_account(live, client)
    with events_stream(live, bob) as bob_stream:
        bob_stream.wait_connected()
        publish(live, alice.account_id, "message.created", {"secret": "alice's"})
        tag = marker(live, bob)
        seen = bob_stream.until(is_marker(tag))
    assert len(seen) == 1, seen
    with SseStream(live.url, alice.path("events"), headers=bob.headers) as intruder:
        assert intruder.status_code == 404
    assert_problem(client.get(alice.path("events"), headers=bob.headers), 404)
    assert_problem(client.get(alice.path("events")), 401)
    assert_problem(client.get("/api/v1/accounts/0/events", headers=alice.headers), 422)


def test_agents_receive_only_the_events_of_their_inboxes(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    insider = add_user(live, client, admin.account_id, role="agent")
    outsider = add_user(live, client, admin.account_id, role="agent")
    inbox_id = new_inbox(client, admin, [insider.user_id])
    streams = {
        name: events_stream(live, actor)
        for name, actor in [("admin", admin), ("in", insider), ("out", outsider)]
    }
    for stream in streams.values():
        stream.__enter__()
        stream.wait_connected()
    try:
        [scoped] = publish(live, admin.account_id, "message.created", {"inbox": "private"}, inbox_id=inbox_id)
        tag = marker(live, admin)
        seen = {name: [e.id for e in stream.until(is_marker(tag))] for name, stream in streams.items()}
    finally:
        for stream in streams.values():
            stream.__exit__(None, None, None)
    assert str(scoped) in seen["admin"]
    assert str(scoped) in seen["in"]
    assert str(scoped) not in seen["out"] and len(seen["out"]) == 1

    # Replay applies the same rule.
    with events_stream(live, outsider, params={"last_event_id": scoped - 1}) as replay:
        replay.wait_connected()
        first = replay.next_event()
    assert first is not None and first.id != str(scoped)


def test_last_event_id_replays_what_was_missed_then_continues_live(
    live: LiveServer, client: httpx.Client
) -> None:
    admin = new_account(live, client)
    first, second, third = publish(live, admin.account_id, "conversation.created", {"n": 1}, count=3)
    with events_stream(live, admin, headers={"Last-Event-ID": str(first)}) as stream:
        stream.wait_connected()
        replayed = [stream.next_event(), stream.next_event()]
        [live_id] = publish(live, admin.account_id, "conversation.status_changed", {"status": "resolved"})
        live_event = stream.next_event()
    assert [e.id for e in replayed if e] == [str(second), str(third)]
    assert live_event is not None and live_event.id == str(live_id)
    assert live_event.event == "conversation.status_changed"

    # The query parameter seeds the first connection the same way.
    with events_stream(live, admin, params={"last_event_id": second}) as stream:
        stream.wait_connected()
        event = stream.next_event()
    assert event is not None and event.id == str(third)


def test_replay_and_live_overlap_without_duplicates(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    [start] = publish(live, admin.account_id, "conversation.created", {"n": 0})
    with events_stream(live, admin, headers={"Last-Event-ID": str(start)}) as stream:
        stream.wait_connected()
        ids = publish(live, admin.account_id, "conversation.updated", {"n": 1}, count=5)
        tag = marker(live, admin)
        seen = [e.id for e in stream.until(is_marker(tag))]
    assert seen[:-1] == [str(i) for i in ids]


def test_too_many_missed_events_ask_the_client_to_resync(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    [start] = publish(live, admin.account_id, "conversation.created", {"n": 0})
    ids = publish(live, admin.account_id, "conversation.updated", {"bulk": True}, count=501)
    with events_stream(live, admin, headers={"Last-Event-ID": str(start)}) as stream:
        stream.wait_connected()
        event = stream.next_event()
        tag = marker(live, admin)
        after = stream.until(is_marker(tag))
    assert event is not None and event.event == "stream.resync" and event.id == str(ids[-1])
    assert len(after) == 1


def test_bad_last_event_id_is_a_problem_naming_it(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    response = client.get(admin.path("events"), headers={**admin.headers, "Last-Event-ID": "abc"})
    assert_problem(response, 422, field="Last-Event-ID")
    assert_problem(
        client.get(admin.path("events"), params={"last_event_id": "-1"}, headers=admin.headers), 422
    )


def test_browser_session_cookie_opens_the_stream(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    from tests.support import PASSWORD

    signed_in = client.post("/auth/session", json={"email": admin.email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.cookies.get("whatwut_session")
    assert cookie
    with SseStream(live.url, admin.path("events"), headers={"Cookie": f"whatwut_session={cookie}"}) as stream:
        assert stream.status_code == 200
        stream.wait_connected()
        [event_id] = publish(live, admin.account_id, "presence.updated", {"user_id": admin.user_id})
        event = stream.next_event()
    assert event is not None and event.id == str(event_id)


def test_presence_change_over_http_is_streamed(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    with events_stream(live, admin) as stream:
        stream.wait_connected()
        changed = client.put(
            admin.path("profile/availability"), json={"availability": "online"}, headers=admin.headers
        )
        assert changed.status_code == 200, changed.text
        event = stream.next_event()
    assert event is not None and event.event == "presence.updated"
    assert event.payload == {"user_id": admin.user_id, "availability": "online"}


@pytest.mark.asyncio
async def test_a_slow_subscriber_is_dropped_not_the_process() -> None:
    subscription = Subscription(account_id=1, maxsize=2)
    event = PublishedEvent(1, 1, "message.created", {}, None, __import__("datetime").datetime.now())
    assert subscription.offer(event) and subscription.offer(event)
    assert not subscription.offer(event)
    assert subscription.closed_reason == "too slow"
    assert await subscription.get(0.1) is None
    assert subscription.offer(event)  # closed: further events are ignored, nothing raises
    await asyncio.sleep(0)


def test_listener_reconnects_after_its_connection_dies_and_clients_replay(
    live: LiveServer, client: httpx.Client, db_conn
) -> None:
    admin = new_account(live, client)
    with events_stream(live, admin) as stream:
        stream.wait_connected()
        [before] = publish(live, admin.account_id, "conversation.updated", {"n": "before"})
        first = stream.next_event()
        assert first is not None and first.id == str(before)
        killed = db_conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'whatwut-realtime' AND datname = current_database()"
        ).fetchall()
        assert killed == [(True,)]
        # Notifications may be lost while the listener is down: the stream ends so the client replays.
        assert stream.next_event(timeout=10) is None
    [missed] = publish(live, admin.account_id, "conversation.updated", {"n": "missed"})
    with events_stream(live, admin, headers={"Last-Event-ID": str(before)}) as again:
        again.wait_connected()
        replayed = again.next_event()
        [after] = publish(live, admin.account_id, "conversation.updated", {"n": "after"})
        live_again = again.next_event()
    assert replayed is not None and replayed.id == str(missed)
    assert live_again is not None and live_again.id == str(after)


def test_prune_job_forgets_events_older_than_a_week(live: LiveServer, client: httpx.Client, db_conn) -> None:
    admin = new_account(live, client)
    old, recent = publish(live, admin.account_id, "conversation.updated", {"n": 1}, count=2)
    db_conn.execute("UPDATE events SET created_at = now() - interval '8 days' WHERE id = %s", (old,))

    async def defer_prune(context: AppContext) -> int:
        async with transaction(context.sessionmaker) as session:
            return await defer(session, "realtime.prune_events", {"timestamp": int(time.time())})

    job_id = live.run(defer_prune)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = db_conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE id = %s", (job_id,)
        ).fetchone()
        if row and row[0] in {"succeeded", "failed"}:
            break
        time.sleep(0.1)
    assert row is not None and row[0] == "succeeded"
    remaining = [r[0] for r in db_conn.execute("SELECT id FROM events WHERE id = ANY(%s)", ([old, recent],))]
    assert remaining == [recent]
