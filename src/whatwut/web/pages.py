"""Page routes of the team inbox: sign-in, and the three-pane conversations view.

Pages call the same services as the API, with the signed-in user's account membership, so an
agent sees in the browser exactly what the API would show them. Unsafe requests carry a CSRF
token (see ``web.security``); htmx requests get fragments, plain form posts get redirects.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import timedelta
from html import escape
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from whatwut.accounts import service as accounts
from whatwut.accounts.auth import SESSION_COOKIE
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import NotAuthenticated, TooManyRequests, WhatWutError
from whatwut.web import data
from whatwut.web.filters import Filters
from whatwut.web.security import (
    CSRF_FIELD,
    LOGIN_CSRF_COOKIE,
    CurrentMember,
    CurrentPage,
    LoginRequired,
    PageMember,
    PageNotFound,
    login_url,
    new_login_csrf,
    safe_next,
)
from whatwut.web.templating import templates
from whatwut.web.views import ASSIGNEE_TABS, STATUS_FILTERS


class PageRoute(APIRoute):
    """Pages hold customer conversations: never cached, never framed by another site."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            response.headers.setdefault("Cache-Control", "no-store")
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Content-Security-Policy", "frame-ancestors 'none'")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            if "hx-request" in request.headers or request.url.path.startswith("/app/"):
                response.headers.setdefault("Vary", "HX-Request, HX-Target")
            return response

        return with_headers


