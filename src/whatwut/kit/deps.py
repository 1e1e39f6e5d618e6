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


Context = Annotated[AppContext, Depends(get_context)]
#: ``scope="function"`` commits before the response is sent: with FastAPI's default ("request")
#: the commit runs after the client already has its answer, so its next request could miss the
#: write, and a failing commit could no longer turn into an error response.
DbSession = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
