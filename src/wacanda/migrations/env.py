"""Alembic environment of Wacanda: its own schema and version table, under its own advisory lock."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from wacanda.answering import models as _answering_models  # noqa: F401  (registers the tables)
from wacanda.knowledge.models import SCHEMA, Base

MIGRATION_LOCK = 7_770_105  # pg_advisory_lock key (WhatWut's is 7_770_001)


def _ours(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
    return not (name is not None and name.startswith("procrastinate_"))


def run_migrations(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK})
    connection.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table_schema=SCHEMA,
        include_schemas=True,
        include_name=lambda name, type_, parent: type_ != "schema" or name == SCHEMA,
        include_object=_ours,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `wacanda migrate`, which provides the connection")
run_migrations(connection)
