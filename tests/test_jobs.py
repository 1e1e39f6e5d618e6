"""Jobs: deferred with their data or not at all, idempotent, retried with backoff, failures an
administrator can see and retry. The live server's in-process worker runs them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests import jobs_for_tests
from tests.support import LiveServer, add_user, assert_problem, new_account, start_live_server, unique
from whatwut.context import AppContext
from whatwut.jobs.service import defer

ADMIN_JOBS = "/api/v1/admin/jobs"


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, db_conn: psycopg.Connection[Any]) -> Iterator[LiveServer]:
    """The app with its in-process worker polling fast, so retries scheduled in 0.4 s run promptly."""
    for ddl in jobs_for_tests.EFFECTS_DDL:
        db_conn.execute(ddl)
    with start_live_server(
        database_url, data_root / "app-test_jobs", WHATWUT_WORKER_POLL_SECONDS=0.1
    ) as server:
        yield server


def defer_job(live: LiveServer, task: str, args: dict[str, Any], *, commit: bool = True) -> int:
    async def go(context: AppContext) -> int:
        async with context.sessionmaker() as session:
            job_id = await defer(session, task, args)
            if commit:
                await session.commit()
            else:
                await session.rollback()
            return job_id

    return live.run(go)  # type: ignore[return-value]


def wait_until(condition: Callable[[], Any], *, seconds: float = 20, what: str = "condition") -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def job_row(db: psycopg.Connection[Any], job_id: int) -> tuple[str, int] | None:
    return db.execute(
        "SELECT status::text, attempts FROM procrastinate_jobs WHERE id = %s", (job_id,)
    ).fetchone()


def runs(db: psycopg.Connection[Any], key: str) -> list[Any]:
    return [r[0] for r in db.execute("SELECT at FROM test_job_runs WHERE key = %s ORDER BY id", (key,))]


def effects(db: psycopg.Connection[Any], key: str) -> int:
    return int(db.execute("SELECT count(*) FROM test_job_effects WHERE key = %s", (key,)).fetchone()[0])


def finished(db: psycopg.Connection[Any], job_id: int, status: str) -> Callable[[], bool]:
    return lambda: (row := job_row(db, job_id)) is not None and row[0] == status


def test_job_deferred_in_a_rolled_back_transaction_does_not_exist(live: LiveServer, db_conn) -> None:
    key = unique("rolled-back")
    job_id = defer_job(live, "tests.record_effect", {"key": key}, commit=False)
    assert job_row(db_conn, job_id) is None
    assert (
        db_conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE args->>'key' = %s", (key,)).fetchone()[
            0
        ]
        == 0
    )
    time.sleep(0.5)
    assert runs(db_conn, key) == []


def test_committed_job_exists_and_runs_exactly_once(live: LiveServer, db_conn) -> None:
    key = unique("committed")
    job_id = defer_job(live, "tests.record_effect", {"key": key})
    assert job_row(db_conn, job_id) is not None
    wait_until(finished(db_conn, job_id, "succeeded"), what="the job to succeed")
    time.sleep(0.5)  # a second run, if there were one, would have happened by now
    assert len(runs(db_conn, key)) == 1
    assert effects(db_conn, key) == 1
    assert job_row(db_conn, job_id) == ("succeeded", 1)


def test_job_retried_after_its_effect_was_committed_leaves_one_effect(live: LiveServer, db_conn) -> None:
    key = unique("crash-once")
    job_id = defer_job(live, "tests.crash_after_effect_once", {"key": key})
    wait_until(finished(db_conn, job_id, "succeeded"), what="the retried job to succeed")
    assert len(runs(db_conn, key)) == 2
    assert effects(db_conn, key) == 1


def test_the_same_job_deferred_twice_leaves_one_effect(live: LiveServer, db_conn) -> None:
    key = unique("twice")
    first = defer_job(live, "tests.record_effect", {"key": key})
    second = defer_job(live, "tests.record_effect", {"key": key})
    wait_until(finished(db_conn, first, "succeeded"), what="the first job")
    wait_until(finished(db_conn, second, "succeeded"), what="the second job")
    assert len(runs(db_conn, key)) == 2
    assert effects(db_conn, key) == 1


def test_failing_job_is_retried_with_growing_waits_then_stays_failed(
    live: LiveServer, client, db_conn
) -> None:
    admin = new_account(live, client)
    key = unique("fails")
    job_id = defer_job(live, "tests.always_fails", {"key": key, "account_id": admin.account_id})
    wait_until(finished(db_conn, job_id, "failed"), what="the job to fail for good")
    attempts = runs(db_conn, key)
    assert len(attempts) == 3  # Backoff(max_attempts=3): the first run and two retries
    first_wait = (attempts[1] - attempts[0]).total_seconds()
    second_wait = (attempts[2] - attempts[1]).total_seconds()
    assert first_wait >= 0.4 and second_wait >= 0.8, (first_wait, second_wait)
    time.sleep(1.0)
    assert len(runs(db_conn, key)) == 3 and job_row(db_conn, job_id)[0] == "failed"

    listed = client.get(ADMIN_JOBS, params={"status": "failed"}, headers=admin.headers)
    assert listed.status_code == 200, listed.text
    job = next(j for j in listed.json()["data"] if j["id"] == job_id)
    assert job["task_name"] == "tests.always_fails" and job["status"] == "failed"
    assert job["account_id"] == admin.account_id and job["args"] == {
        "key": key,
        "account_id": admin.account_id,
    }
    types = [event["type"] for event in job["history"]]
    assert types.count("deferred_for_retry") == 2 and types[-1] == "failed", types


def test_admin_retries_a_failed_job_through_the_api(live: LiveServer, client, db_conn) -> None:
    admin = new_account(live, client)
    key = unique("retry-api")
    job_id = defer_job(live, "tests.always_fails", {"key": key, "account_id": admin.account_id})
    wait_until(finished(db_conn, job_id, "failed"), what="the job to fail for good")

    response = client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["id"] == job_id and response.json()["status"] in {"todo", "doing", "failed"}
    wait_until(lambda: len(runs(db_conn, key)) == 4, what="the retried run")
    wait_until(finished(db_conn, job_id, "failed"), what="the job to fail again")
    audit = db_conn.execute(
        "SELECT count(*) FROM audit_logs"
        " WHERE account_id = %s AND action = 'job.retried' AND subject_id = %s",
        (admin.account_id, job_id),
    ).fetchone()[0]
    assert audit == 1


def test_job_admin_api_is_for_administrators_and_hides_other_accounts(
    live: LiveServer, client, db_conn
) -> None:
    owner = new_account(live, client)
    stranger = new_account(live, client)
    agent = add_user(live, client, owner.account_id, role="agent")
    key = unique("private")
    job_id = defer_job(live, "tests.always_fails", {"key": key, "account_id": owner.account_id})
    wait_until(finished(db_conn, job_id, "failed"), what="the job to fail for good")

    assert_problem(client.get(ADMIN_JOBS), 401)
    assert_problem(client.get(ADMIN_JOBS, headers=agent.headers), 403)
    assert_problem(client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=agent.headers), 403)
    seen = client.get(ADMIN_JOBS, params={"status": "all", "limit": 100}, headers=stranger.headers)
    assert seen.status_code == 200
    assert job_id not in [j["id"] for j in seen.json()["data"]]
    assert_problem(client.post(f"{ADMIN_JOBS}/{job_id}/retry", headers=stranger.headers), 404, field="job_id")
    assert job_row(db_conn, job_id)[0] == "failed"


def test_instance_jobs_are_listed_without_their_arguments(live: LiveServer, client, db_conn) -> None:
    admin = new_account(live, client)
    job_id = defer_job(live, "tests.record_effect", {"key": unique("instance")})
    wait_until(finished(db_conn, job_id, "succeeded"), what="the job")
    listed = client.get(
        ADMIN_JOBS, params={"status": "succeeded", "task": "tests.record_effect"}, headers=admin.headers
    )
    job = next(j for j in listed.json()["data"] if j["id"] == job_id)
    assert job["args"] is None and job["account_id"] is None


def test_job_admin_api_rejects_bad_input(live: LiveServer, client, db_conn) -> None:
    admin = new_account(live, client)
    done = defer_job(live, "tests.record_effect", {"key": unique("done"), "account_id": admin.account_id})
    wait_until(finished(db_conn, done, "succeeded"), what="the job")

    assert_problem(
        client.get(ADMIN_JOBS, params={"status": "exploded"}, headers=admin.headers), 422, field="status"
    )
    assert_problem(client.get(ADMIN_JOBS, params={"limit": 0}, headers=admin.headers), 422, field="limit")
    assert_problem(
        client.get(ADMIN_JOBS, params={"cursor": "%%%"}, headers=admin.headers), 422, field="cursor"
    )
    assert_problem(client.post(f"{ADMIN_JOBS}/{done}/retry", headers=admin.headers), 409, field="job_id")
    assert_problem(client.post(f"{ADMIN_JOBS}/0/retry", headers=admin.headers), 422, field="job_id")
    assert_problem(client.post(f"{ADMIN_JOBS}/999999999/retry", headers=admin.headers), 404, field="job_id")
    assert job_row(db_conn, done) == ("succeeded", 1)


def test_job_list_pages_with_a_cursor(live: LiveServer, client, db_conn) -> None:
    admin = new_account(live, client)
    ids = [
        defer_job(live, "tests.record_effect", {"key": unique("page"), "account_id": admin.account_id})
        for _ in range(3)
    ]
    for job_id in ids:
        wait_until(finished(db_conn, job_id, "succeeded"), what="the jobs")
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"status": "succeeded", "task": "tests.record_effect", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(ADMIN_JOBS, params=params, headers=admin.headers).json()
        seen += [j["id"] for j in page["data"] if j["account_id"] == admin.account_id]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids, reverse=True)
