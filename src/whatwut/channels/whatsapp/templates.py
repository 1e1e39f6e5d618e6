"""WhatsApp message templates: synced from Meta, checked before a send, turned into components.

Outside the 24-hour customer-service window WhatsApp only delivers approved templates. An agent's
``content_type: "template"`` message names one (``{"template": {"name", "language", "parameters"}}``);
:func:`check_outgoing` refuses it at once (422) unless the inbox's synced copy is ``APPROVED`` and
the values fit its variables, so a mistake never waits for Meta to reject it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import delete, literal, select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.audit import service as audit
from whatwut.channels.whatsapp.graph import GraphClient, GraphTarget
from whatwut.channels.whatsapp.template_models import WhatsAppTemplate
from whatwut.context import AppContext
from whatwut.conversations import service as conversations
from whatwut.conversations.schemas import TemplateSpec
from whatwut.inboxes import service as inboxes
from whatwut.inboxes.models import Inbox
from whatwut.kit.errors import InvalidInput
from whatwut.kit.pagination import decode_cursor, encode_cursor

#: Inbox channel types whose replies go through the Cloud API (and so can send templates).
CLOUD_CHANNEL_TYPES = ("whatsapp_cloud", "whatsapp_sandbox")
APPROVED = "APPROVED"
_VARIABLE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}")
_FIELD = "content_attributes.template"


def variables(text: str | None) -> list[str]:
    """The distinct ``{{...}}`` names of a template text, in order of first appearance."""
    return list(dict.fromkeys(_VARIABLE.findall(text or "")))


def _component(components: Sequence[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    for component in components:
        if str(component.get("type", "")).upper() == kind:
            return component
    return None


def body_variables(components: Sequence[dict[str, Any]]) -> list[str]:
    body = _component(components, "BODY")
    return variables(str(body.get("text") or "")) if body else []


@dataclass(frozen=True)
class SyncResult:
    synced: int
    approved: int
    removed: int


# --- sync and listing -----------------------------------------------------------------------------


def _cloud_inbox(inbox: Inbox) -> None:
    if inbox.channel_type not in CLOUD_CHANNEL_TYPES:
        raise InvalidInput("this inbox is not a WhatsApp Cloud API inbox", field="inbox_id")


async def sync_templates(
    session: AsyncSession, context: AppContext, account_id: int, inbox_id: int, *, actor_user_id: int | None
) -> SyncResult:
    """Replace the inbox's templates with what Meta lists for its WhatsApp Business Account.

    Graph errors propagate (the route reports them); nothing is written unless the listing
    completed, so a failure half-way keeps the previous copy.
    """
    inbox = await inboxes.get_inbox(session, account_id, inbox_id)
    _cloud_inbox(inbox)
    waba_id = str(inbox.settings.get("business_account_id") or "")
    if not waba_id:
        raise InvalidInput("the inbox has no business_account_id to list templates of", field="inbox_id")
    target = GraphTarget.for_inbox(context.settings, inbox.settings, inboxes.channel_secrets(context, inbox))
    async with GraphClient(target, timeout=context.settings.whatsapp_graph_timeout_seconds) as graph:
        listed = [item async for item in graph.message_templates(waba_id)]
    now = datetime.now(UTC)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for item in listed:
        name, language = str(item.get("name") or ""), str(item.get("language") or "")
        if not name or not language:
            continue
        components = [c for c in item.get("components") or [] if isinstance(c, dict)]
        rows[(name, language)] = {
            "account_id": account_id,
            "inbox_id": inbox.id,
            "meta_id": str(item["id"])[:64] if item.get("id") else None,
            "name": name[:512],
            "language": language[:16],
            "status": str(item.get("status") or "UNKNOWN")[:32].upper(),
            "category": str(item["category"])[:32] if item.get("category") else None,
            "parameter_format": str(item.get("parameter_format") or "POSITIONAL")[:16].upper(),
            "components": components,
            "body_parameter_count": len(body_variables(components)),
            "synced_at": now,
        }
    if rows:
        statement = insert(WhatsAppTemplate).values(list(rows.values()))
        updated: dict[str, Any] = {
            column: statement.excluded[column]
            for column in ("meta_id", "status", "category", "parameter_format", "components")
        }
        updated |= {"body_parameter_count": statement.excluded.body_parameter_count, "synced_at": now}
        await session.execute(
            statement.on_conflict_do_update(index_elements=["inbox_id", "name", "language"], set_=updated)
        )
    removed = await session.execute(
        delete(WhatsAppTemplate)
        .where(WhatsAppTemplate.inbox_id == inbox.id, WhatsAppTemplate.synced_at < now)
        .returning(WhatsAppTemplate.id)
    )
    result = SyncResult(
        synced=len(rows),
        approved=sum(1 for row in rows.values() if row["status"] == APPROVED),
        removed=len(removed.all()),
    )
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "whatsapp.templates_synced",
        "inbox",
        inbox.id,
        {"synced": result.synced, "approved": result.approved, "removed": result.removed},
    )
    return result


async def list_templates(
    session: AsyncSession,
    account_id: int,
    inbox_id: int,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> tuple[list[WhatsAppTemplate], str | None]:
    """A page of the inbox's synced templates, by name then language."""
    query = select(WhatsAppTemplate).where(
        WhatsAppTemplate.account_id == account_id, WhatsAppTemplate.inbox_id == inbox_id
    )
    if status:
        query = query.where(WhatsAppTemplate.status == status.upper())
    if cursor:
        after = decode_cursor(cursor, 2)
        if not all(isinstance(part, str) for part in after):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        query = query.where(
            tuple_(WhatsAppTemplate.name, WhatsAppTemplate.language)
            > tuple_(literal(after[0]), literal(after[1]))
        )
    rows = list(
        (
            await session.execute(
                query.order_by(WhatsAppTemplate.name, WhatsAppTemplate.language).limit(limit + 1)
            )
        ).scalars()
    )
    next_cursor = encode_cursor(rows[limit - 1].name, rows[limit - 1].language) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def find_template(
    session: AsyncSession, inbox_id: int, name: str, language: str
) -> WhatsAppTemplate | None:
    return (
        await session.execute(
            select(WhatsAppTemplate).where(
                WhatsAppTemplate.inbox_id == inbox_id,
                WhatsAppTemplate.name == name,
                WhatsAppTemplate.language == language,
            )
        )
    ).scalar_one_or_none()


