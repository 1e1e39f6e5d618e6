"""Turning unique-constraint violations into 409s, without losing the request's transaction.

Checking first and inserting second races; the database's constraint is the real arbiter. The
write runs in a savepoint so that a violation rolls back only itself, and the caller raises a
``Conflict`` naming the field the constraint protects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.kit.errors import Conflict


def constraint_name(exc: IntegrityError) -> str | None:
    """The name of the constraint PostgreSQL reported (psycopg's diagnostics), if any."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    return str(name) if name else None


@asynccontextmanager
async def unique_or_conflict(
    session: AsyncSession, conflicts: Mapping[str, tuple[str, str]]
) -> AsyncIterator[None]:
    """Run the block (and a flush) in a savepoint; map ``constraint -> (field, detail)`` to 409.

    Make the changes *inside* the block: a savepoint flushes what is pending when it begins.
    Violations of constraints not in ``conflicts`` propagate unchanged.
    """
    try:
        async with session.begin_nested():
            yield
            await session.flush()
    except IntegrityError as exc:
        name = constraint_name(exc)
        if name is not None and name in conflicts:
            field, detail = conflicts[name]
            raise Conflict(detail, field=field) from None
        raise
