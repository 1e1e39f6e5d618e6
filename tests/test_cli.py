"""The real ``whatwut`` command, run as a subprocess: migrate, create-admin, and DATABASE_URL.

``DATABASE_URL`` decides the database: the last test starts a second embedded PostgreSQL and
shows that the command's rows land there and nowhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory

from tests.support import unique
from whatwut.db.embedded import libpq_url, start_embedded, stop_embedded
from whatwut.db.migrate import alembic_config

WHATWUT = str(Path(sys.executable).parent / "whatwut")
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def run_cli(*args: str, database_url: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "WHATWUT_DATA_DIR": str(data_dir),
        "COLUMNS": "200",
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    return subprocess.run([WHATWUT, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def output(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


def counts(conn: psycopg.Connection[Any], email: str, account: str) -> tuple[int, int]:
    users = conn.execute("SELECT count(*) FROM users WHERE email = %s", (email.lower(),)).fetchone()
    accounts = conn.execute("SELECT count(*) FROM accounts WHERE name = %s", (account,)).fetchone()
    assert users is not None and accounts is not None
    return int(users[0]), int(accounts[0])


def test_migrate_prints_the_revision(database_url: str, tmp_path: Path) -> None:
    result = run_cli("migrate", database_url=database_url, data_dir=tmp_path)
    assert result.returncode == 0, output(result)
    assert f"revision {HEAD}" in output(result)


def test_migrate_accepts_the_plain_libpq_url_form(database_url: str, tmp_path: Path) -> None:
    result = run_cli("migrate", database_url=libpq_url(database_url), data_dir=tmp_path)
    assert result.returncode == 0, output(result)
    assert HEAD in output(result)


def test_migrate_rejects_a_url_that_is_not_postgresql(tmp_path: Path) -> None:
    result = run_cli("migrate", database_url="mysql://root@localhost/db", data_dir=tmp_path)
    assert result.returncode == 2
    assert "postgresql://" in output(result)


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("WHATWUT_RUN_WORKER", "sometimes", "serve"),
        ("WHATWUT_WORKER_CONCURRENCY", "0", "worker"),
        ("WHATSAPP_SEND_MAX_ATTEMPTS", "many", "migrate"),
    ],
)
def test_a_bad_setting_is_named_with_exit_2_and_no_traceback(
    tmp_path: Path, variable: str, value: str, command: str
) -> None:
    env = {**os.environ, "WHATWUT_DATA_DIR": str(tmp_path), "COLUMNS": "200", variable: value}
    result = subprocess.run(
        [WHATWUT, command], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text
    assert f"invalid configuration: {variable}={value!r}" in text and "Traceback" not in text
    assert not (tmp_path / "server").exists()  # stopped before anything started


def test_create_admin_creates_the_account_then_joins_it(
    database_url: str, db_conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    account = unique("Acme")
    first, second = f"{unique('boss')}@example.com", f"{unique('deputy')}@example.com"
    result = run_cli(
        "create-admin", "--email", first, "--password", "s3cret-pass", "--account", account,
        database_url=database_url, data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    assert first in output(result) and account in output(result)
    joined = run_cli(
        "create-admin", "--email", second, "--password", "another-pass", "--account", account,
        database_url=database_url, data_dir=tmp_path,
    )  # fmt: skip
    assert joined.returncode == 0, output(joined)
    rows = db_conn.execute(
        "SELECT u.email, m.role FROM accounts a JOIN account_users m ON m.account_id = a.id"
        " JOIN users u ON u.id = m.user_id WHERE a.name = %s ORDER BY u.id",
        (account,),
    ).fetchall()
    assert rows == [(first, "administrator"), (second, "administrator")]
    assert counts(db_conn, first, account) == (1, 1)
    hashed = db_conn.execute("SELECT password_hash FROM users WHERE email = %s", (first,)).fetchone()
    assert hashed is not None and hashed[0].startswith("$argon2id$")


@pytest.mark.parametrize(
    "bots_file",
    ["{not json", '["a list"]', '{"api_url": "http://127.0.0.1:1"}', '{"wacanda_url": 7, "api_url": ""}'],
)
def test_create_admin_ignores_a_bots_file_that_names_no_wacanda(
    database_url: str, db_conn: psycopg.Connection[Any], tmp_path: Path, bots_file: str
) -> None:
    """Only a bots file written by ``whatwut serve`` (both URLs) registers the new account's agent."""
    (tmp_path / "wacanda-bots.json").write_text(bots_file)
    account, email = unique("Plain"), f"{unique('owner')}@example.com"
    result = run_cli(
        "create-admin", "--email", email, "--password", "s3cret-pass", "--account", account,
        database_url=database_url, data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, output(result)
    assert "AI agent" not in output(result)
    agents = db_conn.execute(
        "SELECT count(*) FROM ai_agents g JOIN accounts a ON a.id = g.account_id WHERE a.name = %s",
        (account,),
    ).fetchone()
    assert agents == (0,)
    assert (tmp_path / "wacanda-bots.json").read_text() == bots_file  # left as it was


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("not-an-email", "long-enough-pass", "--email"),
        ("someone@", "long-enough-pass", "--email"),
        ("short@example.com", "short", "at least 8 characters"),
    ],
)
def test_create_admin_bad_input_exits_2_with_a_clear_message_and_writes_nothing(
    database_url: str,
    db_conn: psycopg.Connection[Any],
    tmp_path: Path,
    email: str,
    password: str,
    message: str,
) -> None:
    account = unique("Nope")
    result = run_cli(
        "create-admin", "--email", email, "--password", password, "--account", account,
        database_url=database_url, data_dir=tmp_path,
    )  # fmt: skip
    assert result.returncode == 2, output(result)
    assert "error" in output(result) and message in output(result)
    assert "Traceback" not in output(result)
    assert counts(db_conn, email, account) == (0, 0)


def test_database_url_points_every_command_at_that_server(
    database_url: str, db_conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    # Not under tmp_path: the server runs as its own system user when we are root, and a pytest
    # starting elsewhere on the machine resets /tmp/pytest-of-<user> to mode 0700 under its feet.
    second_root = Path(tempfile.mkdtemp(prefix="ww-second-"))
    second_dir = second_root / "server"
    second_url = start_embedded(second_dir)
    try:
        app_dir = tmp_path / "app"
        migrated = run_cli("migrate", database_url=second_url, data_dir=app_dir)
        assert migrated.returncode == 0, output(migrated)
        assert HEAD in output(migrated)
        email, account = f"{unique('elsewhere')}@example.com", unique("Elsewhere")
        created = run_cli(
            "create-admin", "--email", email, "--password", "elsewhere-pass", "--account", account,
            database_url=second_url, data_dir=app_dir,
        )  # fmt: skip
        assert created.returncode == 0, output(created)
        with psycopg.connect(second_url, autocommit=True) as second:
            data_directory = second.execute("SHOW data_directory").fetchone()
            assert data_directory is not None and str(second_dir.resolve()) in str(data_directory[0])
            assert second.execute("SELECT version_num FROM alembic_version").fetchone() == (HEAD,)
            assert counts(second, email, account) == (1, 1)
        assert counts(db_conn, email, account) == (0, 0)
        module_dir = db_conn.execute("SHOW data_directory").fetchone()
        assert module_dir is not None and str(second_dir.resolve()) not in str(module_dir[0])
        assert not (app_dir / "pgdata").exists()  # no embedded server was started for the commands
    finally:
        stop_embedded(second_dir)
        shutil.rmtree(second_root, ignore_errors=True)
