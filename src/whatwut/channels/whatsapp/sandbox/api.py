"""Routes of the sandbox: the phone view at ``/sandbox`` (htmx) and its JSON API (the CLI's way in).

Mounted only by ``whatwut serve --demo`` (see ``install_sandbox``), and then open without sign-in:
it plays the customers, who never sign in. Cross-site pages cannot drive it: the JSON API takes
only ``application/json`` and the page's forms only htmx requests (``HX-Request``), both of which
a browser sends cross-origin only after a CORS preflight that this server never grants.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from whatwut.channels.whatsapp.sandbox.schemas import (
    PhoneChatOut,
    PhoneMessageOut,
    SandboxMessageIn,
    SandboxMessageOut,
)
from whatwut.channels.whatsapp.sandbox.service import (
    DEFAULT_CUSTOMER_NAME,
    IMAGE_TYPES,
    MAX_IMAGE_BYTES,
    SANDBOX_BUSINESS_NAME,
    SANDBOX_BUSINESS_PHONE,
    Phone,
    Sandbox,
    wa_id_of,
)
from whatwut.kit.errors import InvalidInput, NotPermitted, WhatWutError

router = APIRouter(tags=["sandbox"])
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
DEFAULT_PHONE = "+15550001"
_PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
}


def _clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M")


templates.env.filters["clock"] = _clock


def _sandbox(request: Request) -> Sandbox:
    sandbox: Sandbox = request.app.state.sandbox
    return sandbox


def _chat_url(phone: Phone) -> str:
    return f"/sandbox?phone={quote(phone.number)}&name={quote(phone.name)}"


def _chat_out(phone: Phone) -> PhoneChatOut:
    return PhoneChatOut(
        phone=phone.number,
        name=phone.name,
        data=[PhoneMessageOut.model_validate(m.to_dict()) for m in phone.messages],
    )


# --- JSON API ---------------------------------------------------------------------------------


@router.post("/sandbox/api/messages", status_code=201, response_model=SandboxMessageOut)
async def send_message(request: Request, body: SandboxMessageIn) -> SandboxMessageOut:
    """Chat as a sandbox customer: the text is delivered as a signed Cloud API webhook to the real
    ``/webhooks/whatsapp/cloud`` endpoint. ``webhook_status`` is what that endpoint answered."""
    sandbox = _sandbox(request)
    message = await sandbox.send(body.phone, name=body.name, text=body.text, reply_to=body.reply_to)
    phone = sandbox.phone(wa_id_of(body.phone))
    return SandboxMessageOut(
        phone=phone.number,
        name=phone.name,
        message=PhoneMessageOut.model_validate(message.to_dict()),
        webhook_status=message.webhook_status or 0,
        inbox_id=sandbox.target.inbox_id,
        chat_url=_chat_url(phone),
    )


@router.get("/sandbox/api/phones/{phone}/messages", response_model=PhoneChatOut)
async def phone_chat(
    request: Request,
    phone: str,
    viewing: Annotated[
        bool, Query(description="The chat is on screen: report the business's messages read")
    ] = False,
) -> PhoneChatOut:
    """A sandbox phone's chat: what the customer sent and what the business answered, with ticks."""
    return _chat_out(_sandbox(request).chat(wa_id_of(phone, field="phone"), viewing=viewing))


# --- the phone view ---------------------------------------------------------------------------


def _page(request: Request, template: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, context, status_code=status)
    response.headers.update(_PAGE_HEADERS)
    return response


def _chat_fragment(
    request: Request, phone: Phone, error: str | None = None, status: int = 200
) -> HTMLResponse:
    return _page(request, "_chat.html", {"phone": phone, "error": error}, status)


def _require_htmx(request: Request) -> None:
    if request.headers.get("hx-request") != "true":
        raise NotPermitted("the sandbox's forms are sent by its page (htmx)", field="hx-request")


@router.get("/sandbox", response_class=HTMLResponse, include_in_schema=False)
async def sandbox_page(
    request: Request,
    phone: Annotated[str, Query(max_length=32)] = DEFAULT_PHONE,
    name: Annotated[str, Query(max_length=100)] = "",
) -> HTMLResponse:
    sandbox = _sandbox(request)
    error = None
    try:
        wa_id = wa_id_of(phone, field="phone")
    except InvalidInput as exc:
        error, wa_id = exc.detail, wa_id_of(DEFAULT_PHONE)
    current = sandbox.chat(wa_id, viewing=True)
    if name.strip():
        current.name = name.strip()
    return _page(
        request,
        "sandbox.html",
        {
            "phone": current,
            "phones": sorted(sandbox.phones.values(), key=lambda p: p.wa_id),
            "error": error,
            "business_name": SANDBOX_BUSINESS_NAME,
            "business_phone": SANDBOX_BUSINESS_PHONE,
            "inbox_id": sandbox.target.inbox_id,
            "account_id": sandbox.target.account_id,
            "default_name": DEFAULT_CUSTOMER_NAME,
            "image_types": ",".join(IMAGE_TYPES),
        },
        400 if error else 200,
    )


@router.get("/sandbox/phones/{wa_id}/chat", include_in_schema=False)
async def chat_fragment(request: Request, wa_id: str, since: Annotated[int, Query(ge=-1)] = -1) -> Response:
    """Polled every second while the chat is on screen: 204 when nothing changed since ``since``."""
    phone = _sandbox(request).chat(wa_id_of(wa_id, field="phone"), viewing=True)
    if phone.version == since:
        return Response(status_code=204, headers={"Cache-Control": "no-store"})
    return _chat_fragment(request, phone)


@router.post("/sandbox/phones/{wa_id}/messages", include_in_schema=False)
async def send_from_page(
    request: Request,
    wa_id: str,
    text: Annotated[str, Form(max_length=4096)] = "",
    name: Annotated[str, Form(max_length=100)] = "",
    image: Annotated[UploadFile | None, File()] = None,
) -> HTMLResponse:
    _require_htmx(request)
    sandbox = _sandbox(request)
    phone = sandbox.phone(wa_id_of(wa_id, field="phone"), name.strip() or None)
    attachment = None
    if image is not None and image.filename:
        content = await image.read(MAX_IMAGE_BYTES + 1)
        attachment = (content, image.content_type or "", image.filename)
    try:
        await sandbox.send(phone.number, name=name, text=text, image=attachment)
    except WhatWutError as exc:
        return _chat_fragment(request, phone, error=exc.detail, status=exc.status_code)
    return _chat_fragment(request, sandbox.chat(phone.wa_id, viewing=True))


@router.post("/sandbox/phones/{wa_id}/options", include_in_schema=False)
async def choose_option(
    request: Request,
    wa_id: str,
    message_id: Annotated[str, Form(max_length=255)],
    title: Annotated[str, Form(min_length=1, max_length=100)],
) -> HTMLResponse:
    """The customer taps a button (or list row) of an interactive message."""
    _require_htmx(request)
    sandbox = _sandbox(request)
    phone = sandbox.phone(wa_id_of(wa_id, field="phone"))
    try:
        await sandbox.choose(phone.number, message_id, title)
    except WhatWutError as exc:
        return _chat_fragment(request, phone, error=exc.detail, status=exc.status_code)
    return _chat_fragment(request, sandbox.chat(phone.wa_id, viewing=True))
