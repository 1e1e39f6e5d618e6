"""The team inbox in a real browser (Debian's Chromium driven by Playwright).

An agent signs in, opens a conversation, replies, and sees a new customer message arrive live
over SSE without reloading the page.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.support import add_inbox, customer_writes, run_in_thread
from tests.support import PASSWORD, Actor, LiveServer, new_account

CHROMIUM = os.environ.get("WHATWUT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "(.ci/run does this), or point WHATWUT_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def agent(live: LiveServer, client: httpx.Client) -> Actor:
    return run_in_thread(new_account, live, client)


def _sign_in(page: Page, live: LiveServer, actor: Actor) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("Email").fill(actor.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{live.url}/app/accounts/{actor.account_id}/conversations")


def test_wrong_password_keeps_the_agent_on_the_login_form(page: Page, live: LiveServer, agent: Actor) -> None:
    page.goto(f"{live.url}/login")
    page.get_by_label("Email").fill(agent.email)
    page.get_by_label("Password").fill("definitely wrong")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#login-error")).to_have_text("Email or password is incorrect.")


def test_agent_replies_and_sees_a_new_customer_message_live(
    page: Page, live: LiveServer, agent: Actor
) -> None:
    inbox_id = add_inbox(live, agent.account_id, name="Support WhatsApp")
    first = customer_writes(
        live,
        agent.account_id,
        inbox_id,
        "Hi! Has my order shipped?",
        phone="+34612345678",
        name="Maria Garcia",
    )

    _sign_in(page, live, agent)
    item = page.locator(f"#conversation-item-{first.conversation_id}")
    expect(item).to_contain_text("Maria Garcia")
    expect(item).to_contain_text("Has my order shipped?")

    item.click()
    page.wait_for_url(f"**/conversations/{first.conversation_id}*")
    messages = page.locator("#messages")
    expect(messages).to_contain_text("Hi! Has my order shipped?")
    expect(page.locator("#contact-name")).to_have_text("Maria Garcia")

    page.locator("#reply-content").fill("It left our warehouse this morning.")
    page.locator("#send-button").click()
    reply = messages.locator(".msg-outgoing", has_text="It left our warehouse this morning.")
    expect(reply).to_be_visible()
    expect(page.locator("#reply-content")).to_have_value("")

    # The page is listening on the event stream before the customer writes again.
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    page.evaluate("window.__notReloaded = true")
    customer_writes(
        live,
        agent.account_id,
        inbox_id,
        "Great, thank you so much!",
        phone="+34612345678",
        name="Maria Garcia",
    )
    expect(messages.locator(".msg-incoming", has_text="Great, thank you so much!")).to_be_visible()
    expect(item).to_contain_text("Great, thank you so much!")
    assert page.evaluate("window.__notReloaded") is True, "the page reloaded instead of updating live"


def test_private_note_and_resolve_update_the_open_conversation(
    page: Page, live: LiveServer, agent: Actor
) -> None:
    inbox_id = add_inbox(live, agent.account_id)
    incoming = customer_writes(live, agent.account_id, inbox_id, "My parcel is damaged", phone="+14155550123")

    _sign_in(page, live, agent)
    page.goto(f"{live.url}/app/accounts/{agent.account_id}/conversations/{incoming.conversation_id}")
    page.get_by_text("Private note", exact=True).click()
    page.locator("#reply-content").fill("Ask logistics for photos")
    page.locator("#reply-content").press("Enter")
    expect(page.locator("#messages .msg-note", has_text="Ask logistics for photos")).to_be_visible()

    page.locator("#resolve-button").click()
    expect(page.locator("#reopen-button")).to_be_visible()
    expect(page.locator("#messages .msg-activity", has_text="marked resolved")).to_be_visible()


def test_slash_short_code_inserts_a_canned_response(
    page: Page, live: LiveServer, agent: Actor, client: httpx.Client
) -> None:
    created = client.post(
        agent.path("canned_responses"),
        json={"short_code": "thanks", "content": "Thanks for writing to us!"},
        headers=agent.headers,
    )
    assert created.status_code == 201, created.text
    inbox_id = add_inbox(live, agent.account_id)
    incoming = customer_writes(live, agent.account_id, inbox_id, "hello", phone="+14155550124")

    _sign_in(page, live, agent)
    page.goto(f"{live.url}/app/accounts/{agent.account_id}/conversations/{incoming.conversation_id}")
    box = page.locator("#reply-content")
    box.press_sequentially("/tha")
    menu = page.locator("#canned-menu")
    expect(menu).to_be_visible()
    expect(menu).to_contain_text("/thanks")
    box.press("Enter")
    expect(box).to_have_value("Thanks for writing to us!")
    expect(menu).to_be_hidden()


def test_a_change_made_elsewhere_updates_the_open_conversation_header(
    page: Page, live: LiveServer, agent: Actor, client: httpx.Client
) -> None:
    inbox_id = add_inbox(live, agent.account_id)
    incoming = customer_writes(live, agent.account_id, inbox_id, "thanks, all good", phone="+14155550125")

    _sign_in(page, live, agent)
    page.goto(f"{live.url}/app/accounts/{agent.account_id}/conversations/{incoming.conversation_id}")
    expect(page.locator("body")).to_have_attribute("data-live", "on")
    expect(page.locator("#resolve-button")).to_be_visible()
    # A teammate resolves it through the API (another tab, another process: same event stream).
    resolved = client.post(
        agent.path(f"conversations/{incoming.conversation_id}/toggle_status"),
        json={"status": "resolved"},
        headers=agent.headers,
    )
    assert resolved.status_code == 200, resolved.text
    expect(page.locator("#reopen-button")).to_be_visible()
    expect(page.locator("#messages .msg-activity", has_text="marked resolved")).to_be_visible()
