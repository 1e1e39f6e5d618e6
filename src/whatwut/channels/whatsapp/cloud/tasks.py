"""Jobs of the inbound Cloud API: processing accepted webhook events, fetching media."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import structlog

from whatwut.channels.whatsapp import service as whatsapp
from whatwut.channels.whatsapp.cloud import service
from whatwut.context import get_current
from whatwut.conversations import service as conversations
from whatwut.inboxes import service as inboxes
from whatwut.jobs.registry import Backoff, job, job_transaction
from whatwut.kit.storage import storage_for

log = structlog.get_logger(__name__)

#: Media kinds as attachments know them.
_FILE_TYPES = {"image": "image", "sticker": "image", "audio": "audio", "video": "video", "document": "file"}
_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "audio/aac": "aac",
    "audio/amr": "amr",
    "video/mp4": "mp4",
    "video/3gpp": "3gp",
    "application/pdf": "pdf",
}
DOWNLOAD_TIMEOUT_SECONDS = 60.0


@job(service.PROCESS_TASK, retry=Backoff(max_attempts=10, base_seconds=1.0))
async def process_inbound(account_id: int, inbox_id: int, event_ids: list[int]) -> None:
    """Turn accepted webhook events into messages, in the order they arrived.

    The group commit hands one job all the events of a batch, so the queue's own cost (fetch,
    finish, its events) is paid once per batch, not per webhook. Each event is applied in its own
    short transaction: one event's locks (its customer, conversation, the account's conversation
    numbers) are never held while another is applied, so concurrent jobs do not deadlock. An event
    that fails does not hold the others back: they are processed, then the job raises so
    procrastinate retries it (events already done are skipped).
    """
    failed: list[int] = []
    batch = service.Batch()
    for event_id in event_ids:
        try:
            async with job_transaction() as session:
                await service.process_in_transaction(session, int(event_id), batch)
        except Exception:
            log.exception("whatsapp.event_failed", event_id=event_id, inbox_id=inbox_id)
            failed.append(int(event_id))
    if failed:
        raise RuntimeError(f"{len(failed)} WhatsApp event(s) failed: {failed[:10]}")


class PermanentMediaError(Exception):
    """The media cannot be fetched, ever (expired, deleted, too large): recorded on the message."""


def _check(response: httpx.Response, what: str) -> None:
    if response.status_code == 429 or response.status_code >= 500:
        response.raise_for_status()  # retried by the job's backoff
    if response.status_code >= 400:
        raise PermanentMediaError(f"{what}: HTTP {response.status_code} {response.text[:300]}")


async def _download(base_url: str, token: str, media_id: str, max_bytes: int) -> tuple[dict[str, Any], bytes]:
    """GET the media id (a short-lived URL and the mime type), then the bytes, with the token."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(timeout=DOWNLOAD_TIMEOUT_SECONDS, headers=headers) as client:
        info_response = await client.get(f"{base_url}/{media_id}")
        _check(info_response, "media lookup")
        info = info_response.json()
        url = info.get("url") if isinstance(info, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise PermanentMediaError("media lookup gave no download URL")
        declared = info.get("file_size")
        if isinstance(declared, int | str) and str(declared).isdigit() and int(declared) > max_bytes:
            raise PermanentMediaError(f"media is larger than the limit of {max_bytes} bytes")
        chunks: list[bytes] = []
        size = 0
        async with client.stream("GET", url) as response:
            if response.status_code >= 400:
                await response.aread()
            _check(response, "media download")
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise PermanentMediaError(f"media is larger than the limit of {max_bytes} bytes")
                chunks.append(chunk)
        if not info.get("mime_type"):
            info["mime_type"] = response.headers.get("content-type", "application/octet-stream")
        return info, b"".join(chunks)


@job(service.MEDIA_TASK, retry=Backoff(max_attempts=8, base_seconds=2.0))
async def fetch_media(account_id: int, inbox_id: int, message_id: int) -> None:
    """Download an inbound message's media from Meta and attach it (once)."""
    context = get_current()
    async with job_transaction() as session:
        record = await whatsapp.get_message(session, message_id)
        if record is None or record.media_id is None or record.media_status == "stored":
            return
        wamid = record.whatsapp_message_id
        message = await conversations.find_message_by_source(session, account_id, inbox_id, wamid)
        if message is None or message.id != message_id:
            return
        inbox = await inboxes.get_inbox(session, account_id, inbox_id)
        secrets = inboxes.channel_secrets(context, inbox)
        media_id, media_type = record.media_id, record.media_type or "document"
        expected_sha = record.media_sha256
        filename = (message.content_attributes or {}).get("filename")
    settings = context.settings
    base_url = str(inbox.settings.get("graph_url") or settings.whatsapp_graph_url).rstrip("/")
    token = secrets.get("access_token") or (
        settings.whatsapp_cloud_api_token.get_secret_value() if settings.whatsapp_cloud_api_token else ""
    )
    storage = storage_for(settings)
    try:
        info, data = await _download(base_url, str(token), media_id, storage.max_bytes)
    except PermanentMediaError as exc:
        log.warning("whatsapp.media_failed", message_id=message_id, media_id=media_id, error=str(exc))
        async with job_transaction() as session:
            record = await whatsapp.get_message(session, message_id, for_update=True)
            message = await conversations.find_message_by_source(
                session, account_id, inbox_id, wamid, for_update=True
            )
            if record is None or message is None or record.media_status == "stored":
                return
            record.media_status = "failed"
            attributes = {**(message.content_attributes or {}), "media_error": str(exc)[:500]}
            await conversations.amend_message(session, message, content_attributes=attributes)
        return
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha and expected_sha.lower() != digest and info.get("sha256") not in (None, digest):
        log.warning("whatsapp.media_checksum_mismatch", message_id=message_id, media_id=media_id)
    stored = await storage.put(data)
    mime = str(info.get("mime_type") or "application/octet-stream").split(";", 1)[0].strip().lower()
    name = str(filename) if filename else f"{media_type}.{_EXTENSIONS.get(mime, 'bin')}"
    async with job_transaction() as session:
        record = await whatsapp.get_message(session, message_id, for_update=True)
        message = await conversations.find_message_by_source(
            session, account_id, inbox_id, wamid, for_update=True
        )
        if record is None or message is None or record.media_status == "stored":
            return
        record.media_status = "stored"
        record.media_url = str(info.get("url"))[:2000]
        record.media_mime_type = mime[:255]
        attachment = conversations.IncomingAttachment(
            file_type=_FILE_TYPES.get(media_type, "file"),
            mime_type=mime,
            file_name=name,
            byte_size=stored.byte_size,
            storage_key=stored.key,
            sha256=stored.sha256,
        )
        await conversations.amend_message(session, message, attachments=[attachment])
    log.info("whatsapp.media_stored", message_id=message_id, bytes=stored.byte_size, mime_type=mime)
