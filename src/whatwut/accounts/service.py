"""Accounts, users, memberships and bearer credentials. No HTTP here; callers own the transaction."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts.models import AVAILABILITY, ROLES, AccessToken, Account, AccountUser, User
from whatwut.audit import service as audit
from whatwut.kit.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, NotPermitted
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.realtime import service as realtime
from whatwut.security.passwords import hash_password, verify_password
from whatwut.security.throttle import SignInThrottle
from whatwut.security.tokens import hash_token, new_csrf_token, new_token

MIN_PASSWORD_LENGTH = 8
#: Don't write ``last_used_at`` on every request; once a minute is precise enough.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _now() -> datetime:
    return datetime.now(UTC)


async def get_account_by_name(session: AsyncSession, name: str) -> Account | None:
    return (await session.execute(select(Account).where(Account.name == name))).scalar_one_or_none()


async def all_account_ids(session: AsyncSession) -> list[int]:
    """Every account, oldest first: for start-up work done per account (registering bots)."""
    return list(await session.scalars(select(Account.id).order_by(Account.id)))


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


async def authenticate(
    session: AsyncSession,
    email: str,
    password: str,
    *,
    throttle: SignInThrottle | None = None,
    address: str | None = None,
) -> User:
    """The user with these credentials; one vague error for every failure, as login forms should.

    With a ``throttle``, an email (or client address) with too many recent failures is refused
    with 429 before its password is checked, right or wrong.
    """
    if throttle is not None:
        throttle.check(email, address)
    user = await get_user_by_email(session, email)
    if not verify_password(user.password_hash if user else None, password) or user is None:
        if throttle is not None:
            throttle.failed(email, address)
        raise NotAuthenticated("email or password is incorrect")
    if throttle is not None:
        throttle.succeeded(email)
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


# --- pagination -----------------------------------------------------------------------------


def _after_id(cursor: str | None) -> int | None:
    """The id a keyset cursor points past; a cursor we did not issue is a 422 on ``cursor``."""
    if not cursor:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
    return value


def _next_cursor(ids: Sequence[int], limit: int) -> str | None:
    return encode_cursor(ids[limit - 1]) if len(ids) > limit else None


# --- accounts -------------------------------------------------------------------------------


async def get_account(session: AsyncSession, account_id: int) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("account not found")
    return account


async def update_account(
    session: AsyncSession,
    account_id: int,
    *,
    actor_user_id: int | None,
    name: str | None = None,
    locale: str | None = None,
) -> Account:
    account = await get_account(session, account_id)
    changes: dict[str, object] = {}
    if name is not None and name != account.name:
        if not name.strip():
            raise InvalidInput("account name must not be empty", field="name")
        if await get_account_by_name(session, name) is not None:
            raise Conflict(f"an account named {name!r} already exists", field="name")
        changes["name"] = [account.name, name]
        async with unique_or_conflict(
            session, {"uq_accounts_name": ("name", f"an account named {name!r} already exists")}
        ):
            account.name = name
    if locale is not None and locale != account.locale:
        changes["locale"] = [account.locale, locale]
        account.locale = locale
    if changes:
        await session.flush()
        await audit.record(
            session, account.id, actor_user_id, "account.updated", "account", account.id, changes
        )
    return account


async def memberships_of(session: AsyncSession, user_id: int) -> Sequence[tuple[Account, AccountUser]]:
    """Every account the user belongs to, with the membership (role and presence) in it."""
    rows = await session.execute(
        select(Account, AccountUser)
        .join(AccountUser, AccountUser.account_id == Account.id)
        .where(AccountUser.user_id == user_id)
        .order_by(Account.id)
    )
    return [(account, membership) for account, membership in rows.all()]


async def set_availability(session: AsyncSession, membership: AccountUser, availability: str) -> AccountUser:
    """Change a member's presence in one account and tell the account's open inboxes."""
    if availability not in AVAILABILITY:
        raise InvalidInput(f"availability must be one of {', '.join(AVAILABILITY)}", field="availability")
    if membership.availability != availability:
        membership.availability = availability
        membership.availability_changed_at = _now()
        await session.flush()
        await realtime.publish(
            session,
            membership.account_id,
            "presence.updated",
            {"user_id": membership.user_id, "availability": availability},
        )
    return membership


# --- account members ("agents") ---------------------------------------------------------------


async def list_members(
    session: AsyncSession,
    account_id: int,
    *,
    cursor: str | None = None,
    limit: int = 25,
    user_ids: Iterable[int] | None = None,
    include_bots: bool = False,
) -> tuple[Sequence[tuple[User, AccountUser]], str | None]:
    """A page of the account's members by user id, optionally only ``user_ids``."""
    query = (
        select(User, AccountUser)
        .join(AccountUser, AccountUser.user_id == User.id)
        .where(AccountUser.account_id == account_id)
    )
    if not include_bots:
        query = query.where(User.is_bot.is_(False))
    if user_ids is not None:
        query = query.where(User.id.in_(list(user_ids)))
    after = _after_id(cursor)
    if after is not None:
        query = query.where(User.id > after)
    rows = [(u, m) for u, m in (await session.execute(query.order_by(User.id).limit(limit + 1))).all()]
    return rows[:limit], _next_cursor([u.id for u, _ in rows], limit)


