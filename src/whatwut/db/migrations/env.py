"""Alembic environment: runs on the engine the CLI hands it, under an advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from whatwut.db.models import Base

MIGRATION_LOCK = 7_770_001  # pg_advisory_lock key: two processes never migrate at once


def run_migrations(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        include_object=lambda obj, name, type_, reflected, compare_to: (
            not (type_ == "table" and name is not None and name.startswith("procrastinate_"))
        ),
    )
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `whatwut migrate`, which provides the connection")
run_migrations(connection)
