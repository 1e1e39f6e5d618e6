"""The process-wide resources a request, a job or a CLI command works with."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from whatwut.db.embedded import resolve_database_url
from whatwut.db.engine import make_engine, make_sessionmaker
from whatwut.security.crypto import SecretBox, load_or_create_secret
from whatwut.security.throttle import SignInThrottle
from whatwut.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    database_url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    secrets: SecretBox
    sign_in_throttle: SignInThrottle

    @classmethod
    def create(cls, settings: Settings) -> AppContext:
        url = resolve_database_url(settings.database_url, settings.data_dir)
        engine = make_engine(url)
        secret = load_or_create_secret(
            settings.secret_key.get_secret_value() if settings.secret_key else None, settings.data_dir
        )
        return cls(
            settings=settings,
            database_url=url,
            engine=engine,
            sessionmaker=make_sessionmaker(engine),
            secrets=SecretBox(secret),
            sign_in_throttle=SignInThrottle(
                failures_per_email=settings.login_max_failures,
                failures_per_address=settings.login_max_failures_per_address,
                window_minutes=settings.login_lockout_minutes,
            ),
        )

    async def close(self) -> None:
        await self.engine.dispose()


_current: AppContext | None = None


def set_current(context: AppContext | None) -> None:
    """Jobs run outside requests; they find the process's context here."""
    global _current
    _current = context


def get_current() -> AppContext:
    if _current is None:
        raise RuntimeError("no AppContext: start through `whatwut serve`, `whatwut worker` or create_app()")
    return _current
