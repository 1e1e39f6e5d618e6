"""Who is signed in to the web UI, and CSRF for its forms.

The page session is the same ``session`` credential the API accepts in the ``whatwut_session``
cookie. Unsafe requests must prove they came from our pages: htmx sends the session's CSRF token
in ``X-CSRF-Token`` (as the API expects), plain HTML forms send a per-form token derived from it,
so a token leaked from one form's markup is worth nothing on another action.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Path, Request

from whatwut.accounts import service as accounts
from whatwut.accounts.auth import CSRF_HEADER, SAFE_METHODS, SESSION_COOKIE
from whatwut.accounts.models import AccessToken, Account, User
from whatwut.kit.deps import DbSession
from whatwut.kit.errors import NotAuthenticated, NotPermitted
from whatwut.security.tokens import same

#: Double-submit cookie guarding the login form, before any session exists.
LOGIN_CSRF_COOKIE = "whatwut_login_csrf"
CSRF_FIELD = "csrf_token"


class LoginRequired(Exception):
    """Raised by page dependencies; answered with a redirect to ``/login``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageNotFound(Exception):
    """A page (account, conversation) the signed-in user cannot see: an HTML 404, never a hint."""


@dataclass(frozen=True)
class PageSession:
    user: User
    token: AccessToken

    @property
    def csrf_token(self) -> str:
        return self.token.csrf_token or ""

    def form_token(self, action: str) -> str:
        return form_token(self.csrf_token, action)


@dataclass(frozen=True)
class PageMember:
    """The signed-in user inside one account, as the page routes see them."""

    account: Account
    role: str
    page: PageSession
    #: Every account the user belongs to, with their role there (for the account switcher).
    accounts: tuple[tuple[Account, str], ...]

    @property
    def account_id(self) -> int:
        return self.account.id

    @property
    def user(self) -> User:
        return self.page.user

    @property
    def is_admin(self) -> bool:
        return self.role == "administrator"


def form_token(csrf_token: str, action: str) -> str:
    """The token one form (named by its action path) must carry: HMAC of the action by the session's."""
    digest = hmac.new(csrf_token.encode(), action.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:24]).decode()


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


def safe_next(path: str | None) -> str:
    """Only local paths: ``//evil.example`` and absolute URLs become ``/``."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def login_url(next_path: str) -> str:
    return "/login" if next_path in ("", "/") else f"/login?next={quote(next_path, safe='/')}"


async def _check_csrf(request: Request, token: AccessToken) -> None:
    expected = token.csrf_token or ""
    sent_header = request.headers.get(CSRF_HEADER, "")
    if expected and sent_header and same(sent_header, expected):
        return
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        sent_field = form.get(CSRF_FIELD)
        if (
            expected
            and isinstance(sent_field, str)
            and sent_field
            and same(sent_field, form_token(expected, request.url.path))
        ):
            return
    raise NotPermitted("missing or wrong CSRF token; reload the page and try again", field=CSRF_FIELD)


async def get_page_session(request: Request, session: DbSession) -> PageSession:
    raw = request.cookies.get(SESSION_COOKIE)
    next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not raw:
        raise LoginRequired(next_path)
    try:
        token, user = await accounts.resolve_token(session, raw)
    except NotAuthenticated:
        raise LoginRequired(next_path) from None
    if token.kind != "session":
        raise LoginRequired(next_path)
    if request.method not in SAFE_METHODS:
        await _check_csrf(request, token)
    return PageSession(user=user, token=token)


CurrentPage = Annotated[PageSession, Depends(get_page_session)]


async def get_page_member(
    page: CurrentPage, session: DbSession, account_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> PageMember:
    if page.token.account_id is not None and page.token.account_id != account_id:
        raise PageNotFound
    memberships = tuple(await accounts.accounts_of(session, page.user.id))
    for account, role in memberships:
        if account.id == account_id:
            return PageMember(account=account, role=role, page=page, accounts=memberships)
    raise PageNotFound


CurrentMember = Annotated[PageMember, Depends(get_page_member)]
