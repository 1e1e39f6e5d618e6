"""The sandbox's phone view in a real browser (Debian's Chromium driven by Playwright).

A customer types in the phone view of ``whatwut serve --demo``; an agent answers through the API;
the answer appears on the phone without a reload, and the customer taps nothing but sees ticks.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support import free_port, stop_process, wait_healthy
from tests.test_sandbox import DemoServer, conversation_of, sign_in, start_demo

CHROMIUM = os.environ.get("WHATWUT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
]
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def demo(database_url: str) -> Iterator[DemoServer]:
    data_dir = Path(tempfile.mkdtemp(prefix="ww-sandbox-browser-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_demo(database_url, data_dir, port)
    try:
        wait_healthy(url, process)
        account_id, headers = sign_in(url)
        yield DemoServer(url=url, port=port, process=process, account_id=account_id, headers=headers)
    finally:
        stop_process(process)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install -y chromium)", pytrace=False)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def test_a_customer_chats_in_the_phone_view_and_the_agents_answer_appears_live(
    demo: DemoServer, page: Page
) -> None:
    page.goto(f"{demo.url}/sandbox?phone=%2B15550101&name=Browser%20Bia")
    expect(page.get_by_role("region", name="Phone of Browser Bia")).to_be_visible()
    page.get_by_label("Message").fill("Hi, do you ship to Lisbon?")
    page.get_by_role("button", name="Send").click()
    mine = page.locator(".bubble.from_phone", has_text="Hi, do you ship to Lisbon?")
    expect(mine).to_be_visible()
    expect(mine).to_have_attribute("data-status", "delivered")
    expect(page.get_by_label("Message")).to_have_value("")

    conversation = conversation_of(demo, "Browser Bia")
    reply = httpx.post(
        demo.api(f"conversations/{conversation['id']}/messages"),
        json={"content": "We do! Delivery takes 3 days."},
        headers=demo.headers,
    )
    assert reply.status_code in (200, 201), reply.text
    answer = page.locator(".bubble.to_phone", has_text="We do! Delivery takes 3 days.")
    expect(answer).to_be_visible()
    # The chat is on screen, so the phone reports the answer read.
    expect(answer).to_have_attribute("data-status", "read")
    page.screenshot(path=str(Path(tempfile.gettempdir()) / "whatwut-sandbox.png"))