router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _login_page(
    request: Request,
    *,
    csrf: str,
    next_path: str,
    email: str = "",
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    response = templates.TemplateResponse(
        request,
        "login.html",
        {"csrf": csrf, "next": next_path, "email": email, "error": error, "csrf_field": CSRF_FIELD},
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        csrf,
        httponly=True,
        samesite="strict",
        secure=request.app.state.context.settings.cookie_secure,
        max_age=3600,
        path="/login",
    )
    return response


@router.get("/login")
async def login_form(request: Request, session: DbSession, next: str | None = None) -> Response:
    raw = request.cookies.get(SESSION_COOKIE)
    if raw:
        try:
            token, _user = await accounts.resolve_token(session, raw)
        except NotAuthenticated:
            token = None
        if token is not None and token.kind == "session":
            return RedirectResponse(safe_next(next), status_code=303)
    csrf = request.cookies.get(LOGIN_CSRF_COOKIE) or new_login_csrf()
    return _login_page(request, csrf=csrf, next_path=safe_next(next))


@router.post("/login")
async def login_submit(
    request: Request,
    session: DbSession,
    context: Context,
    email: Annotated[str, Form(max_length=320)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    next_path = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or cookie != csrf_token:
        return _login_page(
            request,
            csrf=new_login_csrf(),
            next_path=next_path,
            email=email,
            error="Your sign-in form expired. Please try again.",
            status=403,
        )
    if not email.strip() or not password:
        return _login_page(
            request,
            csrf=cookie,
            next_path=next_path,
            email=email,
            error="Enter your email and password.",
            status=422,
        )
    try:
        user = await accounts.authenticate(
            session,
            email,
            password,
            throttle=context.sign_in_throttle,
            address=request.client.host if request.client else None,
        )
    except TooManyRequests as exc:
        return _login_page(
            request,
            csrf=cookie,
            next_path=next_path,
            email=email,
            error=f"Too many failed sign-ins: {exc.detail.split('; ', 1)[-1]}.",
            status=429,
        )
    except NotAuthenticated:
        return _login_page(
            request,
            csrf=cookie,
            next_path=next_path,
            email=email,
            error="Email or password is incorrect.",
            status=401,
        )
    ttl = timedelta(hours=context.settings.session_ttl_hours)
    _token, raw = await accounts.issue_token(session, user, kind="session", name="web", ttl=ttl)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        httponly=True,
        samesite="lax",
        secure=context.settings.cookie_secure,
        max_age=int(ttl.total_seconds()),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.get("/logout")
async def logout_form(request: Request, page: CurrentPage) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "logout.html",
        {"page": page, "csrf_field": CSRF_FIELD, "form_token": page.form_token("/logout")},
    )


@router.post("/logout")
async def logout(session: DbSession, page: CurrentPage) -> Response:
    await accounts.revoke_token(session, page.token)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
async def root(request: Request, session: DbSession, page: CurrentPage) -> Response:
    memberships = await accounts.accounts_of(session, page.user.id)
    if not memberships:
        return templates.TemplateResponse(request, "no_account.html", {"page": page}, status_code=200)
    return RedirectResponse(f"/app/accounts/{memberships[0][0].id}/conversations", status_code=303)


def login_redirect(request: Request, exc: LoginRequired) -> Response:
    """Plain requests are redirected; htmx requests are told to navigate (HX-Redirect)."""
    if request.headers.get("hx-request"):
        current = urlsplit(request.headers.get("hx-current-url", ""))
        here = current.path + (f"?{current.query}" if current.query else "")
        return Response(status_code=401, headers={"HX-Redirect": login_url(safe_next(here))})
    return RedirectResponse(login_url(safe_next(exc.next_path)), status_code=303)


def page_not_found(request: Request, exc: PageNotFound) -> Response:
    """The same answer whether the thing does not exist or belongs to another account."""
    del exc
    return templates.TemplateResponse(request, "not_found.html", {}, status_code=404)


# --- the inbox ------------------------------------------------------------------------------------

ConversationId = Annotated[int, Path(ge=1, le=2**63 - 1)]
APP = "/app/accounts/{account_id}/conversations"


def page_filters(
    status: Annotated[str | None, Query(max_length=20)] = None,
    assignee_type: Annotated[str | None, Query(max_length=20)] = None,
    inbox_id: Annotated[str | None, Query(max_length=20)] = None,
    label: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
) -> Filters:
    return Filters.parse(status=status, assignee_type=assignee_type, inbox_id=inbox_id, label=label, q=q)


PageFilters = Annotated[Filters, Depends(page_filters)]


def _is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true" and not request.headers.get(
        "hx-history-restore-request"
    )


def _htmx_target(request: Request) -> str | None:
    return request.headers.get("hx-target") if _is_htmx(request) else None


def _base(member: PageMember) -> str:
    return f"/app/accounts/{member.account_id}"


async def _context(
    session: DbSession, member: PageMember, filters: Filters, bar: data.Sidebar | None = None
) -> dict[str, Any]:
    bar = bar or await data.sidebar(session, member)
    if filters.inbox_id is not None:
        title = bar.inbox(filters.inbox_id).name
    elif filters.label:
        title = f"#{filters.label}"
    else:
        title = {"me": "Mine", "unassigned": "Unassigned"}.get(filters.assignee_type, "Conversations")
    return {
        "member": member,
        "base": _base(member),
        "filters": filters,
        "bar": bar,
        "inboxes": bar.inboxes,
        "labels": bar.labels,
        "label_colors": bar.label_colors,
        "status_filters": STATUS_FILTERS,
        "assignee_tabs": ASSIGNEE_TABS,
        "list_title": title,
        "csrf_field": CSRF_FIELD,
        "form_token": member.page.form_token,
        "cursor": None,
        "selected_id": None,
    }


async def _list_context(
    session: DbSession, member: PageMember, filters: Filters, ctx: dict[str, Any]
) -> None:
    ctx["rows"], ctx["next_cursor"] = await data.conversation_rows(session, member, filters, ctx["bar"])
    ctx["counts"] = await data.tab_counts(session, member, filters)


async def _conversation_context(
    session: DbSession, member: PageMember, conversation_id: int, ctx: dict[str, Any]
) -> None:
    conversation = await data.conversation(session, member, conversation_id, ctx["bar"])
    await data.mark_read(session, member, conversation_id)
    ctx["conversation"] = conversation
    ctx["selected_id"] = conversation.id
    ctx["agents"] = await data.assignable_agents(session, member, conversation.inbox.id)
    ctx["canned"] = await data.canned_responses(session, member)


@router.get(APP)
async def inbox_page(
    request: Request, session: DbSession, member: CurrentMember, filters: PageFilters
) -> HTMLResponse:
    ctx = await _context(session, member, filters)
    await _list_context(session, member, filters, ctx)
    if _htmx_target(request) == "list-pane":
        return templates.TemplateResponse(request, "partials/list_pane.html", ctx)
    ctx["conversation"] = None
    return templates.TemplateResponse(request, "inbox.html", ctx)


@router.get(APP + "/list")
async def conversation_list(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    filters: PageFilters,
    cursor: Annotated[str | None, Query(max_length=500)] = None,
) -> HTMLResponse:
    """The list's items: refreshed on live events, and the next page for "Load more"."""
    ctx = await _context(session, member, filters)
    ctx["cursor"] = cursor
    ctx["rows"], ctx["next_cursor"] = await data.conversation_rows(
        session, member, filters, ctx["bar"], cursor
    )
    return templates.TemplateResponse(request, "partials/conversation_items.html", ctx)


@router.get(APP + "/{conversation_id}")
async def conversation_page(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    filters: PageFilters,
    conversation_id: ConversationId,
) -> HTMLResponse:
    ctx = await _context(session, member, filters)
    await _conversation_context(session, member, conversation_id, ctx)
    if _htmx_target(request) == "conversation-pane":
        return templates.TemplateResponse(request, "partials/conversation.html", ctx)
    await _list_context(session, member, filters, ctx)
    return templates.TemplateResponse(request, "inbox.html", ctx)


@router.get(APP + "/{conversation_id}/messages")
async def messages_fragment(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: ConversationId,
    before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
) -> HTMLResponse:
    """The latest messages (re-fetched on live events), or an older page above them."""
    ctx = await _context(session, member, Filters())
    conversation = await data.conversation(session, member, conversation_id, ctx["bar"], with_messages=False)
    conversation.messages, conversation.older_cursor = await data.messages(
        session, member, conversation_id, before
    )
    if before is None:
        await data.mark_read(session, member, conversation_id)
    ctx["conversation"] = conversation
    return templates.TemplateResponse(request, "partials/messages.html", ctx)


async def _header(
    request: Request, session: DbSession, member: PageMember, conversation_id: int, *, oob_messages: bool
) -> HTMLResponse:
    ctx = await _context(session, member, Filters())
    conversation = await data.conversation(
        session, member, conversation_id, ctx["bar"], with_messages=oob_messages
    )
    ctx["conversation"] = conversation
    ctx["agents"] = await data.assignable_agents(session, member, conversation.inbox.id)
    ctx["oob_messages"] = oob_messages
    return templates.TemplateResponse(request, "partials/conversation_header.html", ctx)


@router.get(APP + "/{conversation_id}/header")
async def header_fragment(
    request: Request, session: DbSession, member: CurrentMember, conversation_id: ConversationId
) -> HTMLResponse:
    """Status, assignee and labels (re-fetched when the conversation changes elsewhere)."""
    return await _header(request, session, member, conversation_id, oob_messages=False)


def _conversation_url(member: PageMember, conversation_id: int) -> str:
    return f"{_base(member)}/conversations/{conversation_id}"


async def _refused(
    request: Request, session: DbSession, member: PageMember, conversation_id: int, error: WhatWutError
) -> Response:
    """Bad input from a form: nothing is written; htmx shows the reason next to the composer."""
    await session.rollback()
    detail = error.detail[:1].upper() + error.detail[1:]
    if _is_htmx(request):
        return HTMLResponse(
            escape(detail),
            status_code=422,
            headers={"HX-Retarget": "#composer-error", "HX-Reswap": "innerHTML"},
        )
    ctx = await _context(session, member, Filters())
    await _conversation_context(session, member, conversation_id, ctx)
    await _list_context(session, member, ctx["filters"], ctx)
    ctx["composer_error"] = detail
    return templates.TemplateResponse(request, "inbox.html", ctx, status_code=422)


@router.post(APP + "/{conversation_id}/messages")
async def send_message(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: ConversationId,
    content: Annotated[str, Form(max_length=8192)] = "",
    private: Annotated[str, Form(max_length=8)] = "false",
) -> Response:
    """A reply (sent to the customer) or a private note (seen by the team only)."""
    try:
        await data.send_message(session, member, conversation_id, content, private=private == "true")
    except WhatWutError as error:
        if error.status_code == 404:
            raise PageNotFound from None
        return await _refused(request, session, member, conversation_id, error)
    if not _is_htmx(request):
        return RedirectResponse(_conversation_url(member, conversation_id), status_code=303)
    ctx = await _context(session, member, Filters())
    ctx["conversation"] = await data.conversation(session, member, conversation_id, ctx["bar"])
    return templates.TemplateResponse(request, "partials/messages.html", ctx)


async def _after_change(
    request: Request, session: DbSession, member: PageMember, conversation_id: int
) -> Response:
    if not _is_htmx(request):
        return RedirectResponse(_conversation_url(member, conversation_id), status_code=303)
    return await _header(request, session, member, conversation_id, oob_messages=True)


async def _change(
    request: Request, session: DbSession, member: PageMember, conversation_id: int, change: Any
) -> Response:
    try:
        await change
    except WhatWutError as error:
        if error.status_code == 404:
            raise PageNotFound from None
        return await _refused(request, session, member, conversation_id, error)
    return await _after_change(request, session, member, conversation_id)


@router.post(APP + "/{conversation_id}/status")
async def change_status(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: ConversationId,
    status: Annotated[str | None, Form(max_length=20)] = None,
    snooze: Annotated[str | None, Form(max_length=20)] = None,
) -> Response:
    """Resolve, reopen, mark pending or snooze (the activity line says who did it)."""
    change = data.change_status(session, member, conversation_id, status, snooze)
    return await _change(request, session, member, conversation_id, change)


@router.post(APP + "/{conversation_id}/assignee")
async def change_assignee(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: ConversationId,
    assignee_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    if assignee_id and (not assignee_id.isdigit() or len(assignee_id) > 18):
        return await _refused(
            request, session, member, conversation_id, WhatWutError("choose an agent", field="assignee_id")
        )
    chosen = int(assignee_id) if assignee_id else None
    change = data.assign(session, member, conversation_id, chosen)
    return await _change(request, session, member, conversation_id, change)


@router.post(APP + "/{conversation_id}/labels")
async def change_labels(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: ConversationId,
    add: Annotated[str | None, Form(max_length=64)] = None,
    remove: Annotated[str | None, Form(max_length=64)] = None,
) -> Response:
    bar = await data.sidebar(session, member)
    current = await data.conversation(session, member, conversation_id, bar, with_messages=False)
    change = data.change_labels(session, member, conversation_id, current.labels, add=add, remove=remove)
    return await _change(request, session, member, conversation_id, change)
