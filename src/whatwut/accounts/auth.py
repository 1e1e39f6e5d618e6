"""Typed dependencies that say who is asking and in which account.

A route declares ``member: AccountMember`` (any member of the path's account) or
``admin: AccountAdmin``. Someone who is not a member gets 404, exactly as if the account did
not exist, so ids of other accounts reveal nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Request

from whatwut.accounts import service
from whatwut.accounts.models import AccessToken, AccountUser, User
from whatwut.kit.deps import DbSession
from whatwut.kit.errors import NotAuthenticated, NotFound, NotPermitted
from whatwut.security.tokens import same

SESSION_COOKIE = "whatwut_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    user: User
    token: AccessToken
    via_cookie: bool


@dataclass(frozen=True)
class Member:
    account_id: int
    user: User
    role: str
    membership: AccountUser
    principal: Principal

    @property
    def is_admin(self) -> bool:
        return self.role == "administrator"


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise NotAuthenticated("the Authorization header must be `Bearer <token>`")
    return value.strip()


async def get_principal(request: Request, session: DbSession) -> Principal:
    raw = _bearer(request)
    via_cookie = False
    if raw is None:
        raw = request.cookies.get(SESSION_COOKIE)
        via_cookie = raw is not None
    if raw is None:
        raise NotAuthenticated("sign in, or send `Authorization: Bearer <token>`")
    token, user = await service.resolve_token(session, raw)
    if via_cookie:
        if token.kind != "session":
            raise NotAuthenticated("the session cookie is not valid")
        if request.method not in SAFE_METHODS:
            sent = request.headers.get(CSRF_HEADER, "")
            if not token.csrf_token or not same(sent, token.csrf_token):
                raise NotPermitted("missing or wrong CSRF token (send the X-CSRF-Token header)")
    return Principal(user=user, token=token, via_cookie=via_cookie)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_member(
    principal: CurrentPrincipal,
    session: DbSession,
    account_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
) -> Member:
    if principal.token.account_id is not None and principal.token.account_id != account_id:
        raise NotFound("account not found")
    membership = await service.get_membership(session, account_id, principal.user.id)
    if membership is None:
        raise NotFound("account not found")
    return Member(
        account_id=account_id,
        user=principal.user,
        role=membership.role,
        membership=membership,
        principal=principal,
    )


async def get_admin(member: Annotated[Member, Depends(get_member)]) -> Member:
    if not member.is_admin:
        raise NotPermitted("only administrators of this account can do this")
    return member


AccountMember = Annotated[Member, Depends(get_member)]
AccountAdmin = Annotated[Member, Depends(get_admin)]
