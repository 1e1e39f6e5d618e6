"""Wacanda's knowledge-base routes under ``/functions/v1`` (the original plan's paths)."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import psycopg
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncSession
from sse_starlette import EventSourceResponse
from starlette.datastructures import UploadFile

from wacanda import jobs
from wacanda.auth import CallerAccount
from wacanda.context import WacandaContext
from wacanda.errors import InvalidInput, PayloadTooLarge
from wacanda.knowledge import search as searching
from wacanda.knowledge import service
from wacanda.knowledge.schemas import (
    DocumentOut,
    DocumentPage,
    DocumentStatusOut,
    EmbeddingModelIn,
    EmbeddingModelOut,
    KnowledgeBaseList,
    KnowledgeBaseOut,
    PageMeta,
    SearchOut,
    SearchResultOut,
    TextDocumentIn,
    UploadOut,
    UploadsOut,
)

router = APIRouter(prefix="/functions/v1", tags=["knowledge base"])
MAX_FILES = 20


def context_of(request: Request) -> WacandaContext:
    context: WacandaContext = request.app.state.context
    return context


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed after the route returns (rolled back on error)."""
    async with context_of(request).sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


Session = Annotated[AsyncSession, Depends(db_session, scope="function")]  # committed before the answer


def _split(values: list[str] | None) -> list[str]:
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


@router.post(
    "/document-embed",
    status_code=202,
    response_model=UploadsOut,
    summary="Upload documents (multipart `files`/`file` + `knowledge_base`, or JSON text)",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "knowledge_base": {"type": "string", "default": "default"},
                            "tags": {"type": "string", "description": "comma-separated"},
                        },
                    }
                },
                "application/json": {"schema": TextDocumentIn.model_json_schema()},
            }
        }
    },
)
async def document_embed(request: Request, account_id: CallerAccount, session: Session) -> UploadsOut:
    """Each file becomes the next version of its name in the knowledge base and is processed by a
    job (status ``processing`` → ``ready`` | ``error``); an unchanged file is not embedded again."""
    context = context_of(request)
    uploads = await _read_uploads(request, context.settings.max_upload_bytes)
    kb_name, tags, files = uploads
    kb = await service.get_or_create_kb(session, account_id, kb_name, context.embedder)
    results = []
    for name, data in files:
        upload = await service.register_upload(session, kb, name, data, tags)
        if not upload.unchanged:
            await jobs.defer(
                session,
                "wacanda.ingest_document",
                {"document_id": upload.document.id, "account_id": account_id},
            )
        results.append(_upload_out(upload))
    return UploadsOut(documents=results)


def _upload_out(upload: service.Upload) -> UploadOut:
    document = upload.document
    return UploadOut(
        id=document.id,
        name=document.name,
        version=document.version,
        status="unchanged" if upload.unchanged else document.status,
        chunks=document.chunk_count,
        unchanged=upload.unchanged,
        document=DocumentOut.of(document),
    )


async def _read_uploads(
    request: Request, max_bytes: int
) -> tuple[str | None, list[str] | None, list[tuple[str, bytes]]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/json":
        try:
            body = TextDocumentIn.model_validate_json(await request.body())
        except ValueError as exc:
            errors: list[Any] = getattr(exc, "errors", lambda: [])()
            field = ".".join(str(p) for p in errors[0]["loc"]) if errors else "body"
            message = errors[0]["msg"] if errors else "not valid JSON"
            raise InvalidInput(f"{field}: {message}", field=field) from None
        return body.knowledge_base, body.tags, [(body.name, body.text.encode())]
    if content_type not in ("multipart/form-data", "application/x-www-form-urlencoded"):
        raise InvalidInput("send multipart/form-data with files, or JSON with name and text", field="body")
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=50, max_part_size=64 * 1024)
    except Exception as exc:  # starlette's MultiPartException and malformed bodies
        raise InvalidInput(f"the form could not be read: {exc}", field="files") from None
    files: list[tuple[str, bytes]] = []
    for key in ("files", "file"):
        for item in form.getlist(key):
            if not isinstance(item, UploadFile):
                raise InvalidInput(f"{key} must be a file part", field=key)
            data = await item.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise PayloadTooLarge(f"{item.filename}: larger than the {max_bytes:,}-byte limit", field=key)
            files.append((item.filename or "", data))
    if not files:
        raise InvalidInput("attach at least one file as `files`", field="files")
    kb = form.get("knowledge_base") or form.get("kb")
    tags = [str(t) for t in form.getlist("tags")]
    return (str(kb) if kb is not None else None), (_split(tags) if tags else None), files


@router.get("/document-search", response_model=SearchOut, summary="Hybrid search of the knowledge base")
async def document_search(
    request: Request,
    account_id: CallerAccount,
    session: Session,
    q: Annotated[str, Query(description="What the customer asked")],
    kb: Annotated[list[str] | None, Query(description="Knowledge base name(s)")] = None,
    document: Annotated[list[str] | None, Query(description="Document name(s)")] = None,
    tags: Annotated[list[str] | None, Query(description="Every tag required (comma-separated)")] = None,
    limit: Annotated[int, Query(ge=1, le=searching.MAX_LIMIT)] = 5,
) -> SearchOut:
    filters = searching.SearchFilters(
        knowledge_bases=_split(kb),
        documents=[d.strip() for d in document or [] if d.strip()],
        tags=_split(tags),
    )
    context = context_of(request)
    hits = await searching.search(
        session, context.embedder, account_id, q, filters, limit=limit, reranker=context.reranker
    )
    return SearchOut(query=q.strip(), results=[SearchResultOut.of(hit) for hit in hits])