async def member_ids(session: AsyncSession, account_id: int, user_ids: Iterable[int]) -> set[int]:
    """Which of ``user_ids`` are members of the account (other domains check assignees with this)."""
    wanted = list(set(user_ids))
    if not wanted:
        return set()
    rows = await session.execute(
        select(AccountUser.user_id).where(
            AccountUser.account_id == account_id, AccountUser.user_id.in_(wanted)
        )
    )
    return set(rows.scalars().all())


async def _lock_account(session: AsyncSession, account_id: int) -> Account:
    """Serialise membership changes of one account, so two admins can't demote each other at once."""
    account = (
        await session.execute(select(Account).where(Account.id == account_id).with_for_update())
    ).scalar_one_or_none()
    if account is None:
        raise NotFound("account not found")
    return account


async def _human_member(session: AsyncSession, account_id: int, user_id: int) -> tuple[User, AccountUser]:
    row = (
        await session.execute(
            select(User, AccountUser)
            .join(AccountUser, AccountUser.user_id == User.id)
            .where(AccountUser.account_id == account_id, User.id == user_id)
        )
    ).one_or_none()
    if row is None:
        raise NotFound("agent not found in this account", field="user_id")
    user, membership = row[0], row[1]
    if user.is_bot:
        raise NotFound(
            "agent not found in this account (API key bots are managed under api_keys)", field="user_id"
        )
    return user, membership


async def _ensure_another_admin(session: AsyncSession, account_id: int, user_id: int) -> None:
    others = await session.scalar(
        select(func.count())
        .select_from(AccountUser)
        .join(User, User.id == AccountUser.user_id)
        .where(
            AccountUser.account_id == account_id,
            AccountUser.role == "administrator",
            AccountUser.user_id != user_id,
            User.is_bot.is_(False),
        )
    )
    if not others:
        raise Conflict(
            "an account needs at least one administrator; promote someone else first", field="user_id"
        )


async def invite_agent(
    session: AsyncSession,
    account_id: int,
    *,
    actor_user_id: int | None,
    email: str,
    name: str,
    role: str,
    password: str | None = None,
) -> tuple[User, AccountUser, str | None]:
    """Add a person to the account, creating their user when new.

    Returns the generated password when one was made (shown once). An existing user keeps
    their own password: an administrator of one account must not reset a sign-in shared with others.
    """
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    account = await _lock_account(session, account_id)
    generated: str | None = None
    user = await get_user_by_email(session, email)
    if user is None:
        if password is None:
            generated = password = secrets.token_urlsafe(12)
        async with unique_or_conflict(
            session, {"uq_users_email_lower": ("email", f"a user with email {email!r} already exists")}
        ):
            user = await create_user(session, email=email, name=name, password=password)
    else:
        if user.is_bot:
            raise Conflict("this email belongs to a bot", field="email")
        if await get_membership(session, account_id, user.id) is not None:
            raise Conflict(f"{email} is already a member of this account", field="email")
        if password is not None:
            raise Conflict(
                f"{email} already has a WhatWut sign-in and keeps its password; omit password",
                field="password",
            )
    membership = await add_member(session, account, user, role)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "agent.added",
        "user",
        user.id,
        {"email": user.email, "role": role},
    )
    return user, membership, generated


async def change_role(
    session: AsyncSession, account_id: int, user_id: int, role: str, *, actor_user_id: int | None
) -> tuple[User, AccountUser]:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    await _lock_account(session, account_id)
    user, membership = await _human_member(session, account_id, user_id)
    if membership.role != role:
        if membership.role == "administrator":
            await _ensure_another_admin(session, account_id, user_id)
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "agent.role_changed",
            "user",
            user.id,
            {"role": [membership.role, role]},
        )
        membership.role = role
        await session.flush()
    return user, membership


async def remove_agent(
    session: AsyncSession, account_id: int, user_id: int, *, actor_user_id: int | None
) -> None:
    """End a person's membership (their user and their history stay)."""
    await _lock_account(session, account_id)
    user, membership = await _human_member(session, account_id, user_id)
    if membership.role == "administrator":
        await _ensure_another_admin(session, account_id, user_id)
    await session.delete(membership)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "agent.removed",
        "user",
        user.id,
        {"email": user.email, "role": membership.role},
    )
    await session.flush()