# --- checking a send --------------------------------------------------------------------------------


def _check_fit(template: WhatsAppTemplate, spec: TemplateSpec) -> None:
    """The values fit the template's variables, or a 422 naming the field that does not."""
    components = template.components
    wanted = body_variables(components)
    named = template.parameter_format == "NAMED"
    if named:
        given = spec.parameters if isinstance(spec.parameters, dict) else None
        if given is None or set(given) != set(wanted):
            raise InvalidInput(
                f"template {template.name!r} takes named body variables {sorted(wanted)}; "
                f"give `parameters` as an object with exactly those keys",
                field=f"{_FIELD}.parameters",
            )
    else:
        given_list = spec.parameters if isinstance(spec.parameters, list) else None
        if given_list is None or len(given_list) != len(wanted):
            count = len(given_list) if given_list is not None else "named"
            raise InvalidInput(
                f"template {template.name!r} ({template.language}) has {len(wanted)} body "
                f"variable(s); {count} given",
                field=f"{_FIELD}.parameters",
            )
    header = _component(components, "HEADER")
    header_format = str((header or {}).get("format") or "TEXT").upper()
    header_vars = (
        variables(str((header or {}).get("text") or "")) if header and header_format == "TEXT" else []
    )
    if len(spec.header_parameters) != len(header_vars):
        raise InvalidInput(
            f"template {template.name!r} has {len(header_vars)} header variable(s); "
            f"{len(spec.header_parameters)} given",
            field=f"{_FIELD}.header_parameters",
        )
    if header and header_format in ("IMAGE", "VIDEO", "DOCUMENT"):
        if spec.header_media is None or spec.header_media.type != header_format.lower():
            raise InvalidInput(
                f"template {template.name!r} has a {header_format.lower()} header: give `header_media` "
                f"with type {header_format.lower()!r} and a link or media id",
                field=f"{_FIELD}.header_media",
            )
    elif spec.header_media is not None:
        raise InvalidInput(f"template {template.name!r} has no media header", field=f"{_FIELD}.header_media")
    buttons = (_component(components, "BUTTONS") or {}).get("buttons") or []
    dynamic = {
        index
        for index, button in enumerate(buttons)
        if isinstance(button, dict)
        and str(button.get("type", "")).upper() == "URL"
        and variables(button.get("url"))
    }
    given_urls = {p.index for p in spec.button_parameters if p.sub_type == "url"}
    if given_urls != dynamic:
        raise InvalidInput(
            f"template {template.name!r} needs URL button parameters for button index(es) "
            f"{sorted(dynamic)}; given {sorted(given_urls)}",
            field=f"{_FIELD}.button_parameters",
        )


