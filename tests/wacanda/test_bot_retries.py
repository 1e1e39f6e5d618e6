"""Wacanda's side of the bot contract against a scripted WhatWut (a real HTTP server on 127.0.0.1):
a signed webhook is answered through the Agent API, and a WhatWut hiccup is retried without running
the pipeline twice."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.wacanda.conftest import WacandaServer
from whatwut.bots.signing import sign

AGENT_ID = 424242
SECRET = "scripted-whatwut-secret"


class ScriptedWhatWut:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.failures: dict[str, int] = {}
        self.lock = threading.Lock()
        self.url = ""

    def wait_for(self, predicate: Any, seconds: float = 60) -> list[tuple[str, str, dict[str, Any]]]:
        deadline = time.monotonic() + seconds
        while not predicate(self.calls):
            assert time.monotonic() < deadline, self.calls
            time.sleep(0.1)
        return list(self.calls)


@pytest.fixture(scope="module")
def whatwut() -> Iterator[ScriptedWhatWut]:
    state = ScriptedWhatWut()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            payload = json.loads(body) if body else {}
            kind = self.path.rsplit("/", 1)[-1]
            with state.lock:
                state.calls.append((self.command, self.path, payload))
                failing = state.failures.get(kind, 0)
                if failing:
                    state.failures[kind] = failing - 1
            status = 503 if failing else (201 if self.command == "POST" and kind == "messages" else 200)
            reply = {"access_token": "scripted-token"} if kind == "auth" else {}
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state
    server.shutdown()


@pytest.fixture(scope="module")
def registered(whatwut: ScriptedWhatWut, data_root: Path) -> None:
    path = data_root / f"wacanda-{__name__.rsplit('.', 1)[-1]}" / "wacanda-bots.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {"api_url": whatwut.url, "agents": {str(AGENT_ID): {"api_key": "k", "webhook_secret": SECRET}}}
        )
    )


def deliver(
    wacanda: WacandaServer, account_id: int, conversation_id: int, message_id: int, text: str, event_id: str
) -> httpx.Response:
    body = json.dumps(
        {
            "event": "message_created",
            "id": event_id,
            "account": {"id": account_id},
            "conversation": {"id": conversation_id},
            "message": {"id": message_id, "content": text, "content_type": "text"},
        }
    ).encode()
    return httpx.post(
        f"{wacanda.url}/webhooks/whatwut",
        content=body,
        headers={"X-WhatWut-Agent-Id": str(AGENT_ID), "X-WhatWut-Signature": sign(SECRET, body)},
        timeout=30,
    )


def test_a_whatwut_hiccup_is_retried_without_answering_twice(
    wacanda_live: WacandaServer, whatwut: ScriptedWhatWut, registered: None
) -> None:
    account_id = random.randint(10_000, 2**40)
    conversation_id = random.randint(1, 2**40)
    with whatwut.lock:
        whatwut.failures["sentiment"] = 2
    response = deliver(
        wacanda_live, account_id, conversation_id, 7, "What is the capital of Australia?", "evt-1"
    )
    assert response.status_code == 202, response.text
    calls = whatwut.wait_for(lambda c: any(m == "PUT" and p.endswith("/status") for m, p, _ in c))
    mine = [(m, p.rsplit("/", 1)[-1], body) for m, p, body in calls if f"/{conversation_id}/" in p]
    assert [kind for _, kind, _ in mine] == ["sentiment", "sentiment", "sentiment", "messages", "status"]
    assert mine[-1][2]["reason"] == "low_confidence" and mine[-1][2]["status"] == "open"
    with psycopg.connect(wacanda_live.database_url) as db:
        turns = db.execute(
            "SELECT count(*) FROM wacanda.chat_messages m"
            " JOIN wacanda.chat_sessions s ON s.id = m.session_id"
            " WHERE s.account_id = %s AND s.external_id = %s",
            (account_id, f"whatwut:{conversation_id}"),
        ).fetchone()
    assert turns == (2,), "one customer message and one reply: the pipeline ran once"