# --- personal access tokens -------------------------------------------------------------------


def _ttl(expires_in_days: int | None) -> timedelta | None:
    return timedelta(days=expires_in_days) if expires_in_days else None


async def create_personal_token(
    session: AsyncSession, user: User, *, name: str, expires_in_days: int | None = None
) -> tuple[AccessToken, str]:
    if not name.strip():
        raise InvalidInput("name must not be empty", field="name")
    return await issue_token(
        session, user, kind="personal", name=name, ttl=_ttl(expires_in_days), created_by_id=user.id
    )


async def list_personal_tokens(
    session: AsyncSession, user_id: int, *, cursor: str | None = None, limit: int = 25
) -> tuple[Sequence[AccessToken], str | None]:
    """The user's personal access tokens, newest first (revoked ones too, marked as such)."""
    query = select(AccessToken).where(AccessToken.user_id == user_id, AccessToken.kind == "personal")
    before = _after_id(cursor)
    if before is not None:
        query = query.where(AccessToken.id < before)
    rows = (await session.execute(query.order_by(AccessToken.id.desc()).limit(limit + 1))).scalars().all()
    return rows[:limit], _next_cursor([t.id for t in rows], limit)


async def revoke_personal_token(session: AsyncSession, user_id: int, token_id: int) -> AccessToken:
    token = (
        await session.execute(
            select(AccessToken).where(
                AccessToken.id == token_id, AccessToken.user_id == user_id, AccessToken.kind == "personal"
            )
        )
    ).scalar_one_or_none()
    if token is None:
        raise NotFound("access token not found", field="token_id")
    if token.revoked_at is None:
        await revoke_token(session, token)
    return token


# --- account API keys -------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession,
    account_id: int,
    *,
    actor_user_id: int | None,
    name: str,
    role: str = "agent",
    expires_in_days: int | None = None,
) -> tuple[AccessToken, str, User]:
    """A key that acts as a new bot member of the account, and of that account only."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise InvalidInput("name must not be empty", field="name")
    account = await get_account(session, account_id)
    bot = User(
        email=f"bot-{secrets.token_hex(8)}@bots.whatwut.invalid", name=name, password_hash=None, is_bot=True
    )
    session.add(bot)
    await session.flush()
    await add_member(session, account, bot, role)
    token, raw = await issue_token(
        session,
        bot,
        kind="api_key",
        name=name,
        account_id=account_id,
        ttl=_ttl(expires_in_days),
        created_by_id=actor_user_id,
    )
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "api_key.created",
        "api_key",
        token.id,
        {"name": name, "role": role, "prefix": token.prefix, "bot_user_id": bot.id},
    )
    return token, raw, bot


async def list_api_keys(
    session: AsyncSession, account_id: int, *, cursor: str | None = None, limit: int = 25
) -> tuple[Sequence[tuple[AccessToken, str | None]], str | None]:
    """The account's API keys, newest first, with the role of their bot (``None`` once revoked)."""
    query = (
        select(AccessToken, AccountUser.role)
        .outerjoin(
            AccountUser,
            (AccountUser.user_id == AccessToken.user_id) & (AccountUser.account_id == AccessToken.account_id),
        )
        .where(AccessToken.account_id == account_id, AccessToken.kind == "api_key")
    )
    before = _after_id(cursor)
    if before is not None:
        query = query.where(AccessToken.id < before)
    rows = [
        (t, r)
        for t, r in (await session.execute(query.order_by(AccessToken.id.desc()).limit(limit + 1))).all()
    ]
    return rows[:limit], _next_cursor([t.id for t, _ in rows], limit)


async def revoke_api_key(
    session: AsyncSession, account_id: int, key_id: int, *, actor_user_id: int | None
) -> AccessToken:
    """Revoke the key and end its bot's membership; the bot user stays as the author of its history."""
    token = (
        await session.execute(
            select(AccessToken).where(
                AccessToken.id == key_id, AccessToken.account_id == account_id, AccessToken.kind == "api_key"
            )
        )
    ).scalar_one_or_none()
    if token is None:
        raise NotFound("API key not found", field="api_key_id")
    if token.revoked_at is None:
        await revoke_token(session, token)
        await session.execute(
            delete(AccountUser).where(
                AccountUser.account_id == account_id, AccountUser.user_id == token.user_id
            )
        )
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "api_key.revoked",
            "api_key",
            token.id,
            {"name": token.name, "prefix": token.prefix},
        )
    return token


def require_session(token: AccessToken) -> None:
    """Credentials are managed from a sign-in session, so a leaked token can't mint more of itself."""
    if token.kind != "session":
        raise NotPermitted("sign in to manage personal access tokens; a token cannot manage tokens")
