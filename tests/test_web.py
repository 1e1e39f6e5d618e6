"""The team inbox's pages over real HTTP: sign-in, access, CSRF, replies and escaping."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from tests.browser.support import (
    add_inbox,
    customer_writes,
    form_csrf,
    form_csrf_for,
    page_csrf_header,
    sign_in,
)
from tests.support import Actor, LiveServer, add_user, new_account, unique
from whatwut.accounts.auth import SESSION_COOKIE

HTMX = {"HX-Request": "true"}


@pytest.fixture
def browser(live: LiveServer) -> Iterator[httpx.Client]:
    """A cookie-keeping client that does not follow redirects, like a careful browser test."""
    with httpx.Client(base_url=live.url, timeout=30, follow_redirects=False) as http:
        yield http


@pytest.fixture
def admin(live: LiveServer, client: httpx.Client) -> Actor:
    return new_account(live, client)


def _signed_in(browser: httpx.Client, actor: Actor) -> httpx.Client:
    response = sign_in(browser, actor.email)
    assert response.status_code == 303, response.text
    return browser


def _inbox_url(actor: Actor) -> str:
    return f"/app/accounts/{actor.account_id}/conversations"


# --- signing in -----------------------------------------------------------------------------------


def test_login_page_is_a_form_with_a_csrf_token(browser: httpx.Client) -> None:
    page = browser.get("/login")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post" action="/login"' in page.text
    assert form_csrf(page.text)


def test_wrong_password_shows_an_error_and_sets_no_session_cookie(
    browser: httpx.Client, admin: Actor
) -> None:
    response = sign_in(browser, admin.email, "not the password")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.text
    assert SESSION_COOKIE not in response.cookies
    assert SESSION_COOKIE not in browser.cookies


def test_unknown_email_gets_the_same_error_as_a_wrong_password(browser: httpx.Client) -> None:
    response = sign_in(browser, f"{unique('nobody')}@example.com")
    assert response.status_code == 401
    assert "Email or password is incorrect." in response.text


def test_login_without_the_form_token_is_refused(browser: httpx.Client, admin: Actor) -> None:
    browser.get("/login")
    response = browser.post("/login", data={"email": admin.email, "password": "correct horse battery"})
    assert response.status_code == 403
    assert SESSION_COOKIE not in browser.cookies


def test_good_login_sets_an_httponly_cookie_and_redirects_to_the_inbox(
    browser: httpx.Client, admin: Actor
) -> None:
    response = sign_in(browser, admin.email)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    set_cookie = next(v for v in response.headers.get_list("set-cookie") if v.startswith(SESSION_COOKIE))
    assert "HttpOnly" in set_cookie
    assert "samesite=lax" in set_cookie.lower()
    home = browser.get("/")
    assert home.status_code == 303
    assert home.headers["location"] == _inbox_url(admin)
    inbox = browser.get(_inbox_url(admin))
    assert inbox.status_code == 200
    assert "Conversations" in inbox.text
    # Customer conversations are neither cached nor frameable by other sites.
    assert inbox.headers["cache-control"] == "no-store"
    assert inbox.headers["x-frame-options"] == "DENY"
    # Signed in, the login page sends the agent on.
    assert browser.get("/login").status_code == 303


def test_login_redirects_back_to_a_local_next_page_only(browser: httpx.Client, admin: Actor) -> None:
    page = browser.get("/login?next=//evil.example/steal")
    assert 'name="next" value="/"' in page.text
    response = browser.post(
        "/login",
        data={
            "email": admin.email,
            "password": "correct horse battery",
            "csrf_token": form_csrf(page.text),
            "next": "https://evil.example/",
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_logout_revokes_the_session(browser: httpx.Client, admin: Actor) -> None:
    _signed_in(browser, admin)
    confirm = browser.get("/logout")
    assert confirm.status_code == 200
    stolen = browser.cookies[SESSION_COOKIE]
    response = browser.post("/logout", data={"csrf_token": form_csrf_for(confirm.text, "/logout")})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    # The old cookie is dead even if someone kept a copy of it.
    with httpx.Client(base_url=str(browser.base_url), cookies={SESSION_COOKIE: stolen}) as other:
        assert other.get(_inbox_url(admin)).status_code == 303


# --- access ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/app/accounts/1/conversations", "/app/accounts/1/conversations/1"])
def test_pages_require_a_signed_in_session(browser: httpx.Client, path: str) -> None:
    response = browser.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_htmx_requests_without_a_session_are_told_to_go_to_login(browser: httpx.Client) -> None:
    response = browser.get(
        "/app/accounts/1/conversations/list",
        headers=HTMX | {"HX-Current-URL": "http://127.0.0.1/app/accounts/1/conversations?status=open"},
    )
    assert response.status_code == 401
    assert response.headers["HX-Redirect"].startswith("/login?next=/app/accounts/1/conversations")


def test_a_bearer_token_does_not_open_the_pages(browser: httpx.Client, admin: Actor) -> None:
    response = browser.get(_inbox_url(admin), headers=admin.headers)
    assert response.status_code == 303


def test_another_accounts_pages_are_not_found(
    live: LiveServer, client: httpx.Client, browser: httpx.Client, admin: Actor
) -> None:
    other = new_account(live, client)
    inbox_id = add_inbox(live, other.account_id)
    theirs = customer_writes(live, other.account_id, inbox_id, "secret of the other account")
    _signed_in(browser, admin)
    assert browser.get(_inbox_url(other)).status_code == 404
    response = browser.get(f"{_inbox_url(admin)}/{theirs.conversation_id}")
    assert response.status_code == 404
    assert "secret of the other account" not in response.text


def test_agents_see_only_conversations_of_their_inboxes(
    live: LiveServer, client: httpx.Client, browser: httpx.Client, admin: Actor
) -> None:
    agent = add_user(live, client, admin.account_id, role="agent")
    hidden_inbox = add_inbox(live, admin.account_id)
    hidden = customer_writes(live, admin.account_id, hidden_inbox, "only admins and members see this")
    _signed_in(browser, agent)
    listing = browser.get(_inbox_url(agent) + "?assignee_type=all")
    assert listing.status_code == 200
    assert "only admins and members see this" not in listing.text
    assert browser.get(f"{_inbox_url(agent)}/{hidden.conversation_id}").status_code == 404


# --- the inbox ------------------------------------------------------------------------------------


def test_inbox_lists_conversations_and_opens_one(
    live: LiveServer, browser: httpx.Client, admin: Actor
) -> None:
    inbox_id = add_inbox(live, admin.account_id, name="Support line")
    incoming = customer_writes(live, admin.account_id, inbox_id, "Where is my order?", name="Maria Lopez")
    _signed_in(browser, admin)
    listing = browser.get(_inbox_url(admin))
    assert "Maria Lopez" in listing.text
    assert "Where is my order?" in listing.text
    assert "Support line" in listing.text
    pane = browser.get(
        f"{_inbox_url(admin)}/{incoming.conversation_id}", headers=HTMX | {"HX-Target": "conversation-pane"}
    )
    assert pane.status_code == 200
    assert "<html" not in pane.text  # a fragment for htmx
    assert f'id="message-{incoming.message_id}"' in pane.text
    assert 'class="msg msg-incoming' in pane.text


def test_list_filters_by_search_and_assignee(live: LiveServer, browser: httpx.Client, admin: Actor) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    customer_writes(
        live,
        admin.account_id,
        inbox_id,
        "refund for a broken kettle",
        phone="+14155550111",
        name="Kettle Person",
    )
    customer_writes(
        live,
        admin.account_id,
        inbox_id,
        "question about shipping",
        phone="+14155550112",
        name="Shipping Person",
    )
    _signed_in(browser, admin)
    found = browser.get(f"{_inbox_url(admin)}/list?q=kettle&assignee_type=all")
    assert "Kettle Person" in found.text
    assert "Shipping Person" not in found.text
    mine = browser.get(f"{_inbox_url(admin)}/list?assignee_type=me")
    assert "Kettle Person" not in mine.text


def test_unsafe_requests_without_csrf_are_forbidden(
    live: LiveServer, browser: httpx.Client, admin: Actor
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "hello?")
    _signed_in(browser, admin)
    url = f"{_inbox_url(admin)}/{incoming.conversation_id}/messages"
    response = browser.post(url, data={"content": "forged reply", "private": "false"})
    assert response.status_code == 403
    # A token made for another form does not work here either.
    page = browser.get(f"{_inbox_url(admin)}/{incoming.conversation_id}")
    status_token = form_csrf_for(page.text, f"{_inbox_url(admin)}/{incoming.conversation_id}/status")
    response = browser.post(url, data={"content": "forged reply", "csrf_token": status_token})
    assert response.status_code == 403
    assert "forged reply" not in browser.get(f"{_inbox_url(admin)}/{incoming.conversation_id}").text


def test_reply_form_post_creates_an_outgoing_message(
    live: LiveServer, browser: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "can you help?")
    _signed_in(browser, admin)
    page_url = f"{_inbox_url(admin)}/{incoming.conversation_id}"
    page = browser.get(page_url)
    action = f"{page_url}/messages"
    response = browser.post(
        action,
        data={
            "content": "Of course, happy to help!",
            "private": "false",
            "csrf_token": form_csrf_for(page.text, action),
        },
    )
    assert response.status_code == 303
    assert response.headers["location"] == page_url
    row = db_conn.execute(
        "SELECT message_type, private, sender_type, sender_id FROM messages WHERE conversation_id = %s "
        "AND content = %s",
        (incoming.conversation_id, "Of course, happy to help!"),
    ).fetchone()
    assert row == ("outgoing", False, "user", admin.user_id)
    assert "Of course, happy to help!" in browser.get(page_url).text


def test_htmx_reply_and_private_note_answer_the_refreshed_messages(
    live: LiveServer, browser: httpx.Client, admin: Actor
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "are you there?")
    _signed_in(browser, admin)
    page_url = f"{_inbox_url(admin)}/{incoming.conversation_id}"
    token = page_csrf_header(browser.get(page_url).text)
    headers = HTMX | {"X-CSRF-Token": token}
    reply = browser.post(
        f"{page_url}/messages", data={"content": "Yes!", "private": "false"}, headers=headers
    )
    assert reply.status_code == 200
    assert "msg msg-outgoing" in reply.text and "Yes!" in reply.text
    note = browser.post(
        f"{page_url}/messages", data={"content": "VIP customer", "private": "true"}, headers=headers
    )
    assert note.status_code == 200
    assert "msg msg-note" in note.text and "Private note" in note.text


def test_an_empty_reply_is_refused_with_a_reason_and_nothing_is_written(
    live: LiveServer, browser: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "hi")
    _signed_in(browser, admin)
    page_url = f"{_inbox_url(admin)}/{incoming.conversation_id}"
    token = page_csrf_header(browser.get(page_url).text)
    response = browser.post(
        f"{page_url}/messages",
        data={"content": "   ", "private": "false"},
        headers=HTMX | {"X-CSRF-Token": token},
    )
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#composer-error"
    assert response.text.strip()
    count = db_conn.execute(
        "SELECT count(*) FROM messages WHERE conversation_id = %s AND message_type = 'outgoing'",
        (incoming.conversation_id,),
    ).fetchone()
    assert count == (0,)


def test_resolve_assign_and_label_from_the_header(
    live: LiveServer, browser: httpx.Client, admin: Actor, db_conn: psycopg.Connection[tuple[object, ...]]
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "please close this")
    _signed_in(browser, admin)
    page_url = f"{_inbox_url(admin)}/{incoming.conversation_id}"
    headers = HTMX | {"X-CSRF-Token": page_csrf_header(browser.get(page_url).text)}
    assigned = browser.post(f"{page_url}/assignee", data={"assignee_id": str(admin.user_id)}, headers=headers)
    assert assigned.status_code == 200
    assert "self-assigned" in assigned.text  # the activity line arrives with the header
    resolved = browser.post(f"{page_url}/status", data={"status": "resolved"}, headers=headers)
    assert resolved.status_code == 200
    assert 'id="reopen-button"' in resolved.text
    snoozed = browser.post(f"{page_url}/status", data={"snooze": "tomorrow"}, headers=headers)
    assert snoozed.status_code == 200
    row = db_conn.execute(
        "SELECT status, assignee_id FROM conversations WHERE id = %s", (incoming.conversation_id,)
    ).fetchone()
    assert row == ("snoozed", admin.user_id)
    bad = browser.post(f"{page_url}/status", data={"status": "exploded"}, headers=headers)
    assert bad.status_code == 422


def test_customer_html_is_escaped_not_executed(live: LiveServer, browser: httpx.Client, admin: Actor) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(
        live, admin.account_id, inbox_id, "<script>alert(1)</script>", name='<img src=x onerror="alert(2)">'
    )
    _signed_in(browser, admin)
    for url in (_inbox_url(admin), f"{_inbox_url(admin)}/{incoming.conversation_id}"):
        html = browser.get(url).text
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert '<img src=x onerror="alert(2)">' not in html


def test_static_assets_are_served_from_the_app_not_a_cdn(browser: httpx.Client) -> None:
    page = browser.get("/login")
    assert "https://" not in page.text.split("<body")[0]
    for asset in (
        "/static/vendor/htmx.min.js",
        "/static/vendor/sse.min.js",
        "/static/app.js",
        "/static/app.css",
    ):
        response = browser.get(asset)
        assert response.status_code == 200, f"{asset} is missing: run `make setup`"
        assert len(response.content) > 500


def test_labels_are_added_and_removed_from_the_header(
    live: LiveServer, client: httpx.Client, browser: httpx.Client, admin: Actor
) -> None:
    created = client.post(
        admin.path("labels"), json={"title": "refund", "color": "#f59e0b"}, headers=admin.headers
    )
    assert created.status_code == 201, created.text
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "I want my money back")
    _signed_in(browser, admin)
    page_url = f"{_inbox_url(admin)}/{incoming.conversation_id}"
    page = browser.get(page_url)
    assert '<option value="refund">refund</option>' in page.text  # offered in the "+ Label" menu
    headers = HTMX | {"X-CSRF-Token": page_csrf_header(page.text)}
    added = browser.post(f"{page_url}/labels", data={"add": "refund"}, headers=headers)
    assert added.status_code == 200
    assert 'title="Remove label refund"' in added.text
    assert "added refund" in added.text  # the activity line, swapped in out of band
    listing = browser.get(f"{_inbox_url(admin)}/list?label=refund")
    assert f'id="conversation-item-{incoming.conversation_id}"' in listing.text
    removed = browser.post(f"{page_url}/labels", data={"remove": "refund"}, headers=headers)
    assert 'title="Remove label refund"' not in removed.text
    unknown = browser.post(f"{page_url}/labels", data={"add": "Not A Label!"}, headers=headers)
    assert unknown.status_code == 422


def test_canned_responses_reach_the_composer(
    live: LiveServer, client: httpx.Client, browser: httpx.Client, admin: Actor
) -> None:
    created = client.post(
        admin.path("canned_responses"),
        json={"short_code": "hours", "content": "We answer 8:00-20:00 <every day>"},
        headers=admin.headers,
    )
    assert created.status_code == 201, created.text
    inbox_id = add_inbox(live, admin.account_id)
    incoming = customer_writes(live, admin.account_id, inbox_id, "when are you open?")
    _signed_in(browser, admin)
    html = browser.get(f"{_inbox_url(admin)}/{incoming.conversation_id}").text
    data = html.split('id="canned-data">', 1)[1].split("</script>", 1)[0]
    assert '"short_code": "hours"' in data
    assert "<every day>" not in data  # JSON inside <script> is escaped, so it cannot close the tag


def test_load_more_walks_the_list_with_its_cursor(
    live: LiveServer, browser: httpx.Client, admin: Actor
) -> None:
    inbox_id = add_inbox(live, admin.account_id)
    for n in range(27):
        customer_writes(live, admin.account_id, inbox_id, f"customer number {n}", phone=f"+1415555{n:04d}")
    _signed_in(browser, admin)
    first = browser.get(f"{_inbox_url(admin)}/list?assignee_type=all")
    assert first.text.count('class="conversation-item') == 25
    cursor = re.search(r"cursor=([^\"&]+)", first.text)
    assert cursor, "the first page offers Load more"
    second = browser.get(f"{_inbox_url(admin)}/list?assignee_type=all&cursor={cursor.group(1)}")
    assert second.text.count('class="conversation-item') == 2
    assert "Load more" not in second.text
    assert "customer number 0</span>" in second.text  # the oldest comes last
    bad = browser.get(f"{_inbox_url(admin)}/list?assignee_type=all&cursor=not-a-cursor")
    assert bad.status_code == 200
    assert 'class="conversation-item' not in bad.text
