"""What agents see of an AI agent in the inbox (Debian's Chromium driven by Playwright): the bot's
answer with its sources, each customer message's sentiment badge, and the handoff, live over SSE."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.support import add_inbox, customer_writes, form_csrf_for, run_in_thread, sign_in
from tests.browser.test_inbox_browser import _sign_in, agent, browser, page  # noqa: F401 (fixtures)
from tests.support import Actor, LiveServer


@pytest.fixture(scope="module")
def accepting_bot() -> Iterator[str]:
    """A bot endpoint that accepts every webhook (the test answers through the Agent API)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/webhook"
    server.shutdown()


def test_agents_see_the_bot_answer_its_sources_the_sentiment_and_the_handoff(
    page: Page,  # noqa: F811
    live: LiveServer,
    agent: Actor,  # noqa: F811
    client: httpx.Client,
    accepting_bot: str,
) -> None:
    created = client.post(
        agent.path("ai_agents"),
        json={"name": "Wacanda", "webhook_url": accepting_bot, "answer_timeout_seconds": 3600},
        headers=agent.headers,
    )
    assert created.status_code == 201, created.text
    bot = created.json()
    inbox_id = add_inbox(live, agent.account_id)
    attached = client.put(
        agent.path(f"inboxes/{inbox_id}/ai_agent"), json={"ai_agent_id": bot["id"]}, headers=agent.headers
    )
    assert attached.status_code == 200, attached.text
    token = client.post("/api/agents/auth", json={"api_key": bot["api_key"]}).json()["access_token"]
    as_bot = {"Authorization": f"Bearer {token}"}
    incoming = run_in_thread(
        customer_writes, live, agent.account_id, inbox_id, "My parcel is late AGAIN, this is ridiculous!"
    )

    _sign_in(page, live, agent)
    page.goto(f"{live.url}/app/accounts/{agent.account_id}/conversations/{incoming.conversation_id}")
    expect(page.locator("body")).to_have_attribute("data-live", "on")

    conversation = f"/api/conversations/{incoming.conversation_id}"
    assert (
        client.put(
            f"{conversation}/messages/{incoming.message_id}/sentiment", json={"score": -0.72}, headers=as_bot
        ).status_code
        == 200
    )
    answer = client.post(
        f"{conversation}/messages",
        json={
            "content": "Sorry about that! Standard shipping takes 3 to 5 business days [1].",
            "sources": [{"number": 1, "document": "shipping.md", "heading": "Delivery times"}],
            "confidence": 0.81,
        },
        headers=as_bot,
    )
    assert answer.status_code == 201, answer.text

    badge = page.locator(f"#message-{incoming.message_id} .sentiment")
    expect(badge).to_have_text("☹ negative")
    expect(badge).to_have_attribute("title", "Sentiment -0.72")
    bot_message = page.locator(f"#message-{answer.json()['id']}")
    expect(bot_message.locator(".bot-tag")).to_have_text("AI")
    sources = bot_message.locator(".bubble-sources")
    expect(sources.locator("summary")).to_contain_text("1 source · confidence 81%")
    sources.locator("summary").click()
    expect(sources.locator("li")).to_have_text("shipping.md — Delivery times")

    handoff = client.put(
        f"{conversation}/status", json={"status": "open", "reason": "negative_sentiment"}, headers=as_bot
    )
    assert handoff.status_code == 200, handoff.text
    expect(
        page.locator(
            "#messages .msg-activity", has_text="handed the conversation to a human: the customer seems upset"
        )
    ).to_be_visible()

    page.goto(f"{live.url}/app/accounts/{agent.account_id}/conversations?status=all")
    row = page.locator(f"#conversation-item-{incoming.conversation_id}")
    expect(row.locator(".sentiment-negative")).to_be_visible()
    expect(row.locator(".chip-bot")).to_have_count(0)


def test_an_administrator_attaches_the_ai_agent_in_the_inbox_settings(
    live: LiveServer,
    agent: Actor,  # noqa: F811
    client: httpx.Client,
    accepting_bot: str,
) -> None:
    created = client.post(
        agent.path("ai_agents"),
        json={"name": "Helper bot", "webhook_url": accepting_bot},
        headers=agent.headers,
    )
    assert created.status_code == 201, created.text
    inbox_id = add_inbox(live, agent.account_id)
    settings_url = f"/app/accounts/{agent.account_id}/settings/inboxes"
    action = f"{settings_url}/{inbox_id}/ai_agent"
    with httpx.Client(base_url=live.url, timeout=30) as browser_like:
        assert sign_in(browser_like, agent.email).status_code in (200, 303)
        page_html = browser_like.get(settings_url).text
        assert "Helper bot (AI)" in page_html
        posted = browser_like.post(
            action,
            data={"ai_agent_id": str(created.json()["id"]), "csrf_token": form_csrf_for(page_html, action)},
        )
        assert posted.status_code == 200, posted.text
        assert "Helper bot now answers new conversations first." in posted.text
        shown = client.get(agent.path(f"inboxes/{inbox_id}/ai_agent"), headers=agent.headers).json()
        assert shown["ai_agent"]["id"] == created.json()["id"]
        detached = browser_like.post(
            action, data={"ai_agent_id": "", "csrf_token": form_csrf_for(posted.text, action)}
        )
        assert "People answer this inbox." in detached.text
        forged = browser_like.post(
            action, data={"ai_agent_id": str(created.json()["id"]), "csrf_token": "forged"}
        )
        assert forged.status_code in (400, 403)
    assert (
        client.get(agent.path(f"inboxes/{inbox_id}/ai_agent"), headers=agent.headers).json()["ai_agent"]
        is None
    )
