"""Start-up chores shared by the CLI commands: database, schema, admin, demo data."""

from __future__ import annotations

from dataclasses import dataclass

from whatwut.accounts import service as accounts
from whatwut.context import AppContext
from whatwut.db.embedded import resolve_database_url
from whatwut.db.engine import transaction
from whatwut.db.migrate import upgrade_to_head
from whatwut.settings import Settings

DEMO_ACCOUNT = "Demo"
DEMO_EMAIL = "admin@demo.whatwut.dev"
DEMO_PASSWORD = "whatwut-demo"


@dataclass(frozen=True)
class DemoCredentials:
    email: str
    password: str
    account_id: int


def prepare(settings: Settings) -> str:
    """Find (or start) the database and bring its schema to head; return the URL."""
    url = resolve_database_url(settings.database_url, settings.data_dir)
    upgrade_to_head(url)
    return url


@dataclass(frozen=True)
class AdminCreated:
    account_id: int
    ai_agent: bool  # the account has the "Wacanda" AI agent of the ``serve`` on this data directory


async def create_admin(settings: Settings, email: str, password: str, account_name: str) -> AdminCreated:
    prepare(settings)
    context = AppContext.create(settings)
    try:
        async with transaction(context.sessionmaker) as session:
            account, _user = await accounts.create_admin(
                session, email=email, password=password, account_name=account_name
            )
            account_id = account.id
    finally:
        await context.close()
    from whatwut.bots.wacanda import register_with_running_wacanda

    return AdminCreated(account_id, await register_with_running_wacanda(settings))


async def seed_demo(settings: Settings) -> DemoCredentials:
    """The Demo account with its administrator; idempotent, so every ``--demo`` start is safe."""
    from whatwut.demo import seed

    context = AppContext.create(settings)
    try:
        async with transaction(context.sessionmaker) as session:
            account, _user = await accounts.create_admin(
                session, email=DEMO_EMAIL, password=DEMO_PASSWORD, account_name=DEMO_ACCOUNT
            )
            await seed.seed_demo_account(session, context, account.id)
            return DemoCredentials(DEMO_EMAIL, DEMO_PASSWORD, account.id)
    finally:
        await context.close()