@router.get("/knowledge-bases", response_model=KnowledgeBaseList)
async def list_knowledge_bases(account_id: CallerAccount, session: Session) -> KnowledgeBaseList:
    rows = await service.list_kbs(session, account_id)
    return KnowledgeBaseList(data=[KnowledgeBaseOut.of(kb, n) for kb, n in rows])


@router.get(
    "/knowledge-bases/{kb_id}/embedding-model",
    response_model=EmbeddingModelOut,
    summary="A knowledge base's embedding model and the progress of its latest re-embedding",
)
async def get_embedding_model(account_id: CallerAccount, session: Session, kb_id: int) -> EmbeddingModelOut:
    return EmbeddingModelOut.of(*await service.model_state(session, account_id, kb_id))


@router.post(
    "/knowledge-bases/{kb_id}/embedding-model",
    response_model=EmbeddingModelOut,
    status_code=202,
    summary="Change a knowledge base's embedding model (re-embeds in the background)",
    responses={
        200: {"description": "The knowledge base already uses that model", "model": EmbeddingModelOut},
        409: {"description": "Another re-embedding of this knowledge base is running"},
    },
)
async def change_embedding_model(
    request: Request,
    response: Response,
    account_id: CallerAccount,
    session: Session,
    kb_id: int,
    body: EmbeddingModelIn,
) -> EmbeddingModelOut:
    """A job embeds every live chunk with the new model while search keeps using the old one, then
    switches in one transaction (``knowledge_base.reembed_progress`` / ``.reembedded`` /
    ``.reembed_failed`` on ``/document-events``). Posting the model of a failed re-embedding
    again resumes it."""
    await service.get_kb(session, account_id, kb_id)
    embedder, dims = await service.resolve_model(context_of(request).embedder, body.model, body.dimension)
    change = await service.change_model(session, account_id, kb_id, embedder, dims)
    if change.started and change.reembedding is not None:
        await jobs.defer(
            session, "wacanda.reembed", {"reembedding_id": change.reembedding.id, "account_id": account_id}
        )
    else:
        response.status_code = 200
    return EmbeddingModelOut.of(*await service.model_state(session, account_id, kb_id))


def _cursor(document_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([document_id]).encode()).decode().rstrip("=")


def _before(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        (value,) = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, int) and value > 0:
            return value
    except (ValueError, TypeError):
        pass
    raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")


@router.get("/documents", response_model=DocumentPage, summary="Documents (latest version of each)")
async def list_documents(
    account_id: CallerAccount,
    session: Session,
    kb: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> DocumentPage:
    documents = await service.list_documents(
        session, account_id, kb_name=kb, before_id=_before(cursor), limit=limit + 1
    )
    page = documents[:limit]
    next_cursor = _cursor(page[-1].id) if len(documents) > limit else None
    return DocumentPage(data=[DocumentOut.of(d) for d in page], meta=PageMeta(next_cursor=next_cursor))


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(account_id: CallerAccount, session: Session, document_id: int) -> DocumentOut:
    return DocumentOut.of(await service.get_document(session, account_id, document_id))


@router.get("/documents/{document_id}/versions", response_model=DocumentPage)
async def document_versions(account_id: CallerAccount, session: Session, document_id: int) -> DocumentPage:
    versions = await service.document_versions(session, account_id, document_id)
    return DocumentPage(data=[DocumentOut.of(d) for d in versions], meta=PageMeta())


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(account_id: CallerAccount, session: Session, document_id: int) -> Response:
    await service.delete_document(session, account_id, document_id)
    return Response(status_code=204)


@router.get("/document-status/{document_id}", response_model=DocumentStatusOut)
async def document_status(account_id: CallerAccount, session: Session, document_id: int) -> DocumentStatusOut:
    return DocumentStatusOut.of(await service.get_document(session, account_id, document_id))


@router.get("/document-events", summary="Server-sent events: ingestion progress of an account's documents")
async def document_events(
    request: Request,
    account_id: CallerAccount,
    session: Session,
    knowledge_base: str | None = None,
) -> EventSourceResponse:
    kb_id = None
    if knowledge_base is not None:
        kb_id = (await service.find_kb(session, account_id, service.clean_kb_name(knowledge_base))).id
    await session.close()
    url = context_of(request).database_url
    return EventSourceResponse(_events(request, url, account_id, kb_id), ping=15)


async def _events(
    request: Request, url: str, account_id: int, kb_id: int | None
) -> AsyncIterator[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"LISTEN {service.EVENTS_CHANNEL}")
        yield {"event": "ready", "data": json.dumps({"account_id": account_id, "knowledge_base_id": kb_id})}
        while not await request.is_disconnected():
            try:
                async for note in conn.notifies(timeout=1.0):
                    event = json.loads(note.payload)
                    if event.get("account_id") != account_id:
                        continue
                    if kb_id is not None and event.get("knowledge_base_id") != kb_id:
                        continue
                    yield {"event": event["type"], "data": note.payload}
            except asyncio.CancelledError:
                raise
