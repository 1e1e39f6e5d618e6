"""HTTP routes of conversations, messages and attachments (thin: parse, call the service, shape).

Paths follow Chatwoot's under ``/api/v1/accounts/{account_id}``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from whatwut.accounts.auth import AccountMember
from whatwut.conversations import service
from whatwut.conversations.schemas import (
    MAX_ID,
    AssignConversation,
    AssigneeType,
    ConversationCounts,
    ConversationOut,
    CreateConversation,
    CreateMessage,
    LabelsOut,
    MessageOut,
    ReadState,
    SearchHit,
    SetLabels,
    StatusFilter,
    ToggleStatus,
    UpdateConversation,
    clean_label,
)
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import InvalidInput
from whatwut.kit.schemas import Page, PageMeta
from whatwut.kit.storage import safe_filename, storage_for
from whatwut.kit.text import storable_text

router = APIRouter(prefix="/api/v1/accounts/{account_id}", tags=["conversations"])

ConversationId = Annotated[int, Path(ge=1, le=MAX_ID)]
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
MULTIPART_FIELDS = frozenset({"content", "private", "content_type", "content_attributes"})
ATTACHMENT_FIELDS = frozenset({"attachments[]", "attachments"})


async def current_agent(member: AccountMember) -> service.Agent:
    return service.Agent(
        account_id=member.account_id,
        user_id=member.user.id,
        name=member.user.name,
        role=member.role,
        is_bot=member.user.is_bot,
    )


CurrentAgent = Annotated[service.Agent, Depends(current_agent)]


def _text_param(value: str | None, field: str) -> str | None:
    if value is None:
        return None
    try:
        value = storable_text(value).strip()
    except ValueError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field) from None
    return value or None


def conversation_filters(
    status: StatusFilter = "open",
    assignee_type: AssigneeType = "all",
    inbox_id: OptionalId = None,
    team_id: OptionalId = None,
    labels: Annotated[
        str | None, Query(max_length=2000, description="comma-separated; all must match")
    ] = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
) -> service.ConversationFilters:
    titles: list[str] = []
    for raw in (_text_param(labels, "labels") or "").split(","):
        if raw.strip():
            try:
                titles.append(clean_label(raw))
            except ValueError as exc:
                raise InvalidInput(f"labels: {exc}", field="labels") from None
    return service.ConversationFilters(
        status=status,
        assignee_type=assignee_type,
        inbox_id=inbox_id,
        team_id=team_id,
        labels=tuple(dict.fromkeys(titles)),
        q=_text_param(q, "q"),
    )


Filters = Annotated[service.ConversationFilters, Depends(conversation_filters)]
Cursor = Annotated[str | None, Query(max_length=512)]


@router.get("/conversations", summary="List conversations (filters, cursor pagination)")
async def list_conversations(
    agent: CurrentAgent,
    session: DbSession,
    filters: Filters,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[ConversationOut]:
    page, next_cursor = await service.list_conversations(session, agent, filters, cursor=cursor, limit=limit)
    return Page(data=page, meta=PageMeta(next_cursor=next_cursor))


@router.get("/conversations/meta", summary="Counts per assignee tab (mine, unassigned, all)")
async def conversation_counts(
    agent: CurrentAgent, session: DbSession, filters: Filters
) -> ConversationCounts:
    return await service.conversation_counts(session, agent, filters)


@router.get("/conversations/search", summary="Full-text search over messages")
async def search_messages(
    agent: CurrentAgent,
    session: DbSession,
    q: Annotated[str, Query(max_length=500)],
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 25,
) -> Page[SearchHit]:
    query = _text_param(q, "q")
    if not query:
        raise InvalidInput("q must not be empty", field="q")
    hits, next_cursor = await service.search_messages(session, agent, query, cursor=cursor, limit=limit)
    return Page(data=hits, meta=PageMeta(next_cursor=next_cursor))


@router.post("/conversations", status_code=201, summary="Start a conversation with a contact")
async def create_conversation(
    body: CreateConversation, agent: CurrentAgent, session: DbSession
) -> ConversationOut:
    conversation = await service.create_conversation(session, agent, body)
    return await service.conversation_view(session, agent, conversation.id)


@router.get("/conversations/{conversation_id}", summary="One conversation")
async def get_conversation(
    conversation_id: ConversationId, agent: CurrentAgent, session: DbSession
) -> ConversationOut:
    return await service.conversation_view(session, agent, conversation_id)


@router.patch("/conversations/{conversation_id}", summary="Change priority, labels, team or attributes")
async def update_conversation(
    conversation_id: ConversationId, body: UpdateConversation, agent: CurrentAgent, session: DbSession
) -> ConversationOut:
    await service.update_conversation(session, agent, conversation_id, body)
    return await service.conversation_view(session, agent, conversation_id)


@router.post("/conversations/{conversation_id}/toggle_status", summary="Open, pend, resolve or snooze")
async def toggle_status(
    conversation_id: ConversationId, body: ToggleStatus, agent: CurrentAgent, session: DbSession
) -> ConversationOut:
    await service.change_status(session, agent, conversation_id, body.status, body.snoozed_until)
    return await service.conversation_view(session, agent, conversation_id)


@router.post("/conversations/{conversation_id}/assignments", summary="Assign (or unassign) an agent/team")
async def assign(
    conversation_id: ConversationId, body: AssignConversation, agent: CurrentAgent, session: DbSession
) -> ConversationOut:
    sent = body.model_fields_set
    await service.assign(
        session,
        agent,
        conversation_id,
        assignee_id=body.assignee_id,
        change_assignee="assignee_id" in sent,
        team_id=body.team_id,
        change_team="team_id" in sent,
    )
    return await service.conversation_view(session, agent, conversation_id)


@router.get("/conversations/{conversation_id}/labels", summary="The conversation's labels")
async def get_labels(conversation_id: ConversationId, agent: CurrentAgent, session: DbSession) -> LabelsOut:
    conversation = await service.get_conversation(session, agent, conversation_id)
    return LabelsOut(labels=list(conversation.labels))


@router.post("/conversations/{conversation_id}/labels", summary="Replace the conversation's labels")
async def set_labels(
    conversation_id: ConversationId, body: SetLabels, agent: CurrentAgent, session: DbSession
) -> LabelsOut:
    return LabelsOut(
        labels=await service.set_conversation_labels(session, agent, conversation_id, body.labels)
    )


@router.post("/conversations/{conversation_id}/update_last_seen", summary="Mark as read for me")
async def update_last_seen(
    conversation_id: ConversationId, agent: CurrentAgent, session: DbSession
) -> ReadState:
    return await service.mark_read(session, agent, conversation_id)


@router.get("/conversations/{conversation_id}/messages", summary="Messages, newest page first")
async def list_messages(
    conversation_id: ConversationId,
    agent: CurrentAgent,
    session: DbSession,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID, description="a message id")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Page[MessageOut]:
    messages, next_cursor = await service.list_messages(
        session, agent, conversation_id, before=before, limit=limit
    )
    return Page(data=messages, meta=PageMeta(next_cursor=next_cursor))


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError(exc.errors(include_url=False, include_context=False))


async def _multipart(request: Request) -> tuple[CreateMessage, list[service.Upload]]:
    form = await request.form(max_files=service.MAX_ATTACHMENTS + 1, max_fields=20)
    fields: dict[str, Any] = {}
    uploads: list[service.Upload] = []
    for key, value in form.multi_items():
        if key in ATTACHMENT_FIELDS:
            if not isinstance(value, UploadFile):
                raise InvalidInput("attachments must be files", field="attachments")
            uploads.append(
                service.Upload(
                    file_name=value.filename,
                    mime_type=value.content_type or "application/octet-stream",
                    data=await value.read(),
                )
            )
        elif key in MULTIPART_FIELDS and isinstance(value, str):
            fields[key] = value
        else:
            raise InvalidInput(f"unexpected form field {key!r}", field=key[:64])
    if "content_attributes" in fields:
        try:
            fields["content_attributes"] = json.loads(fields["content_attributes"])
        except ValueError:
            raise InvalidInput(
                "content_attributes must be a JSON object", field="content_attributes"
            ) from None
    try:
        return CreateMessage.model_validate(fields), uploads
    except ValidationError as exc:
        raise _invalid(exc) from None


_MESSAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": CreateMessage.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "content": {"type": "string"},
                        "private": {"type": "boolean"},
                        "content_type": {"type": "string"},
                        "content_attributes": {"type": "string", "description": "a JSON object"},
                        "attachments[]": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                }
            },
        },
    }
}


@router.post(
    "/conversations/{conversation_id}/messages",
    status_code=201,
    summary="Send a reply or a private note (JSON, or multipart with attachments[])",
    openapi_extra=_MESSAGE_BODY,
)
async def create_message(
    conversation_id: ConversationId,
    request: Request,
    agent: CurrentAgent,
    session: DbSession,
    context: Context,
) -> MessageOut:
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        body, uploads = await _multipart(request)
    else:
        try:
            body = CreateMessage.model_validate_json(await request.body())
        except ValidationError as exc:
            raise _invalid(exc) from None
        uploads = []
    return await service.create_message(
        session, agent, conversation_id, body, uploads, storage=storage_for(context.settings)
    )


@router.get("/attachments/{attachment_id}", summary="Download an attachment", response_class=Response)
async def download_attachment(
    attachment_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    agent: CurrentAgent,
    session: DbSession,
    context: Context,
) -> Response:
    attachment = await service.get_attachment(session, agent, attachment_id)
    assert attachment.storage_key is not None
    data = await storage_for(context.settings).get(attachment.storage_key)
    name = safe_filename(attachment.file_name)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    return Response(
        content=data,
        media_type=attachment.mime_type,
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=3600",
        },
    )
