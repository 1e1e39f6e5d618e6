"""The webhook's request path costs the same few statements whatever a delivery holds.

The live server runs without its job worker here, so every statement counted is the request's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests import whatsapp_payloads as wa
from tests.support import LiveServer, new_account, start_live_server, unique

HOOK = "/webhooks/whatsapp/cloud"


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path) -> Iterator[LiveServer]:
    with start_live_server(
        database_url, data_root / "app-whatsapp-queries", WHATWUT_RUN_WORKER=False
    ) as server:
        yield server


class StatementCounter:
    """Counts SQL statements executed by any engine in this process while active."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        with self._lock:
            self.statements.append(statement)

    def __enter__(self) -> StatementCounter:
        event.listen(Engine, "before_cursor_execute", self)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(Engine, "before_cursor_execute", self)


def test_the_webhook_path_runs_a_constant_number_of_statements(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        admin = new_account(live, http)
        channel = wa.cloud_channel()
        response = http.post(
            admin.path("inboxes"), json={"name": unique("Q"), "channel": channel}, headers=admin.headers
        )
        assert response.status_code == 201, response.text

        def deliver(messages: int, statuses: int) -> list[str]:
            senders = [f"55119{n:08d}" for n in range(messages)]
            body = wa.delivery(
                channel["phone_number_id"],
                messages=[wa.text_message(s, "hello") for s in senders],
                contacts=[wa.contact(s) for s in senders],
                statuses=[wa.status(wa.wamid(), "delivered", "1555") for _ in range(statuses)],
            )
            raw, headers = wa.signed(body, channel["app_secret"])
            with StatementCounter() as counter:
                answer = http.post(HOOK, content=raw, headers=headers)
            assert answer.status_code == 200, answer.text
            assert answer.json()["stored"] == messages + statuses
            return [s for s in counter.statements if not s.lstrip().upper().startswith("LISTEN")]

        http.post(HOOK, content=b"{}", headers={"X-Hub-Signature-256": "sha256=" + "0" * 64})  # warm up
        first = deliver(1, 0)
        one = deliver(1, 0)
        many = deliver(50, 20)
        # the first delivery routes the inbox; then its route is cached for a few seconds
        assert len(first) == 2, first
        # store the events and queue their one job in one statement (BEGIN/COMMIT are not statements here)
        assert len(one) == len(many) == 1, (one, many)
