"""The demo's knowledge base: a small phone store's help pages, ingested into the Wacanda that
``whatwut serve --demo`` starts, so the sandbox's questions get answers with sources.

Uploading the same files again changes nothing (Wacanda keeps a document's version when its
content is unchanged), so every ``--demo`` start runs this safely.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import structlog

from whatwut.knowledge_proxy.client import ACCOUNT_HEADER, service_key, wacanda_url
from whatwut.settings import Settings

log = structlog.get_logger(__name__)
DEMO_KNOWLEDGE_BASE = "demo"
DOCUMENTS_DIR = Path(__file__).with_name("knowledge")


def demo_documents() -> list[Path]:
    return sorted(DOCUMENTS_DIR.glob("*.md"))


async def ingest_demo_knowledge(
    settings: Settings, account_id: int, *, wait_seconds: float = 180
) -> list[Any]:
    """Wait for Wacanda to be up, then upload the demo documents for the demo account."""
    base = wacanda_url()
    deadline = time.monotonic() + wait_seconds
    async with httpx.AsyncClient(base_url=base, timeout=httpx.Timeout(120.0, connect=5.0)) as http:
        while True:
            try:
                if (await http.get("/health")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                log.warning("demo.knowledge_skipped", reason="wacanda did not start", url=base)
                return []
            await asyncio.sleep(0.5)
        files = [("files", (path.name, path.read_bytes(), "text/markdown")) for path in demo_documents()]
        response = await http.post(
            "/functions/v1/document-embed",
            files=files,
            data={"knowledge_base": DEMO_KNOWLEDGE_BASE},
            headers={"Authorization": f"Bearer {service_key(settings)}", ACCOUNT_HEADER: str(account_id)},
        )
    if response.status_code != 202:
        log.warning("demo.knowledge_failed", status=response.status_code, body=response.text[:300])
        return []
    documents: list[Any] = response.json().get("documents", [])
    log.info("demo.knowledge_ingested", documents=len(documents))
    return documents
