"""Bearer tokens: random, shown once, stored as a SHA-256 hash (they carry 256 bits of entropy)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

PREFIXES = {"session": "wws_", "personal": "wwp_", "api_key": "wwk_"}


def new_token(kind: str) -> str:
    return PREFIXES[kind] + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