def render(template: WhatsAppTemplate | None, spec: TemplateSpec) -> str:
    """The body text as the customer will read it (what the agent sees in the conversation)."""
    body = _component(template.components, "BODY") if template else None
    text = str((body or {}).get("text") or f"[template {spec.name}]")
    values: dict[str, str] = {}
    if isinstance(spec.parameters, dict):
        values = dict(spec.parameters)
    else:
        values = {str(i + 1): v for i, v in enumerate(spec.parameters)}
    return _VARIABLE.sub(lambda m: values.get(m.group(1), m.group(0)), text)


async def check_outgoing(
    session: AsyncSession, inbox: Inbox, content_type: str, content: str | None, attributes: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    """The conversations hook for Cloud API inboxes: templates must be synced, approved and filled."""
    if content_type != "template":
        return content, attributes
    spec = TemplateSpec.model_validate(attributes["template"])
    template = await find_template(session, inbox.id, spec.name, spec.language)
    if template is None:
        raise InvalidInput(
            f"template {spec.name!r} in language {spec.language!r} is not among this inbox's synced "
            "templates; sync the templates (or check the name and language)",
            field=f"{_FIELD}.name",
        )
    if template.status != APPROVED:
        raise InvalidInput(
            f"template {spec.name!r} ({spec.language}) is {template.status}; only approved templates "
            "can be sent",
            field=f"{_FIELD}.name",
        )
    if not spec.components:
        _check_fit(template, spec)
    return content or render(template, spec), attributes


conversations.register_outgoing_check(CLOUD_CHANNEL_TYPES, check_outgoing)


# --- the components of a send ------------------------------------------------------------------------


def send_components(
    spec_data: dict[str, Any], template: WhatsAppTemplate | None
) -> tuple[str, str, list[dict[str, Any]]]:
    """``(name, language code, components)`` for Meta's ``template`` object, from the stored spec."""
    try:
        spec = TemplateSpec.model_validate(spec_data)
    except ValidationError as exc:
        raise ValueError(f"the stored template is not valid: {exc.errors()[0].get('msg')}") from None
    named = template is not None and template.parameter_format == "NAMED"
    components: list[dict[str, Any]] = []
    header_names = []
    if template is not None:
        header = _component(template.components, "HEADER")
        header_names = variables(str((header or {}).get("text") or "")) if header else []
    if spec.header_parameters:
        parameters = []
        for index, value in enumerate(spec.header_parameters):
            parameter: dict[str, Any] = {"type": "text", "text": value}
            if named and index < len(header_names):
                parameter["parameter_name"] = header_names[index]
            parameters.append(parameter)
        components.append({"type": "header", "parameters": parameters})
    elif spec.header_media is not None:
        media = spec.header_media
        source: dict[str, Any] = {"link": media.link} if media.link else {"id": media.id}
        if media.filename and media.type == "document":
            source["filename"] = media.filename
        components.append({"type": "header", "parameters": [{"type": media.type, media.type: source}]})
    if isinstance(spec.parameters, dict):
        order = body_variables(template.components) if template else list(spec.parameters)
        order += [name for name in spec.parameters if name not in order]
        body = [
            {"type": "text", "parameter_name": n, "text": spec.parameters[n]}
            for n in order
            if n in spec.parameters
        ]
    else:
        body = [{"type": "text", "text": value} for value in spec.parameters]
    if body:
        components.append({"type": "body", "parameters": body})
    for button in sorted(spec.button_parameters, key=lambda b: b.index):
        if button.sub_type == "quick_reply":
            argument: dict[str, Any] = {"type": "payload", "payload": button.text}
        elif button.sub_type == "copy_code":
            argument = {"type": "coupon_code", "coupon_code": button.text}
        else:
            argument = {"type": "text", "text": button.text}
        components.append(
            {
                "type": "button",
                "sub_type": button.sub_type,
                "index": str(button.index),
                "parameters": [argument],
            }
        )
    components.extend(spec.components)
    return spec.name, spec.language, components
