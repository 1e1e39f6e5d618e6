"""Where attachment bytes live: a small interface, local disk by default.

Objects are content-addressed (the key is the sha256 of the bytes), so storing the same file
twice costs nothing, a key never changes meaning, and a write that races a rolled-back
transaction leaves at worst an unreferenced file, never a wrong one.

``S3Storage`` keeps the same objects in an S3-compatible bucket when ``WHATWUT_S3_BUCKET`` is
set; nothing else in the code base needs to know which one it talks to.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import anyio

from whatwut.kit.errors import NotFound, PayloadTooLarge
from whatwut.settings import Settings

_KEY = re.compile(r"^[0-9a-f]{64}$")
_UNSAFE_NAME_CHARS = re.compile(r"[^\w.\- ()+,]+", re.UNICODE)


@dataclass(frozen=True)
class StoredObject:
    key: str
    sha256: str
    byte_size: int


class Storage(Protocol):
    """Bytes in, a key out; the key back, the bytes out."""

    max_bytes: int

    async def put(self, data: bytes) -> StoredObject: ...

    async def get(self, key: str) -> bytes: ...


def safe_filename(name: str | None, *, default: str = "file") -> str:
    """A file name that is safe in a path and in a Content-Disposition header."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable() and ch not in "\x00\"'")
    name = _UNSAFE_NAME_CHARS.sub("_", name).strip(" .")
    if not name:
        return default
    if len(name) > 200:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: 200 - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else name[:200]
    return name


class LocalDiskStorage:
    """Files under ``root/ab/cd/<sha256>``; written to a temp file then renamed (never torn)."""

    def __init__(self, root: Path, *, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise NotFound("attachment content not found")
        return self.root / key[:2] / key[2:4] / key

    async def put(self, data: bytes) -> StoredObject:
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"attachment is larger than the limit of {self.max_bytes} bytes", field="attachments"
            )
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        await anyio.to_thread.run_sync(self._write, path, data)
        return StoredObject(key=digest, sha256=digest, byte_size=len(data))

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await anyio.to_thread.run_sync(path.read_bytes)
        except FileNotFoundError as exc:
            raise NotFound("attachment content not found") from exc


class S3Storage:
    """Objects under ``<prefix>/ab/<sha256>`` in an S3-compatible bucket (AWS S3, MinIO, R2, ...).

    boto3 is synchronous; its calls run in worker threads. A ``put`` of bytes already stored is a
    ``HeadObject`` and nothing more.
    """

    def __init__(self, client: Any, bucket: str, *, prefix: str, max_bytes: int) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.max_bytes = max_bytes

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Storage:
        import boto3  # imported lazily: only deployments that use S3 pay for it
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=(
                settings.s3_secret_access_key.get_secret_value() if settings.s3_secret_access_key else None
            ),
            config=Config(
                retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30
            ),
        )
        assert settings.s3_bucket is not None
        return cls(client, settings.s3_bucket, prefix=settings.s3_prefix, max_bytes=settings.max_upload_bytes)

    def _object_key(self, key: str) -> str:
        if not _KEY.match(key):
            raise NotFound("attachment content not found")
        return f"{self.prefix}/{key[:2]}/{key}" if self.prefix else f"{key[:2]}/{key}"

    async def put(self, data: bytes) -> StoredObject:
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"attachment is larger than the limit of {self.max_bytes} bytes", field="attachments"
            )
        digest = hashlib.sha256(data).hexdigest()
        await anyio.to_thread.run_sync(self._put, self._object_key(digest), data)
        return StoredObject(key=digest, sha256=digest, byte_size=len(data))

    def _put(self, object_key: str, data: bytes) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.head_object(Bucket=self.bucket, Key=object_key)
            return
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise
        self._client.put_object(Bucket=self.bucket, Key=object_key, Body=data)

    async def get(self, key: str) -> bytes:
        return await anyio.to_thread.run_sync(self._get, self._object_key(key))

    def _get(self, object_key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = self._client.get_object(Bucket=self.bucket, Key=object_key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise NotFound("attachment content not found") from exc
            raise
        body: bytes = response["Body"].read()
        return body


_s3_storages: dict[tuple[str | None, str, str], S3Storage] = {}


def storage_for(settings: Settings) -> Storage:
    """The configured storage: S3 when ``WHATWUT_S3_BUCKET`` is set, else the local data directory."""
    if settings.s3_bucket:
        cache_key = (settings.s3_endpoint_url, settings.s3_bucket, settings.s3_prefix)
        if cache_key not in _s3_storages:  # boto3 clients are costly to build and thread-safe
            _s3_storages[cache_key] = S3Storage.from_settings(settings)
        return _s3_storages[cache_key]
    return LocalDiskStorage(settings.data_dir / "attachments", max_bytes=settings.max_upload_bytes)
