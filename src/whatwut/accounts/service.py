"""Accounts, users, memberships and bearer credentials. No HTTP here; callers own the transaction."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts.models import AccessToken, Account, AccountUser, User
from whatwut.kit.errors import Conflict, InvalidInput, NotAuthenticated
from whatwut.security.passwords import hash_password, verify_password
from whatwut.security.tokens import hash_token, new_csrf_token, new_token

MIN_PASSWORD_LENGTH = 8
#: Don't write ``last_used_at`` on every request; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def get_account_by_name(session: AsyncSession, name: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.name == name))).scalar_one_or_none()


async def create_account(session: AsyncSession, name: str) -> Account:
    name = name.strip()
    if not name:
        raise InvalidInput("account name must not be empty", field="name")
    if await get_account_by_name(session, name) is not None:
        raise Conflict(f"an account named {name!r} already exists", field="name")
    account = Account(name=name, settings={})
    session.add(account)
    await session.flush()
    return account


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    from sqlalchemy import func

    return (
        await session.execute(select(User).where(func.lower(User.email) == email.strip().lower()))
    ).scalar_one_or_none()


async def create_user(session: AsyncSession, *, email: str, name: str, password: str | None) -> User:
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if await get_user_by_email(session, email) is not None:
        raise Conflict(f"a user with email {email!r} already exists", field="email")
    user = User(
        email=email.strip().lower(),
        name=name.strip() or email.split("@")[0],
        password_hash=hash_password(password) if password is not None else None,
    )
    session.add(user)
    await session.flush()
    return user


async def add_member(session: AsyncSession, account: Account, user: User, role: str) -> AccountUser:
    existing = await get_membership(session, account.id, user.id)
    if existing is not None:
        existing.role = role
        return existing
    membership = AccountUser(account_id=account.id, user_id=user.id, role=role, availability="offline")
    session.add(membership)
    await session.flush()
    return membership


async def get_membership(session: AsyncSession, account_id: int, user_id: int) -> AccountUser | None:
    return (
        await session.execute(
            select(AccountUser).where(AccountUser.account_id == account_id, AccountUser.user_id == user_id)
        )
    ).scalar_one_or_none()


async def accounts_of(session: AsyncSession, user_id: int) -> Sequence[tuple[Account, str]]:
    rows = await session.execute(
        select(Account, AccountUser.role)
        .join(AccountUser, AccountUser.account_id == Account.id)
        .where(AccountUser.user_id == user_id)
        .order_by(Account.id)
    )
    return [(account, role) for account, role in rows.all()]


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user with these credentials; one vague error for every failure, as login forms should."""
    user = await get_user_by_email(session, email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        raise NotAuthenticated("email or password is incorrect")
    return user


async def issue_token(
    session: AsyncSession,
    user: User,
    *,
    kind: str,
    name: str = "",
    account_id: int | None = None,
    ttl: timedelta | None = None,
    created_by_id: int | None = None,
) -> tuple[AccessToken, str]:
    """Create a credential; the raw token is returned once and never stored."""
    raw = new_token(kind)
    token = AccessToken(
        kind=kind,
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:8],
        user_id=user.id,
        account_id=account_id,
        csrf_token=new_csrf_token() if kind == "session" else None,
        expires_at=_now() + ttl if ttl else None,
        scopes=[],
        created_by_id=created_by_id,
    )
    session.add(token)
    await session.flush()
    return token, raw


async def resolve_token(session: AsyncSession, raw: str) -> tuple[AccessToken, User]:
    """The live credential behind a bearer string, touching ``last_used_at``; 401 otherwise."""
    row = (
        await session.execute(
            select(AccessToken, User)
            .join(User, User.id == AccessToken.user_id)
            .where(AccessToken.token_hash == hash_token(raw))
        )
    ).one_or_none()
    if row is None:
        raise NotAuthenticated("the access token is not valid")
    token, user = row[0], row[1]
    now = _now()
    if token.revoked_at is not None:
        raise NotAuthenticated("the access token was revoked")
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated("the access token has expired; sign in again")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        await session.execute(update(AccessToken).where(AccessToken.id == token.id).values(last_used_at=now))
    return token, user


async def revoke_token(session: AsyncSession, token: AccessToken) -> None:
    token.revoked_at = _now()
    await session.flush()


async def create_admin(
    session: AsyncSession, *, email: str, password: str, account_name: str
) -> tuple[Account, User]:
    """Create (or join) the account and make this user its administrator (``whatwut create-admin``)."""
    account = await get_account_by_name(session, account_name) or await create_account(session, account_name)
    user = await get_user_by_email(session, email)
    if user is None:
        user = await create_user(session, email=email, name=email.split("@")[0], password=password)
    else:
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(
                f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password"
            )
        user.password_hash = hash_password(password)
    await add_member(session, account, user, "administrator")
    return account, user
