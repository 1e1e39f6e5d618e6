"""Sign-in and account routes (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter

from whatwut.accounts import service
from whatwut.accounts.schemas import AccountSummary, LoginRequest, LoginResponse
from whatwut.kit.deps import Context, DbSession

router = APIRouter(tags=["auth"])


@router.post("/api/v1/auth/login", summary="Exchange email and password for a bearer token")
async def login(body: LoginRequest, session: DbSession, context: Context) -> LoginResponse:
    user = await service.authenticate(session, body.email, body.password)
    token, raw = await service.issue_token(
        session, user, kind="session", ttl=timedelta(hours=context.settings.session_ttl_hours)
    )
    accounts = await service.accounts_of(session, user.id)
    return LoginResponse(
        access_token=raw,
        expires_at=token.expires_at.isoformat() if token.expires_at else None,
        accounts=[AccountSummary(id=a.id, name=a.name, role=role) for a, role in accounts],
    )
