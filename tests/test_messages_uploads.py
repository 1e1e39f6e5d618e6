"""Upload limits on a server configured with a small limit, and the local attachment storage."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conversation_support import Db, count, make_contact, make_inbox, start_conversation
from tests.support import LiveServer, assert_problem, new_account, start_live_server
from whatwut.kit.errors import NotFound, PayloadTooLarge
from whatwut.kit.storage import LocalDiskStorage, safe_filename

LIMIT = 4096


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path) -> Iterator[LiveServer]:
    with start_live_server(
        database_url, data_root / "app-uploads", WHATWUT_MAX_UPLOAD_BYTES=str(LIMIT)
    ) as server:
        yield server


def test_oversized_upload_is_413_and_nothing_is_written(
    live: LiveServer, client: httpx.Client, db_conn: Db
) -> None:
    admin = new_account(live, client)
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/messages")
    big = [("attachments[]", ("big.txt", b"a" * (LIMIT + 1), "text/plain"))]
    assert_problem(client.post(path, data={"content": "x"}, files=big, headers=admin.headers), 413)
    assert count(db_conn, "SELECT count(*) FROM messages WHERE conversation_id = %s", conversation["id"]) == 0
    small = [("attachments[]", ("small.txt", b"a" * 100, "text/plain"))]
    assert client.post(path, data={"content": "x"}, files=small, headers=admin.headers).status_code == 201
    stored = list((live.settings.data_dir / "attachments").rglob("*"))
    assert len([p for p in stored if p.is_file()]) == 1


def test_storage_is_content_addressed(tmp_path: Path) -> None:
    storage = LocalDiskStorage(tmp_path, max_bytes=10)

    async def scenario() -> None:
        first = await storage.put(b"same")
        second = await storage.put(b"same")
        assert first == second and first.byte_size == 4
        assert await storage.get(first.key) == b"same"
        assert len([p for p in tmp_path.rglob("*") if p.is_file()]) == 1
        with pytest.raises(PayloadTooLarge):
            await storage.put(b"x" * 11)
        for key in ("../../etc/passwd", "0" * 64, "ABC"):
            with pytest.raises(NotFound):
                await storage.get(key)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\me\\photo.png", "photo.png"),
        ('evil"; name=x.png', "evil_ name_x.png"),
        ("\x00\n", "file"),
        ("", "file"),
        (None, "file"),
        ("..", "file"),
        ("fotó ação.jpg", "fotó ação.jpg"),
    ],
)
def test_safe_filename(given: str | None, expected: str) -> None:
    assert safe_filename(given) == expected


def test_long_filenames_keep_their_extension() -> None:
    name = safe_filename("a" * 500 + ".pdf")
    assert len(name) == 200 and name.endswith(".pdf")
