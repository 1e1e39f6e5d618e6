"""The WhatsApp sandbox of ``whatwut serve --demo``, end to end over real HTTP.

The real command runs as a subprocess on the module's database. A sandbox phone's message goes
out as a signed Cloud API webhook to the real endpoint; an agent's reply goes through the real
send job to the fake Graph API mounted in the same server, into the phone's chat, and the
phone's receipts (sent, delivered, read) come back as ``statuses`` webhooks.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import pytest

from tests.support import LiveServer, assert_problem, free_port, stop_process, wait_healthy
from whatwut.bootstrap import DEMO_EMAIL, DEMO_PASSWORD

WHATWUT = str(Path(sys.executable).parent / "whatwut")
T = TypeVar("T")


@dataclass
class DemoServer:
    url: str
    port: int
    process: subprocess.Popen[str]
    account_id: int
    headers: dict[str, str]

    def api(self, suffix: str) -> str:
        return f"{self.url}/api/v1/accounts/{self.account_id}/{suffix.lstrip('/')}"


def start_demo(database_url: str, data_dir: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WHATWUT_", "WHATSAPP_"))}
    env.update(
        {
            "DATABASE_URL": database_url,
            "WHATWUT_DATA_DIR": str(data_dir),
            "WHATWUT_SECRET_KEY": "sandbox-test-secret",
            "WHATWUT_LOG_LEVEL": "WARNING",
            "WHATWUT_WORKER_POLL_SECONDS": "0.5",
            "NO_COLOR": "1",
            "COLUMNS": "200",
        }
    )
    # The channel's own behaviour, without the demo's AI agent answering first (its end-to-end
    # test is tests/wacanda/test_bot_serve.py): people answer the sandbox inbox here.
    return subprocess.Popen(
        [WHATWUT, "serve", "--demo", "--no-wacanda", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def sign_in(url: str) -> tuple[int, dict[str, str]]:
    response = httpx.post(f"{url}/api/v1/auth/login", json={"email": DEMO_EMAIL, "password": DEMO_PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    return int(body["accounts"][0]["id"]), {"Authorization": f"Bearer {body['access_token']}"}


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    # Not pytest's tmp_path (the embedded server's user must reach it; see test_cli).
    path = Path(tempfile.mkdtemp(prefix="ww-sandbox-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def demo(database_url: str, data_dir: Path) -> Iterator[DemoServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_demo(database_url, data_dir, port)
    try:
        wait_healthy(url, process)
        account_id, headers = sign_in(url)
        yield DemoServer(url=url, port=port, process=process, account_id=account_id, headers=headers)
    finally:
        stop_process(process)


def eventually(probe: Callable[[], T | None], *, timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def send(demo: DemoServer, phone: str, text: str, name: str | None = None) -> dict[str, Any]:
    body = {"from": phone, "text": text, **({"name": name} if name else {})}
    response = httpx.post(f"{demo.url}/sandbox/api/messages", json=body, timeout=30)
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


def sandbox_inbox_id(demo: DemoServer) -> int:
    inboxes = httpx.get(demo.api("inboxes"), headers=demo.headers).json()["data"]
    (inbox,) = [i for i in inboxes if i["name"] == "WhatsApp sandbox"]
    return int(inbox["id"])


def conversation_of(demo: DemoServer, contact_name: str) -> dict[str, Any]:
    def find() -> dict[str, Any] | None:
        listed = httpx.get(
            demo.api("conversations"),
            params={"inbox_id": sandbox_inbox_id(demo), "status": "all"},
            headers=demo.headers,
        ).json()["data"]
        return next((c for c in listed if c["contact"]["name"] == contact_name), None)

    return eventually(find, what=f"a conversation with {contact_name}")


def messages_of(demo: DemoServer, conversation_id: int) -> list[dict[str, Any]]:
    response = httpx.get(demo.api(f"conversations/{conversation_id}/messages"), headers=demo.headers)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def phone_chat(demo: DemoServer, phone: str, *, viewing: bool = False) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{demo.url}/sandbox/api/phones/{phone}/messages", params={"viewing": str(viewing).lower()}
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
        + chunk(b"IEND", b"")
    )


# --- the demo's sandbox inbox ----------------------------------------------------------------


def test_demo_has_a_sandbox_cloud_api_inbox_pointing_at_its_own_graph_api(
    demo: DemoServer, db_conn: psycopg.Connection[Any]
) -> None:
    row = db_conn.execute(
        "SELECT channel_type, settings FROM inboxes WHERE id = %s", (sandbox_inbox_id(demo),)
    ).fetchone()
    assert row is not None
    channel_type, settings = row
    assert channel_type == "whatsapp_cloud", "the sandbox runs the production channel, not a special one"
    assert settings["sandbox"] is True
    assert settings["graph_url"] == f"http://127.0.0.1:{demo.port}/sandbox/graph/v23.0"
    details = httpx.get(
        f"{settings['graph_url']}/{settings['phone_number_id']}",
        headers={"Authorization": "Bearer not-the-inbox-token"},
    )
    assert details.status_code == 401, "the mounted fake Graph API accepts only the inbox's token"


def test_a_sandbox_message_becomes_a_conversation_with_the_contact_in_the_demo_account(
    demo: DemoServer, db_conn: psycopg.Connection[Any]
) -> None:
    sent = send(demo, "+15550001", "Hi! Where is my order #4411?", name="Ana Sandbox")
    assert sent["webhook_status"] == 200
    assert sent["message"]["status"] == "delivered" and sent["message"]["direction"] == "from_phone"
    assert sent["phone"] == "+15550001" and sent["chat_url"].startswith("/sandbox?phone=")
    conversation = conversation_of(demo, "Ana Sandbox")
    contents = [
        m["content"] for m in messages_of(demo, conversation["id"]) if m["message_type"] == "incoming"
    ]
    assert "Hi! Where is my order #4411?" in contents
    stored = db_conn.execute(
        "SELECT m.account_id, m.inbox_id, c.name FROM messages m JOIN contacts c ON c.id = m.sender_id"
        " WHERE m.source_id = %s",
        (sent["message"]["wamid"],),
    ).fetchall()
    assert stored == [(demo.account_id, sandbox_inbox_id(demo), "Ana Sandbox")]


def test_an_agent_reply_reaches_the_phone_and_its_ticks_advance_to_read(demo: DemoServer) -> None:
    send(demo, "+15550002", "Can I change my delivery address?", name="Bruno Sandbox")
    conversation = conversation_of(demo, "Bruno Sandbox")
    reply = httpx.post(
        demo.api(f"conversations/{conversation['id']}/messages"),
        json={"content": "Of course! What is the new address?"},
        headers=demo.headers,
    )
    assert reply.status_code in (200, 201), reply.text
    reply_id = reply.json()["id"]

    def on_phone() -> dict[str, Any] | None:
        chat = phone_chat(demo, "15550002")
        return next((m for m in chat if m["direction"] == "to_phone"), None)

    received = eventually(on_phone, what="the reply on the sandbox phone")
    assert received["text"] == "Of course! What is the new address?"
    assert received["wamid"].startswith("wamid.")

    def agent_sees(status: str) -> dict[str, Any] | None:
        found = next(m for m in messages_of(demo, conversation["id"]) if m["id"] == reply_id)
        return found if found["status"] == status else None

    delivered = eventually(lambda: agent_sees("delivered"), what="the reply marked delivered")
    assert delivered["source_id"] == received["wamid"], "the receipt matched the message by its wamid"
    assert (
        next(m for m in phone_chat(demo, "15550002") if m["direction"] == "to_phone")["status"] == "delivered"
    )
    # The phone's chat comes on screen: the phone reports the reply read.
    phone_chat(demo, "15550002", viewing=True)
    eventually(lambda: agent_sees("read"), what="the reply marked read")
    assert next(m for m in phone_chat(demo, "15550002") if m["direction"] == "to_phone")["status"] == "read"


def test_the_customers_ticks_turn_read_when_an_agent_opens_the_conversation(demo: DemoServer) -> None:
    sent = send(demo, "+15550003", "Is anyone there?", name="Ticks Caio")
    assert sent["message"]["status"] == "delivered", "two grey ticks: WhatWut accepted the webhook"
    conversation = conversation_of(demo, "Ticks Caio")
    opened = httpx.post(
        demo.api(f"conversations/{conversation['id']}/update_last_seen"), headers=demo.headers
    )
    assert opened.status_code == 200, opened.text

    def read_on_phone() -> dict[str, Any] | None:
        mine = next(m for m in phone_chat(demo, "15550003") if m["wamid"] == sent["message"]["wamid"])
        return mine if mine["status"] == "read" else None

    eventually(read_on_phone, what="blue ticks on the customer's message")


def test_the_customers_reply_to_a_quoted_message_links_to_it(demo: DemoServer) -> None:
    first = send(demo, "+15550004", "First question", name="Quoting Carla")
    response = httpx.post(
        f"{demo.url}/sandbox/api/messages",
        json={"from": "+15550004", "text": "About that…", "reply_to": first["message"]["wamid"]},
    )
    assert response.status_code == 201, response.text
    assert response.json()["message"]["reply_to"] == first["message"]["wamid"]
    conversation = conversation_of(demo, "Quoting Carla")
    eventually(
        lambda: (
            len([m for m in messages_of(demo, conversation["id"]) if m["message_type"] == "incoming"]) == 2
        ),
        what="both messages stored",
    )


# --- the phone view --------------------------------------------------------------------------


def test_the_phone_page_renders_and_its_poll_answers_204_when_nothing_changed(demo: DemoServer) -> None:
    page = httpx.get(f"{demo.url}/sandbox", params={"phone": "+15550005", "name": "Page Dora"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Page Dora" in page.text and "/static/vendor/htmx.min.js" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    fragment = httpx.get(f"{demo.url}/sandbox/phones/15550005/chat")
    assert fragment.status_code == 200 and 'id="chat"' in fragment.text
    version = fragment.text.split('data-version="', 1)[1].split('"', 1)[0]
    unchanged = httpx.get(f"{demo.url}/sandbox/phones/15550005/chat", params={"since": version})
    assert unchanged.status_code == 204


def test_the_page_form_sends_text_and_an_image_that_arrives_as_an_attachment(demo: DemoServer) -> None:
    response = httpx.post(
        f"{demo.url}/sandbox/phones/15550006/messages",
        data={"text": "Here is the damaged box", "name": "Image Eva"},
        files={"image": ("box.png", tiny_png(), "image/png")},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200, response.text
    assert "Here is the damaged box" in response.text and "/sandbox/graph/_media/" in response.text
    conversation = conversation_of(demo, "Image Eva")

    def with_attachment() -> dict[str, Any] | None:
        incoming = [m for m in messages_of(demo, conversation["id"]) if m["message_type"] == "incoming"]
        return next((m for m in incoming if m["attachments"]), None)

    message = eventually(with_attachment, what="the image fetched from the Graph API and stored")
    assert message["attachments"][0]["file_type"] == "image"


def test_the_page_form_refuses_requests_that_did_not_come_from_the_page(demo: DemoServer) -> None:
    response = httpx.post(f"{demo.url}/sandbox/phones/15550007/messages", data={"text": "cross-site"})
    assert_problem(response, 403)
    assert all(m["text"] != "cross-site" for m in phone_chat(demo, "15550007"))


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "abc", "text": "hi"}, "from"),
        ({"from": "+1 (555)", "text": "hi"}, "from"),
        ({"from": "+15550008", "text": ""}, "text"),
        ({"from": "+15550008", "text": "x" * 4097}, "text"),
        ({"from": "+15550008"}, "text"),
        ({"from": "+15550008", "text": "hi", "surprise": 1}, "surprise"),
    ],
)
def test_bad_sandbox_messages_get_422_naming_the_field_and_nothing_is_sent(
    demo: DemoServer, db_conn: psycopg.Connection[Any], body: dict[str, Any], field: str
) -> None:
    before = db_conn.execute("SELECT count(*) FROM messages").fetchone()
    response = httpx.post(f"{demo.url}/sandbox/api/messages", json=body)
    assert_problem(response, 422, field=field)
    assert db_conn.execute("SELECT count(*) FROM messages").fetchone() == before


def test_a_form_encoded_post_to_the_json_api_is_refused(demo: DemoServer) -> None:
    response = httpx.post(f"{demo.url}/sandbox/api/messages", data={"from": "+15550009", "text": "hi"})
    assert_problem(response, 422)


# --- the CLI ---------------------------------------------------------------------------------


def run_send(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "300", "TERM": "dumb"}
    return subprocess.run(
        [WHATWUT, "sandbox", "send", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def output(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


def test_sandbox_send_cli_delivers_to_the_running_server(
    demo: DemoServer, db_conn: psycopg.Connection[Any]
) -> None:
    result = run_send(
        "--url", demo.url, "--from", "+15550010", "--name", "Cli Fabio", "Hello from a terminal"
    )
    assert result.returncode == 0, output(result)
    said = output(result)
    assert "webhook answered 200" in said and "+15550010" in said
    wamid = said.split(" sent ", 1)[1].split(":", 1)[0]
    stored = db_conn.execute(
        "SELECT m.content, c.name FROM messages m JOIN contacts c ON c.id = m.sender_id"
        " WHERE m.source_id = %s",
        (wamid,),
    ).fetchall()
    assert stored == [("Hello from a terminal", "Cli Fabio")]


def test_sandbox_send_cli_says_clearly_when_no_server_runs() -> None:
    result = run_send("--url", f"http://127.0.0.1:{free_port()}", "--from", "+15550011", "hello")
    assert result.returncode == 2
    assert "no WhatWut server answers" in output(result) and "whatwut serve --demo" in output(result)
    assert "Traceback" not in output(result)


def test_sandbox_send_cli_says_clearly_when_the_server_has_no_sandbox(live: LiveServer) -> None:
    result = run_send("--url", live.url, "--from", "+15550012", "hello")
    assert result.returncode == 2
    assert "has no WhatsApp sandbox" in output(result)


def test_sandbox_send_cli_names_a_bad_phone_number(demo: DemoServer) -> None:
    result = run_send("--url", demo.url, "--from", "not-a-phone", "hello")
    assert result.returncode == 2
    assert "--from" in output(result) and "country code" in output(result)


# --- restarting ------------------------------------------------------------------------------


def test_a_second_demo_start_on_another_port_keeps_one_sandbox_inbox_and_follows_the_port(
    demo: DemoServer, database_url: str, data_dir: Path, db_conn: psycopg.Connection[Any]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_demo(database_url, data_dir, port)
    try:
        wait_healthy(url, process)
        inboxes = db_conn.execute(
            "SELECT settings->>'graph_url' FROM inboxes WHERE name = 'WhatsApp sandbox'"
        ).fetchall()
        assert inboxes == [(f"{url}/sandbox/graph/v23.0",)]
        response = httpx.post(f"{url}/sandbox/api/messages", json={"from": "+15550013", "text": "again"})
        assert response.status_code == 201 and response.json()["webhook_status"] == 200, response.text
    finally:
        stop_process(process)
