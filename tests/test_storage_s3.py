"""Attachments in an S3-compatible bucket, against moto's S3 server: a real HTTP server on
127.0.0.1 that speaks S3's wire format (SigV4, XML errors)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from tests.conversation_support import Db, make_contact, make_inbox, start_conversation
from tests.support import LiveServer, free_port, new_account, start_live_server

BUCKET = "whatwut-attachments"
CREDENTIALS = {"aws_access_key_id": "test-key", "aws_secret_access_key": "test-secret"}


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **CREDENTIALS).create_bucket(
        Bucket=BUCKET
    )
    yield endpoint
    server.stop()


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **CREDENTIALS)


@pytest.fixture(scope="module")
def live(database_url: str, data_root: Path, s3_endpoint: str) -> Iterator[LiveServer]:
    with start_live_server(
        database_url,
        data_root / "app-s3",
        WHATWUT_S3_BUCKET=BUCKET,
        WHATWUT_S3_ENDPOINT_URL=s3_endpoint,
        WHATWUT_S3_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
        WHATWUT_S3_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
        WHATWUT_S3_PREFIX="tenant-files",
    ) as server:
        yield server


def _keys(bucket: Any) -> list[str]:
    listing = bucket.list_objects_v2(Bucket=BUCKET)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_attachments_go_to_the_bucket_and_come_back(
    live: LiveServer, client: httpx.Client, db_conn: Db, bucket: Any
) -> None:
    admin = new_account(live, client)
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/messages")
    payload = b"%PDF-1.4\n% receipt for order 4411\n"
    files = [("attachments[]", ("receipt.pdf", payload, "application/pdf"))]
    before = _keys(bucket)

    created = client.post(path, data={"content": "your receipt"}, files=files, headers=admin.headers)
    assert created.status_code == 201, created.text
    attachment = created.json()["attachments"][0]

    new_keys = [key for key in _keys(bucket) if key not in before]
    assert len(new_keys) == 1 and new_keys[0].startswith("tenant-files/")
    assert bucket.get_object(Bucket=BUCKET, Key=new_keys[0])["Body"].read() == payload
    assert not (live.settings.data_dir / "attachments").exists(), "nothing is written to local disk"

    download = client.get(admin.path(f"attachments/{attachment['id']}"), headers=admin.headers)
    assert download.status_code == 200
    assert download.content == payload


def test_the_same_bytes_are_stored_once(
    live: LiveServer, client: httpx.Client, db_conn: Db, bucket: Any
) -> None:
    admin = new_account(live, client)
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/messages")
    payload = b"the same note, twice"
    before = _keys(bucket)
    for _ in range(2):
        files = [("attachments[]", ("note.txt", payload, "text/plain"))]
        assert client.post(path, data={"content": "x"}, files=files, headers=admin.headers).status_code == 201
    assert len([key for key in _keys(bucket) if key not in before]) == 1


def test_an_object_missing_from_the_bucket_is_a_404_problem(
    live: LiveServer, client: httpx.Client, db_conn: Db, bucket: Any
) -> None:
    admin = new_account(live, client)
    inbox = make_inbox(client, admin, enable_auto_assignment=False)
    conversation = start_conversation(client, admin, inbox, make_contact(db_conn, admin.account_id))
    path = admin.path(f"conversations/{conversation['id']}/messages")
    files = [("attachments[]", ("gone.txt", b"soon deleted from the bucket", "text/plain"))]
    before = _keys(bucket)
    message = client.post(path, data={"content": "x"}, files=files, headers=admin.headers).json()
    attachment_id = message["attachments"][0]["id"]
    for key in _keys(bucket):
        if key not in before:
            bucket.delete_object(Bucket=BUCKET, Key=key)
    response = client.get(admin.path(f"attachments/{attachment_id}"), headers=admin.headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
