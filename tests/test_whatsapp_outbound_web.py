"""The web UI for WhatsApp inboxes: the settings page (create, check connection, sync templates), the
24-hour window in the conversation header and the template picker when it is closed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conversation_support import Db, count
from tests.support import PASSWORD, Actor, LiveServer, add_user, new_account
from tests.whatsapp_outbound_support import cloud_inbox, customer_writes, live_with_graph, numeric_id, wa_id
from whatwut.channels.whatsapp.fake_graph import FakeGraphServer, serve_fake_graph
from whatwut.web.security import form_token


@pytest.fixture(scope="module")
def graph() -> Iterator[FakeGraphServer]:
    with serve_fake_graph() as server:
        yield server


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, graph: FakeGraphServer) -> Iterator[LiveServer]:
    with live_with_graph(database_url, data_root / "app-whatsapp-outbound-web", graph) as server:
        yield server


@pytest.fixture(scope="module")
def admin(live: LiveServer) -> Actor:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        return new_account(live, http)


def _browser(live: LiveServer, actor: Actor) -> tuple[httpx.Client, str]:
    """A signed-in browser session and its CSRF token (read from the page's htmx headers)."""
    browser = httpx.Client(base_url=live.url, timeout=30)
    browser.get("/login")
    signed_in = browser.post(
        "/login",
        data={
            "email": actor.email,
            "password": PASSWORD,
            "csrf_token": browser.cookies.get("whatwut_login_csrf"),
            "next": "/",
        },
    )
    assert signed_in.status_code == 303
    page = browser.get(f"/app/accounts/{actor.account_id}/conversations")
    match = re.search(r'X-CSRF-Token&#34;: &#34;([^&]+)&#34;|"X-CSRF-Token": "([^"]+)"', page.text)
    assert match is not None, page.text[:500]
    return browser, match.group(1) or match.group(2)


def _post(browser: httpx.Client, csrf: str, path: str, **fields: str) -> httpx.Response:
    return browser.post(path, data={"csrf_token": form_token(csrf, path), **fields})


def test_administrators_create_a_cloud_inbox_check_it_and_sync_templates_from_the_settings_page(
    live: LiveServer, graph: FakeGraphServer, admin: Actor, db_conn: Db
) -> None:
    browser, csrf = _browser(live, admin)
    settings = f"/app/accounts/{admin.account_id}/settings/inboxes"
    assert "Add an inbox" in browser.get(settings).text
    phone_number_id, waba = numeric_id(), numeric_id()
    fields = {
        "name": "Support WhatsApp",
        "channel_type": "whatsapp_cloud",
        "phone_number": "+55 11 98765-1111",
        "phone_number_id": phone_number_id,
        "business_account_id": waba,
        "access_token": "EAAG-web",
        "app_secret": "s3cret",
        "verify_token": "v3rify",
    }
    created = _post(browser, csrf, settings, **fields)
    assert created.status_code == 200, created.text
    assert "Inbox “Support WhatsApp” created." in created.text
    assert "EAAG-web" not in created.text
    row = db_conn.execute(
        "SELECT id, secrets_encrypted FROM inboxes WHERE settings->>'phone_number_id' = %s",
        (phone_number_id,),
    ).fetchone()
    assert row is not None and "EAAG-web" not in str(row[1])
    inbox_id = int(row[0])
    graph.state.add_phone_number(phone_number_id, "+55 11 98765-1111", verified_name="Loja Web")
    checked = _post(browser, csrf, f"{settings}/{inbox_id}/check")
    assert "Connected: +55 11 98765-1111 (Loja Web)." in checked.text
    graph.state.add_template(waba, "hello_world")
    synced = _post(browser, csrf, f"{settings}/{inbox_id}/sync")
    assert "1 templates synced (1 approved, 0 removed)." in synced.text
    graph.state.fail_next("expired_token", endpoint="phone_number")
    refused = _post(browser, csrf, f"{settings}/{inbox_id}/check")
    assert "Meta rejected the access token (code 190)" in refused.text


def test_a_bad_inbox_form_shows_the_reason_and_creates_nothing(
    live: LiveServer, admin: Actor, db_conn: Db
) -> None:
    browser, csrf = _browser(live, admin)
    settings = f"/app/accounts/{admin.account_id}/settings/inboxes"
    before = count(db_conn, "SELECT count(*) FROM inboxes WHERE account_id = %s", admin.account_id)
    response = _post(
        browser,
        csrf,
        settings,
        name="Broken",
        channel_type="whatsapp_cloud",
        phone_number="+55 11 98765-2222",
        phone_number_id="not-a-number",
        business_account_id="1",
        access_token="t",
        app_secret="s",
        verify_token="v",
    )
    assert response.status_code == 422
    assert "phone_number_id" in response.text
    assert count(db_conn, "SELECT count(*) FROM inboxes WHERE account_id = %s", admin.account_id) == before
    no_csrf = browser.post(settings, data={"name": "x", "channel_type": "api"})
    assert no_csrf.status_code in (403, 422)


def test_agents_do_not_see_the_settings_page(live: LiveServer, admin: Actor) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        agent = add_user(live, http, admin.account_id)
    browser, _csrf = _browser(live, agent)
    assert browser.get(f"/app/accounts/{admin.account_id}/settings/inboxes").status_code == 404


def test_the_header_shows_the_window_and_a_closed_window_offers_the_template_picker(
    live: LiveServer, graph: FakeGraphServer, admin: Actor, db_conn: Db
) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        inbox = cloud_inbox(http, admin)
        graph.state.add_template(
            inbox["channel"]["business_account_id"], "follow_up", body="Hi {{1}}, any news?"
        )
        http.post(admin.path(f"inboxes/{inbox['id']}/whatsapp/templates/sync"), headers=admin.headers)
    conversation_id, _m, _w = customer_writes(live, admin.account_id, inbox["id"], wa_id())
    browser, csrf = _browser(live, admin)
    page = f"/app/accounts/{admin.account_id}/conversations/{conversation_id}"
    opened = browser.get(page).text
    assert "24h window open until" in opened and "template-picker" not in opened
    db_conn.execute(
        "UPDATE conversations SET last_incoming_at = %s WHERE id = %s",
        (datetime.now(UTC) - timedelta(hours=30), conversation_id),
    )
    closed = browser.get(page).text
    assert "24h window closed" in closed and 'id="template-picker"' in closed
    picker = browser.get(f"{page}/whatsapp/templates", headers={"HX-Request": "true"})
    assert "follow_up (en_US)" in picker.text
    graph.state.reset()
    wrong = _post(browser, csrf, f"{page}/whatsapp/templates", template="follow_up|en_US", parameters="")
    assert wrong.status_code == 422 and "1 body variable(s); 0 given" in wrong.text
    sent = _post(browser, csrf, f"{page}/whatsapp/templates", template="follow_up|en_US", parameters="Ana\n")
    assert sent.status_code == 303
    graph.state.wait_for_requests("messages", 1)
    (payload,) = graph.state.sent_messages()
    assert payload["template"]["name"] == "follow_up"
    assert payload["template"]["components"] == [
        {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}
    ]
