"""Sign-in, profile, credentials, account members and account routes (thin: parse, call, shape)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from whatwut.accounts import service
from whatwut.accounts.auth import SESSION_COOKIE, AccountAdmin, AccountMember, CurrentPrincipal
from whatwut.accounts.models import AccessToken, AccountUser, User
from whatwut.accounts.schemas import (
    AccessTokenCreate,
    AccessTokenCreated,
    AccessTokenOut,
    AccountOut,
    AccountSummary,
    AccountUpdate,
    AgentCreate,
    AgentCreated,
    AgentOut,
    AgentUpdate,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    AvailabilityUpdate,
    LoginRequest,
    LoginResponse,
    Profile,
    ProfileAccount,
    SessionResponse,
)
from whatwut.inboxes import service as inboxes
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import NotPermitted
from whatwut.kit.schemas import Page, PageMeta
from whatwut.teams import service as teams

router = APIRouter()

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Cursor = Annotated[str | None, Query(max_length=200, description="meta.next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100)]


# --- sign-in ---------------------------------------------------------------------------------


@router.post("/api/v1/auth/login", tags=["auth"], summary="Exchange email and password for a bearer token")
async def login(request: Request, body: LoginRequest, session: DbSession, context: Context) -> LoginResponse:
    user = await service.authenticate(
        session, body.email, body.password, throttle=context.sign_in_throttle, address=_client(request)
    )
    token, raw = await service.issue_token(
        session, user, kind="session", ttl=timedelta(hours=context.settings.session_ttl_hours)
    )
    accounts = await service.accounts_of(session, user.id)
    return LoginResponse(
        access_token=raw,
        expires_at=token.expires_at.isoformat() if token.expires_at else None,
        accounts=[AccountSummary(id=a.id, name=a.name, role=role) for a, role in accounts],
    )


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _login_body(request: Request) -> LoginRequest:
    """The sign-in form as JSON or as an HTML form post, validated like any request body."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            data: Any = {key: value for key, value in form.items() if isinstance(value, str)}
        else:
            data = json.loads(await request.body())
        return LoginRequest.model_validate(data)
    except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError both are
        if isinstance(exc, ValidationError):
            raise RequestValidationError(exc.errors()) from exc
        raise RequestValidationError(
            [{"loc": ("body",), "msg": "the body is not valid JSON", "type": "json_invalid"}]
        ) from exc


def _refuse_cross_site(request: Request) -> None:
    """Login CSRF: a foreign page must not sign a browser into someone else's account."""
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise NotPermitted("sign-in from another site is refused", field="origin")


_LOGIN_SCHEMA = LoginRequest.model_json_schema()


