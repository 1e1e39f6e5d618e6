"""Request-scoped dependencies: the context and the session that commits at the edge."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.context import AppContext


def get_context(request: Request) -> AppContext:
    context: AppContext = request.app.state.context
    return context


async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One transaction per request: committed after the route returns, rolled back on error."""
    context = get_context(request)
    async with context.sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def _context(request: Request) -> AppContext:
    # ``async``: FastAPI runs a plain ``def`` dependency in its thread pool, a thread hop per request
    # (measured on the webhook path: ~15% of the server's CPU; bench/webhook_ingest.py).
    return get_context(request)


Context = Annotated[AppContext, Depends(_context)]
#: ``scope="function"`` commits before the response is sent: with FastAPI's default ("request")
#: the commit runs after the client already has its answer, so its next request could miss the
#: write, and a failing commit could no longer turn into an error response.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
