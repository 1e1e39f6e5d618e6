"""Where attachment bytes live: a small interface, local disk by default.

Objects are content-addressed (the key is the sha256 of the bytes), so storing the same file
twice costs nothing, a key never changes meaning, and a write that races a rolled-back
transaction leaves at worst an unreferenced file, never a wrong one.

An S3-compatible implementation fits the same Protocol: ``put`` becomes a ``PutObject`` under
``<prefix>/<sha256>`` (skipped when ``HeadObject`` finds it), ``get`` a ``GetObject``; nothing
else in the code base needs to know which one it talks to.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

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


def storage_for(settings: Settings) -> Storage:
    """The configured storage (local disk under the data directory until S3 is configured)."""
    return LocalDiskStorage(settings.data_dir / "attachments", max_bytes=settings.max_upload_bytes)
