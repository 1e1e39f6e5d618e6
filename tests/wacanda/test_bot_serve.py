"""``whatwut serve --demo`` end to end, as ``make run`` does it: the Wacanda it starts is the Demo
account's AI agent on the WhatsApp sandbox, answers from the demo documents with sources, and
hands the conversation to a person on request. Real processes, real HTTP, embedded PostgreSQL."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import free_port, stop_process, wait_healthy
from tests.test_serve_demo import serve_demo
from whatwut.bootstrap import DEMO_EMAIL, DEMO_PASSWORD

WHATWUT = str(Path(sys.executable).parent / "whatwut")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ww-bot-demo-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def sandbox_send(base: str, phone: str, text: str) -> None:
    done = subprocess.run(
        [WHATWUT, "sandbox", "send", "--url", base, "--from", phone, text],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def latest_conversation(
    base: str, headers: dict[str, str], account_id: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    conversations = httpx.get(
        f"{base}/api/v1/accounts/{account_id}/conversations", params={"status": "all"}, headers=headers
    ).json()["data"]
    sandbox = [c for c in conversations if c["contact"]["name"] == "Sandbox customer"]
    if not sandbox:
        return {}, []
    conversation = sandbox[0]
    messages = httpx.get(
        f"{base}/api/v1/accounts/{account_id}/conversations/{conversation['id']}/messages", headers=headers
    ).json()["data"]
    return conversation, messages


def create_admin(data_dir: Path, email: str, password: str, account: str) -> subprocess.CompletedProcess[str]:
    """``whatwut create-admin`` in another process on the same data directory, as an operator runs it."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "WHATWUT_"))
    }
    env.update({"WHATWUT_DATA_DIR": str(data_dir), "NO_COLOR": "1", "COLUMNS": "200"})
    return subprocess.run(
        [WHATWUT, "create-admin", "--email", email, "--password", password, "--account", account],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def wait_for(check: Any, seconds: float = 120) -> Any:
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
    return result


def test_the_demo_answers_on_the_sandbox_and_hands_off_on_request(data_dir: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = serve_demo(data_dir, port)
    try:
        wait_healthy(base, process)
        login = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD}
        ).json()
        account_id = login["accounts"][0]["id"]
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        bots_file = data_dir / "wacanda-bots.json"
        wait_for(bots_file.exists)
        assert stat.S_IMODE(bots_file.stat().st_mode) == 0o600
        (demo_key,) = [entry["api_key"] for entry in json.loads(bots_file.read_text())["agents"].values()]

        # The demo documents are ingested in the background at start: wait until search finds them.
        wait_for(
            lambda: (
                httpx.get(
                    f"{base}/api/knowledge-base/search", params={"q": "refunds"}, headers=headers, timeout=30
                )
                .json()
                .get("results")
            )
        )
        sandbox_send(base, "+15550009", "How long do refunds take?")
        answer = wait_for(
            lambda: next(
                (
                    m
                    for m in latest_conversation(base, headers, account_id)[1]
                    if m["sender"] and m["sender"]["type"] == "bot"
                ),
                None,
            )
        )
        assert "5 business days" in answer["content"], answer
        assert answer["content_attributes"]["sources"][0]["document"] == "returns.md"
        assert "Sources:" in answer["content"]
        wait_for(
            lambda: (
                latest_conversation(base, headers, account_id)[1][-1]["status"]
                in ("sent", "delivered", "read")
            )
        )

        sandbox_send(base, "+15550009", "I want to talk to a human")
        conversation, messages = wait_for(
            lambda: (
                (found := latest_conversation(base, headers, account_id))[0].get("status") == "open" and found
            )
        )
        assert conversation["ai_agent_id"] is None
        assert any(
            m["content"] == "Wacanda handed the conversation to a human: customer asked for a person"
            for m in messages
            if m["message_type"] == "activity"
        )

        # An account created while serve runs gets its Wacanda agent at once, no restart needed.
        created = create_admin(data_dir, "owner@later.example", "later-pass-1", "Later")
        assert created.returncode == 0, created.stdout + created.stderr
        assert "AI agent Wacanda ready" in created.stdout + created.stderr
        later = httpx.post(
            f"{base}/api/v1/auth/login", json={"email": "owner@later.example", "password": "later-pass-1"}
        ).json()
        (later_id,) = [a["id"] for a in later["accounts"] if a["name"] == "Later"]
        agents = httpx.get(
            f"{base}/api/v1/accounts/{later_id}/ai_agents",
            headers={"Authorization": f"Bearer {later['access_token']}"},
        ).json()["data"]
        assert [agent["name"] for agent in agents] == ["Wacanda"]
        entries = json.loads(bots_file.read_text())["agents"]
        assert str(agents[0]["id"]) in entries and len(entries) == 2  # the Demo's kept its own
        # The credentials Wacanda reads from the file sign in to WhatWut's Agent API.
        auth = httpx.post(
            f"{base}/api/agents/auth", json={"api_key": entries[str(agents[0]["id"])]["api_key"]}
        )
        assert auth.status_code == 200, auth.text
        assert auth.json()["agent"]["id"] == agents[0]["id"]
        assert httpx.post(f"{base}/api/agents/auth", json={"api_key": demo_key}).status_code == 200
    finally:
        stop_process(process)
