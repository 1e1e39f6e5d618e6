"""Demo data for ``whatwut serve --demo``: grows as the product does. Must stay idempotent."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.context import AppContext


async def seed_demo_account(session: AsyncSession, context: AppContext, account_id: int) -> None:
    """Add the demo's inboxes, agents and sample conversations (each domain adds its part)."""
    del session, context, account_id
