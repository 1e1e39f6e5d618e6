"""Secrets at rest (channel tokens, app secrets, device credentials) encrypted with Fernet.

The key comes from ``WHATWUT_SECRET_KEY`` or, for the embedded default, a key file created
once in the data directory (mode 0600).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken


def load_or_create_secret(secret: str | None, data_dir: Path) -> str:
    if secret:
        return secret
    path = data_dir / "secret.key"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = base64.urlsafe_b64encode(os.urandom(32)).decode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


class SecretBox:
    """Encrypts small JSON documents of secrets; a wrong key or tampered value fails loudly."""

    def __init__(self, secret: str) -> None:
        key = base64.urlsafe_b64encode(hashlib.sha256(b"whatwut-secrets:" + secret.encode()).digest())
        self._fernet = Fernet(key)

    def seal(self, values: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(values).encode()).decode()

    def open(self, sealed: str | None) -> dict[str, Any]:
        if not sealed:
            return {}
        try:
            opened: dict[str, Any] = json.loads(self._fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise ValueError("stored secrets cannot be decrypted with this WHATWUT_SECRET_KEY") from exc
        return opened
