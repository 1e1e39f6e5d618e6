"""Wacanda's schema migrations: its own Alembic environment, version table in the ``wacanda`` schema.

WhatWut's migrations never see Wacanda's tables and the reverse, so the two deploy apart.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from wacanda.db import SCHEMA, connect_args, sqlalchemy_url

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def upgrade_to_head(libpq: str) -> str:
    """Apply every pending migration; return the revision the database is now at."""
    engine = create_engine(sqlalchemy_url(libpq), future=True, connect_args=connect_args("wacanda-migrate"))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
        with engine.connect() as connection:
            version = text(f"SELECT version_num FROM {SCHEMA}.alembic_version")  # noqa: S608
            return str(connection.execute(version).scalar_one())
    finally:
        engine.dispose()


def autogenerate(libpq: str, message: str, rev_id: str) -> None:
    """Write a new revision from the models (a development tool)."""
    engine = create_engine(sqlalchemy_url(libpq), future=True, connect_args=connect_args("wacanda-migrate"))
    try:
        with engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    finally:
        engine.dispose()
