"""Typed settings, read once at start-up from the environment (all optional)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import platformdirs
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("whatwut", appauthor=False))


class Settings(BaseSettings):
    """Everything WhatWut reads from its environment; the embedded default needs none of it."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    database_url: str | None = Field(default=None, alias="DATABASE_URL")
    data_dir: Path = Field(default_factory=default_data_dir, alias="WHATWUT_DATA_DIR")
    secret_key: SecretStr | None = Field(default=None, alias="WHATWUT_SECRET_KEY")
    api_url: str | None = Field(default=None, alias="WHATWUT_API_URL")
    api_key: SecretStr | None = Field(default=None, alias="WHATWUT_API_KEY")
    whatsapp_cloud_api_token: SecretStr | None = Field(default=None, alias="WHATSAPP_CLOUD_API_TOKEN")
    whatsapp_webhook_verify_token: SecretStr | None = Field(
        default=None, alias="WHATSAPP_WEBHOOK_VERIFY_TOKEN"
    )
    whatsapp_app_secret: SecretStr | None = Field(default=None, alias="WHATSAPP_APP_SECRET")
    whatsapp_graph_url: str = Field(default="https://graph.facebook.com/v23.0", alias="WHATSAPP_GRAPH_URL")
    #: Graph API calls give up after this long (and the send is retried later).
    whatsapp_graph_timeout_seconds: float = Field(default=20.0, gt=0, alias="WHATSAPP_GRAPH_TIMEOUT_SECONDS")
    #: Backoff of a reply WhatsApp throttled or could not take: this many seconds, doubling per attempt.
    whatsapp_send_retry_seconds: float = Field(default=2.0, gt=0, alias="WHATSAPP_SEND_RETRY_SECONDS")
    #: Attempts (the first included) before a reply that keeps failing is marked ``failed``.
    whatsapp_send_max_attempts: int = Field(default=8, ge=1, le=50, alias="WHATSAPP_SEND_MAX_ATTEMPTS")
    openai_api_key: SecretStr | None = Field(default=None, alias="OPENAI_API_KEY")
    openai_base_url: str | None = Field(default=None, alias="OPENAI_BASE_URL")

    max_body_bytes: int = Field(default=2 * 1024 * 1024, alias="WHATWUT_MAX_BODY_BYTES")
    max_upload_bytes: int = Field(default=25 * 1024 * 1024, alias="WHATWUT_MAX_UPLOAD_BYTES")
    session_ttl_hours: int = Field(default=24 * 14, alias="WHATWUT_SESSION_TTL_HOURS")
    #: Failed sign-ins allowed per email (and, more loosely, per client address) in the window.
    login_max_failures: int = Field(default=10, ge=1, alias="WHATWUT_LOGIN_MAX_FAILURES")
    login_max_failures_per_address: int = Field(
        default=100, ge=1, alias="WHATWUT_LOGIN_MAX_FAILURES_PER_ADDRESS"
    )
    login_lockout_minutes: int = Field(default=15, ge=1, alias="WHATWUT_LOGIN_LOCKOUT_MINUTES")
    cookie_secure: bool = Field(default=False, alias="WHATWUT_COOKIE_SECURE")
    run_worker: bool = Field(default=True, alias="WHATWUT_RUN_WORKER")
    #: Jobs the in-process worker runs at once (``whatwut worker --concurrency`` for standalone ones).
    worker_concurrency: int = Field(default=4, ge=1, alias="WHATWUT_WORKER_CONCURRENCY")
    #: Longest wait before a worker looks for due jobs; new jobs wake it at once (LISTEN/NOTIFY),
    #: retries scheduled for later are found by this poll.
    worker_poll_seconds: float = Field(default=5.0, gt=0, alias="WHATWUT_WORKER_POLL_SECONDS")
    #: Comma-separated extra modules with ``@job`` functions (plugins, tests), imported by workers.
    extra_task_modules: str = Field(default="", alias="WHATWUT_EXTRA_TASK_MODULES")
    log_level: str = Field(default="INFO", alias="WHATWUT_LOG_LEVEL")

    #: Attachments go to an S3-compatible bucket when this is set (AWS, MinIO, R2, ...).
    s3_bucket: str | None = Field(default=None, alias="WHATWUT_S3_BUCKET")
    s3_endpoint_url: str | None = Field(default=None, alias="WHATWUT_S3_ENDPOINT_URL")
    s3_region: str = Field(default="us-east-1", alias="WHATWUT_S3_REGION")
    s3_access_key_id: str | None = Field(default=None, alias="WHATWUT_S3_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr | None = Field(default=None, alias="WHATWUT_S3_SECRET_ACCESS_KEY")
    s3_prefix: str = Field(default="attachments", alias="WHATWUT_S3_PREFIX")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