@router.post(
    "/auth/session",
    tags=["auth"],
    summary="Browser sign-in: sets the HttpOnly session cookie and answers its CSRF token",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _LOGIN_SCHEMA},
                "application/x-www-form-urlencoded": {"schema": _LOGIN_SCHEMA},
            },
        }
    },
)
async def create_browser_session(
    request: Request, response: Response, session: DbSession, context: Context
) -> SessionResponse:
    _refuse_cross_site(request)
    body = await _login_body(request)
    user = await service.authenticate(
        session, body.email, body.password, throttle=context.sign_in_throttle, address=_client(request)
    )
    ttl = timedelta(hours=context.settings.session_ttl_hours)
    token, raw = await service.issue_token(session, user, kind="session", ttl=ttl)
    response.set_cookie(
        SESSION_COOKIE,
        raw,
        max_age=int(ttl.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=context.settings.cookie_secure,
    )
    accounts = await service.accounts_of(session, user.id)
    return SessionResponse(
        csrf_token=token.csrf_token or "",
        expires_at=token.expires_at,
        user_id=user.id,
        accounts=[AccountSummary(id=a.id, name=a.name, role=role) for a, role in accounts],
    )


async def _sign_out(principal: CurrentPrincipal, session: DbSession, context: Context) -> Response:
    if principal.token.kind != "session":
        raise NotPermitted(
            "only sign-in sessions log out; revoke tokens and keys where they were created", field="token"
        )
    await service.revoke_token(session, principal.token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    if principal.via_cookie:
        response.delete_cookie(
            SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=context.settings.cookie_secure
        )
    return response


router.add_api_route(
    "/api/v1/auth/logout",
    _sign_out,
    methods=["POST"],
    status_code=204,
    tags=["auth"],
    summary="Revoke the session token this request was made with",
    response_class=Response,
)
router.add_api_route(
    "/auth/session",
    _sign_out,
    methods=["DELETE"],
    status_code=204,
    tags=["auth"],
    summary="Browser sign-out: revokes the session and clears the cookie",
    response_class=Response,
)


# --- profile ---------------------------------------------------------------------------------


@router.get("/api/v1/profile", tags=["profile"], summary="Who is signed in, and in which accounts")
async def get_profile(principal: CurrentPrincipal, session: DbSession) -> Profile:
    memberships = await service.memberships_of(session, principal.user.id)
    return Profile(
        id=principal.user.id,
        name=principal.user.name,
        email=principal.user.email,
        is_bot=principal.user.is_bot,
        accounts=[
            ProfileAccount(id=a.id, name=a.name, role=m.role, availability=m.availability)
            for a, m in memberships
        ],
        csrf_token=principal.token.csrf_token if principal.via_cookie else None,
    )


@router.put(
    "/api/v1/accounts/{account_id}/profile/availability",
    tags=["profile"],
    summary="Set your presence in this account (online, busy, offline)",
)
async def update_availability(
    body: AvailabilityUpdate, member: AccountMember, session: DbSession
) -> ProfileAccount:
    membership = await service.set_availability(session, member.membership, body.availability)
    account = await service.get_account(session, member.account_id)
    return ProfileAccount(
        id=account.id, name=account.name, role=membership.role, availability=membership.availability
    )


def _token_out(token: AccessToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "prefix": token.prefix,
        "created_at": token.created_at,
        "last_used_at": token.last_used_at,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
    }


@router.get("/api/v1/profile/access_tokens", tags=["profile"], summary="Your personal access tokens")
async def list_access_tokens(
    principal: CurrentPrincipal, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[AccessTokenOut]:
    tokens, next_cursor = await service.list_personal_tokens(
        session, principal.user.id, cursor=cursor, limit=limit
    )
    return Page(
        data=[AccessTokenOut(**_token_out(t)) for t in tokens], meta=PageMeta(next_cursor=next_cursor)
    )


@router.post(
    "/api/v1/profile/access_tokens",
    tags=["profile"],
    status_code=201,
    summary="Create a personal access token (the token is shown only in this answer)",
)
async def create_access_token(
    body: AccessTokenCreate, principal: CurrentPrincipal, session: DbSession
) -> AccessTokenCreated:
    service.require_session(principal.token)
    token, raw = await service.create_personal_token(
        session, principal.user, name=body.name, expires_in_days=body.expires_in_days
    )
    await session.refresh(token)
    return AccessTokenCreated(**_token_out(token), token=raw)


@router.delete(
    "/api/v1/profile/access_tokens/{token_id}",
    tags=["profile"],
    status_code=204,
    summary="Revoke a personal access token",
)
async def revoke_access_token(token_id: Id, principal: CurrentPrincipal, session: DbSession) -> None:
    await service.revoke_personal_token(session, principal.user.id, token_id)


# --- account API keys --------------------------------------------------------------------------


def _api_key_out(token: AccessToken, role: str | None) -> dict[str, Any]:
    return {**_token_out(token), "user_id": token.user_id, "role": role, "created_by_id": token.created_by_id}


@router.get("/api/v1/accounts/{account_id}/api_keys", tags=["api keys"], summary="The account's API keys")
async def list_api_keys(
    admin: AccountAdmin, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[ApiKeyOut]:
    keys, next_cursor = await service.list_api_keys(session, admin.account_id, cursor=cursor, limit=limit)
    return Page(
        data=[ApiKeyOut(**_api_key_out(t, r)) for t, r in keys], meta=PageMeta(next_cursor=next_cursor)
    )


@router.post(
    "/api/v1/accounts/{account_id}/api_keys",
    tags=["api keys"],
    status_code=201,
    summary="Create an API key acting as a bot member of this account (shown only in this answer)",
)
async def create_api_key(body: ApiKeyCreate, admin: AccountAdmin, session: DbSession) -> ApiKeyCreated:
    token, raw, _bot = await service.create_api_key(
        session,
        admin.account_id,
        actor_user_id=admin.user.id,
        name=body.name,
        role=body.role,
        expires_in_days=body.expires_in_days,
    )
    await session.refresh(token)
    return ApiKeyCreated(**_api_key_out(token, body.role), token=raw)


@router.delete(
    "/api/v1/accounts/{account_id}/api_keys/{api_key_id}",
    tags=["api keys"],
    status_code=204,
    summary="Revoke an API key (its bot leaves the account)",
)
async def revoke_api_key(api_key_id: Id, admin: AccountAdmin, session: DbSession) -> None:
    await service.revoke_api_key(session, admin.account_id, api_key_id, actor_user_id=admin.user.id)


# --- account members ("agents", as Chatwoot calls them) -------------------------------------------


def _agent_out(user: User, membership: AccountUser) -> dict[str, Any]:
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "role": membership.role,
        "availability": membership.availability,
    }


@router.get("/api/v1/accounts/{account_id}/agents", tags=["agents"], summary="The people in this account")
async def list_agents(
    member: AccountMember, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[AgentOut]:
    rows, next_cursor = await service.list_members(session, member.account_id, cursor=cursor, limit=limit)
    return Page(data=[AgentOut(**_agent_out(u, m)) for u, m in rows], meta=PageMeta(next_cursor=next_cursor))


@router.post(
    "/api/v1/accounts/{account_id}/agents",
    tags=["agents"],
    status_code=201,
    summary="Add a person to the account (a generated password is shown only in this answer)",
)
async def add_agent(body: AgentCreate, admin: AccountAdmin, session: DbSession) -> AgentCreated:
    user, membership, generated = await service.invite_agent(
        session,
        admin.account_id,
        actor_user_id=admin.user.id,
        email=body.email,
        name=body.name,
        role=body.role,
        password=body.password,
    )
    return AgentCreated(**_agent_out(user, membership), password=generated)


@router.patch(
    "/api/v1/accounts/{account_id}/agents/{user_id}", tags=["agents"], summary="Change a person's role"
)
async def update_agent(user_id: Id, body: AgentUpdate, admin: AccountAdmin, session: DbSession) -> AgentOut:
    user, membership = await service.change_role(
        session, admin.account_id, user_id, body.role, actor_user_id=admin.user.id
    )
    return AgentOut(**_agent_out(user, membership))


@router.delete(
    "/api/v1/accounts/{account_id}/agents/{user_id}",
    tags=["agents"],
    status_code=204,
    summary="Remove a person from the account (never the last administrator)",
)
async def remove_agent(user_id: Id, admin: AccountAdmin, session: DbSession) -> None:
    await service.remove_agent(session, admin.account_id, user_id, actor_user_id=admin.user.id)
    await teams.remove_user_from_account_teams(session, admin.account_id, user_id)
    await inboxes.remove_user_from_account_inboxes(session, admin.account_id, user_id)


# --- the account ------------------------------------------------------------------------------


@router.get("/api/v1/accounts/{account_id}", tags=["accounts"], summary="The account's settings")
async def get_account(member: AccountMember, session: DbSession) -> AccountOut:
    return AccountOut.model_validate(await service.get_account(session, member.account_id))


@router.patch(
    "/api/v1/accounts/{account_id}", tags=["accounts"], summary="Rename the account or set its locale"
)
async def update_account(body: AccountUpdate, admin: AccountAdmin, session: DbSession) -> AccountOut:
    account = await service.update_account(
        session, admin.account_id, actor_user_id=admin.user.id, name=body.name, locale=body.locale
    )
    return AccountOut.model_validate(account)
