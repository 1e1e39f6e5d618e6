"""Pages for WhatsApp inboxes: the inbox settings (create, check connection, sync templates) and the
template picker agents use when the 24-hour window is closed.

They call the same services as the API, as the signed-in member; a failure is shown on the page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from whatwut.bots import service as bots
from whatwut.channels.whatsapp import connection
from whatwut.channels.whatsapp import templates as wa_templates
from whatwut.channels.whatsapp.graph import GraphError, describe
from whatwut.conversations import service as conversations
from whatwut.conversations.schemas import CreateMessage
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.schemas import ChannelSpec, InboxCreate
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import NotFound, WhatWutError
from whatwut.web import data
from whatwut.web.pages import PageRoute
from whatwut.web.security import CSRF_FIELD, CurrentMember, PageMember, PageNotFound
from whatwut.web.templating import templates

router = APIRouter(include_in_schema=False, route_class=PageRoute)

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
SETTINGS = "/app/accounts/{account_id}/settings/inboxes"
PICKER = "/app/accounts/{account_id}/conversations/{conversation_id}/whatsapp/templates"
CLOUD_FIELDS = (
    "phone_number",
    "phone_number_id",
    "business_account_id",
    "access_token",
    "app_secret",
    "verify_token",
)


def _admin(member: PageMember) -> None:
    if not member.is_admin:
        raise PageNotFound


async def _settings_page(
    request: Request,
    session: DbSession,
    member: PageMember,
    *,
    notice: str | None = None,
    error: str | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    rows, _next = await inboxes.list_inboxes(
        session, member.account_id, user_id=member.user.id, role=member.role, limit=100
    )
    base = f"/app/accounts/{member.account_id}"
    ai_agents = await bots.list_agents(session, member.account_id)
    inbox_agent = {
        inbox_id: view.id
        for view in await bots.agent_views(session, ai_agents)
        for inbox_id in view.inbox_ids
    }
    return templates.TemplateResponse(
        request,
        "whatsapp_settings.html",
        {
            "member": member,
            "base": base,
            "inboxes": [(inbox, inboxes.channel_view(inbox)) for inbox in rows],
            "ai_agents": ai_agents,
            "inbox_agent": inbox_agent,
            "notice": notice,
            "error": error,
            "form": form or {},
            "csrf_field": CSRF_FIELD,
            "form_token": member.page.form_token,
        },
        status_code=status,
    )


@router.get(SETTINGS)
async def settings_page(request: Request, session: DbSession, member: CurrentMember) -> HTMLResponse:
    _admin(member)
    return await _settings_page(request, session, member)


@router.post(SETTINGS)
async def create_inbox(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    context: Context,
    name: Annotated[str, Form(max_length=255)] = "",
    channel_type: Annotated[str, Form(max_length=32)] = "api",
    phone_number: Annotated[str, Form(max_length=64)] = "",
    phone_number_id: Annotated[str, Form(max_length=64)] = "",
    business_account_id: Annotated[str, Form(max_length=64)] = "",
    access_token: Annotated[str, Form(max_length=4096)] = "",
    app_secret: Annotated[str, Form(max_length=4096)] = "",
    verify_token: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """The same inbox ``POST /inboxes`` creates; secrets are sealed and never shown again."""
    _admin(member)
    values = {
        "phone_number": phone_number,
        "phone_number_id": phone_number_id,
        "business_account_id": business_account_id,
        "access_token": access_token,
        "app_secret": app_secret,
        "verify_token": verify_token,
    }
    channel: dict[str, Any] = {"type": channel_type}
    if channel_type == "whatsapp_cloud":
        channel |= {k: v.strip() for k, v in values.items()}
    kept = {"name": name, "channel_type": channel_type} | {
        k: v for k, v in values.items() if k not in ("access_token", "app_secret", "verify_token")
    }
    try:
        body = InboxCreate(name=name.strip(), channel=ChannelSpec.model_validate(channel))
        async with session.begin_nested():
            inbox = await inboxes.create_inbox(
                session, context, member.account_id, body, actor_user_id=member.user.id
            )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "form"
        return await _settings_page(
            request, session, member, error=f"{where}: {first['msg']}", form=kept, status=422
        )
    except WhatWutError as exc:
        return await _settings_page(
            request, session, member, error=exc.detail, form=kept, status=exc.status_code
        )
    return await _settings_page(request, session, member, notice=f"Inbox “{inbox.name}” created.")


@router.post(SETTINGS + "/{inbox_id}/check")
async def check_connection(
    request: Request, session: DbSession, member: CurrentMember, context: Context, inbox_id: Id
) -> Response:
    _admin(member)
    try:
        result = await connection.check_connection(
            session, context, member.account_id, inbox_id, actor_user_id=member.user.id
        )
    except NotFound:
        raise PageNotFound from None
    except WhatWutError as exc:
        return await _settings_page(request, session, member, error=exc.detail, status=exc.status_code)
    if result.ok:
        phone = result.phone
        label = phone.get("display_phone_number") or "the number"
        verified = f" ({phone['verified_name']})" if phone.get("verified_name") else ""
        return await _settings_page(request, session, member, notice=f"Connected: {label}{verified}.")
    return await _settings_page(request, session, member, error=result.error)


@router.post(SETTINGS + "/{inbox_id}/sync")
async def sync_templates(
    request: Request, session: DbSession, member: CurrentMember, context: Context, inbox_id: Id
) -> Response:
    _admin(member)
    try:
        result = await wa_templates.sync_templates(
            session, context, member.account_id, inbox_id, actor_user_id=member.user.id
        )
    except NotFound:
        raise PageNotFound from None
    except GraphError as exc:
        return await _settings_page(request, session, member, error=describe(exc))
    except WhatWutError as exc:
        return await _settings_page(request, session, member, error=exc.detail, status=exc.status_code)
    notice = f"{result.synced} templates synced ({result.approved} approved, {result.removed} removed)."
    return await _settings_page(request, session, member, notice=notice)


@router.post(SETTINGS + "/{inbox_id}/ai_agent")
async def set_inbox_agent(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    inbox_id: Id,
    ai_agent_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """Who answers the inbox first: an AI agent (new conversations start ``pending`` with it) or people."""
    _admin(member)
    agent_id = int(ai_agent_id) if ai_agent_id.isdigit() and len(ai_agent_id) < 19 else None
    try:
        async with session.begin_nested():
            agent = await bots.set_inbox_agent(
                session, member.account_id, inbox_id, agent_id, actor_user_id=member.user.id
            )
    except NotFound:
        raise PageNotFound from None
    except WhatWutError as exc:
        return await _settings_page(request, session, member, error=exc.detail, status=exc.status_code)
    notice = f"{agent.name} now answers new conversations first." if agent else "People answer this inbox."
    return await _settings_page(request, session, member, notice=notice)


# --- the template picker ------------------------------------------------------------------------------


async def _picker(
    request: Request,
    session: DbSession,
    member: PageMember,
    conversation_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    bar = await data.sidebar(session, member)
    conversation = await data.conversation(session, member, conversation_id, bar, with_messages=False)
    rows, _next = await wa_templates.list_templates(
        session, member.account_id, conversation.inbox.id, status=wa_templates.APPROVED, limit=100
    )
    options = [
        {
            "value": f"{t.name}|{t.language}",
            "label": f"{t.name} ({t.language})",
            "body": str(
                next((c.get("text") for c in t.components if str(c.get("type")).upper() == "BODY"), "")
            ),
            "count": t.body_parameter_count,
        }
        for t in rows
    ]
    fragment = request.headers.get("hx-request") == "true"
    return templates.TemplateResponse(
        request,
        "partials/template_picker.html" if fragment else "whatsapp_template_page.html",
        {
            "member": member,
            "base": f"/app/accounts/{member.account_id}",
            "c": conversation,
            "options": options,
            "error": error,
            "csrf_field": CSRF_FIELD,
            "form_token": member.page.form_token,
        },
        status_code=status,
    )


@router.get(PICKER)
async def template_picker(
    request: Request, session: DbSession, member: CurrentMember, conversation_id: Id
) -> HTMLResponse:
    return await _picker(request, session, member, conversation_id)


@router.post(PICKER)
async def send_template(
    request: Request,
    session: DbSession,
    member: CurrentMember,
    conversation_id: Id,
    template: Annotated[str, Form(max_length=600)] = "",
    parameters: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:
    """Send an approved template; ``parameters`` holds one value per line, in ``{{1}}, {{2}}`` order."""
    name, _, language = template.partition("|")
    values = [line.strip() for line in parameters.splitlines() if line.strip()]
    try:
        body = CreateMessage(
            content_type="template",
            content_attributes={"template": {"name": name, "language": language, "parameters": values}},
        )
        async with session.begin_nested():
            await conversations.create_message(
                session, data.agent_of(member), conversation_id, body, [], storage=None
            )
    except NotFound:
        raise PageNotFound from None
    except WhatWutError as exc:
        return await _picker(
            request, session, member, conversation_id, error=exc.detail, status=exc.status_code
        )
    return RedirectResponse(
        f"/app/accounts/{member.account_id}/conversations/{conversation_id}", status_code=303
    )
