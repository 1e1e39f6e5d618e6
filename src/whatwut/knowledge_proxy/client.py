"""A small HTTP client for Wacanda's knowledge-base API.

Where Wacanda is (``WACANDA_URL``) and its service key (``WACANDA_API_KEY``, else the key file
both share in ``WHATWUT_DATA_DIR``) are read per call: ``whatwut serve`` sets them when it starts
Wacanda, after the app's settings were read.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from whatwut.settings import Settings

API_KEY_FILE = "wacanda-api-key"
DEFAULT_URL = "http://127.0.0.1:3001"
ACCOUNT_HEADER = "X-Account-Id"
TIMEOUT = httpx.Timeout(120.0, connect=5.0)


class WacandaUnavailable(Exception):
    """Wacanda did not answer (not started, or down)."""


@dataclass(frozen=True)
class WacandaResponse:
    status_code: int
    content: bytes
    content_type: str


def load_or_create_key(path: Path) -> str:
    """The service key stored 0600 at ``path`` (created once; concurrent starts agree)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it to create a new key") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def wacanda_url() -> str:
    return os.environ.get("WACANDA_URL", DEFAULT_URL).rstrip("/")


def service_key(settings: Settings) -> str:
    return os.environ.get("WACANDA_API_KEY") or load_or_create_key(settings.data_dir / API_KEY_FILE)


async def forward(
    settings: Settings,
    method: str,
    path: str,
    account_id: int,
    *,
    params: Sequence[tuple[str, str]] | None = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> WacandaResponse:
    """Call Wacanda on behalf of ``account_id`` and hand back its answer as is."""
    request_headers = {
        "Authorization": f"Bearer {service_key(settings)}",
        ACCOUNT_HEADER: str(account_id),
        **(headers or {}),
    }
    try:
        async with httpx.AsyncClient(base_url=wacanda_url(), timeout=TIMEOUT) as client:
            response = await client.request(
                method, path, params=list(params or []), content=content, headers=request_headers
            )
    except httpx.HTTPError as exc:
        raise WacandaUnavailable(f"{type(exc).__name__} at {wacanda_url()}") from exc
    return WacandaResponse(
        response.status_code, response.content, response.headers.get("content-type", "application/json")
    )
