"""Password guessing is bounded: failed sign-ins lock the email, then the client address, for a while.

A live server with small limits (3 failures per email, 5 per address) so the tests stay short.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.support import sign_in
from tests.support import PASSWORD, LiveServer, assert_problem, new_account, start_live_server
from whatwut.accounts.auth import SESSION_COOKIE

PER_EMAIL = 3
PER_ADDRESS = 5


@pytest.fixture
def fresh_server(database_url: str, data_root: Path, request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    """A server of its own, so the per-address count starts from zero."""
    with start_live_server(
        database_url,
        data_root / f"app-throttle-{request.node.name}",
        WHATWUT_LOGIN_MAX_FAILURES=PER_EMAIL,
        WHATWUT_LOGIN_MAX_FAILURES_PER_ADDRESS=PER_ADDRESS,
    ) as server:
        yield server


def login(client: httpx.Client, email: str, password: str) -> httpx.Response:
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_after_too_many_wrong_passwords_even_the_right_one_is_refused_with_429(
    fresh_server: LiveServer,
) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=30) as client:
        user = new_account(fresh_server, client)
        for _ in range(PER_EMAIL):
            assert_problem(login(client, user.email, "wrong password"), 401)
        refused = login(client, user.email, PASSWORD)
        body = assert_problem(refused, 429, field="email")
        assert "too many failed sign-ins" in str(body["detail"])
        assert 0 < int(refused.headers["retry-after"]) <= 15 * 60
        assert "access_token" not in body
        # The lock is per email: another person signs in normally from the same place.
        other = new_account(fresh_server, client)
        assert login(client, other.email, PASSWORD).status_code == 200


def test_the_email_is_matched_whatever_its_case_and_spacing(fresh_server: LiveServer) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=30) as client:
        user = new_account(fresh_server, client)
        for variant in (user.email.upper(), f"  {user.email}", user.email.title()):
            login(client, variant, "wrong password")
        assert_problem(login(client, user.email, PASSWORD), 429)


def test_a_successful_sign_in_forgets_earlier_failures(fresh_server: LiveServer) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=30) as client:
        user = new_account(fresh_server, client)
        for _ in range(PER_EMAIL - 1):
            assert_problem(login(client, user.email, "typo"), 401)
        assert login(client, user.email, PASSWORD).status_code == 200
        for _ in range(PER_EMAIL - 1):
            assert_problem(login(client, user.email, "typo again"), 401)
        assert login(client, user.email, PASSWORD).status_code == 200


def test_guessing_across_many_emails_locks_the_client_address(fresh_server: LiveServer) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=30) as client:
        user = new_account(fresh_server, client)
        for n in range(PER_ADDRESS):
            assert_problem(login(client, f"nobody-{n}@example.com", "guess"), 401)
        body = assert_problem(login(client, user.email, PASSWORD), 429)
        assert body.get("field") is None


def test_the_browser_sign_in_form_is_throttled_too(fresh_server: LiveServer) -> None:
    with httpx.Client(base_url=fresh_server.url, timeout=30, follow_redirects=False) as browser:
        user = new_account(fresh_server, browser)
        for _ in range(PER_EMAIL):
            assert sign_in(browser, user.email, "wrong password").status_code == 401
        page = sign_in(browser, user.email)
        assert page.status_code == 429
        assert "Too many failed sign-ins" in page.text
        assert SESSION_COOKIE not in browser.cookies
        # The API and the form share one count.
        assert_problem(login(browser, user.email, PASSWORD), 429)
