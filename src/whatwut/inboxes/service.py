"""Inboxes: their channel settings and sealed secrets, their members, and who may see them.

No HTTP here; callers own the transaction. Other domains use :func:`accessible_inbox_ids`
(the visibility rule), :func:`get_inbox`, :func:`inbox_member_ids` and :func:`channel_secrets`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.accounts.models import AccountUser, User
from whatwut.audit import service as audit
from whatwut.inboxes.models import CHANNEL_TYPES, RESOLVED_POLICIES, Inbox, InboxMember
from whatwut.inboxes.schemas import (
    CHANNEL_MODELS,
    CHANNEL_PATCH_MODELS,
    CREATABLE_CHANNEL_TYPES,
    SECRET_FIELDS,
    ChannelPatch,
    ChannelSpec,
    InboxCreate,
    InboxUpdate,
)
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.kit.schemas import Input
from whatwut.security.crypto import SecretBox

ADMINISTRATOR = "administrator"


class HasSecretBox(Protocol):
    """Anything carrying the instance's :class:`SecretBox` (the ``AppContext``)."""

    @property
    def secrets(self) -> SecretBox: ...


def _box(holder: SecretBox | HasSecretBox) -> SecretBox:
    return holder if isinstance(holder, SecretBox) else holder.secrets


def _conflicts() -> dict[str, tuple[str, str]]:
    return {
        "uq_inboxes_account_id": ("name", "an inbox with this name already exists in the account"),
        "uq_inboxes_cloud_phone_number_id": (
            "channel.phone_number_id",
            "this WhatsApp phone_number_id is already connected to an inbox",
        ),
    }


# --- visibility -----------------------------------------------------------------------------


async def accessible_inbox_ids(
    session: AsyncSession, account_id: int, user_id: int, role: str
) -> list[int] | None:
    """The inboxes a member may see: ``None`` means all of them (administrators).

    Agents see only the inboxes they are members of, as in Chatwoot. Every domain that lists
    conversations, messages or events filters with this one rule.
    """
    if role == ADMINISTRATOR:
        return None
    rows = await session.execute(
        select(InboxMember.inbox_id)
        .join(Inbox, Inbox.id == InboxMember.inbox_id)
        .where(Inbox.account_id == account_id, InboxMember.user_id == user_id)
        .order_by(InboxMember.inbox_id)
    )
    return list(rows.scalars().all())


async def get_inbox(session: AsyncSession, account_id: int, inbox_id: int) -> Inbox:
    """The account's inbox; 404 when it does not exist *or belongs to another account*."""
    # ``get`` answers from the session's identity map when the inbox is loaded already (a job
    # applying a webhook asks several times per transaction); a plain SELECT would not refresh
    # the loaded object either, only pay the round trip.
    inbox = await session.get(Inbox, inbox_id)
    if inbox is None or inbox.account_id != account_id:
        raise NotFound("inbox not found", field="inbox_id")
    return inbox


async def get_visible_inbox(
    session: AsyncSession, account_id: int, inbox_id: int, *, user_id: int, role: str
) -> Inbox:
    """:func:`get_inbox`, and 404 too for an agent who is not a member of it."""
    inbox = await get_inbox(session, account_id, inbox_id)
    if role != ADMINISTRATOR and user_id not in await inbox_member_ids(session, inbox.id):
        raise NotFound("inbox not found", field="inbox_id")
    return inbox


async def inbox_member_ids(session: AsyncSession, inbox_id: int) -> list[int]:
    """User ids of the inbox's members (auto-assignment picks among these)."""
    rows = await session.execute(
        select(InboxMember.user_id).where(InboxMember.inbox_id == inbox_id).order_by(InboxMember.user_id)
    )
    return list(rows.scalars().all())


async def list_inboxes(
    session: AsyncSession,
    account_id: int,
    *,
    user_id: int,
    role: str,
    cursor: str | None = None,
    limit: int = 25,
) -> tuple[Sequence[Inbox], str | None]:
    """A page of the inboxes this member may see, oldest first."""
    query = select(Inbox).where(Inbox.account_id == account_id)
    visible = await accessible_inbox_ids(session, account_id, user_id, role)
    if visible is not None:
        query = query.where(Inbox.id.in_(visible))
    if cursor:
        (after,) = decode_cursor(cursor, 1)
        if not isinstance(after, int) or isinstance(after, bool):
            raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
        query = query.where(Inbox.id > after)
    rows = (await session.execute(query.order_by(Inbox.id).limit(limit + 1))).scalars().all()
    next_cursor = encode_cursor(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


async def find_inbox_by_name(session: AsyncSession, account_id: int, name: str) -> Inbox | None:
    return (
        await session.execute(select(Inbox).where(Inbox.account_id == account_id, Inbox.name == name))
    ).scalar_one_or_none()


async def find_cloud_inbox(session: AsyncSession, phone_number_id: str) -> Inbox | None:
    """The Cloud API inbox of a Meta ``phone_number_id``, in whichever account (webhook routing)."""
    return (
        await session.execute(
            select(Inbox).where(
                Inbox.channel_type == "whatsapp_cloud",
                Inbox.settings["phone_number_id"].astext == phone_number_id,
            )
        )
    ).scalar_one_or_none()


# --- channel settings and secrets -------------------------------------------------------------


def channel_secrets(holder: SecretBox | HasSecretBox, inbox: Inbox) -> dict[str, Any]:
    """The inbox's decrypted channel secrets (e.g. ``access_token``); never send them to a client."""
    return _box(holder).open(inbox.secrets_encrypted)


def channel_view(inbox: Inbox) -> dict[str, Any]:
    """The channel as the API shows it: settings, and for each secret only whether it is set."""
    view: dict[str, Any] = {"type": inbox.channel_type, **inbox.settings}
    for name in SECRET_FIELDS.get(inbox.channel_type, ()):
        view[f"{name}_set"] = inbox.secrets_encrypted is not None
    return view


def _validated(model: type[Input], data: dict[str, Any]) -> Input:
    """Validate a channel object against its type's model; errors name ``channel.<field>``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        field = f"channel.{where}" if where else "channel"
        raise InvalidInput(f"{field}: {error['msg']}", field=field) from None


def _split(channel_type: str, values: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(non-secret settings, secrets) of a validated channel object, without ``type``."""
    secret_names = SECRET_FIELDS.get(channel_type, ())
    settings = {k: v for k, v in values.items() if k != "type" and k not in secret_names}
    secrets = {k: v for k, v in values.items() if k in secret_names}
    return settings, secrets


def parse_channel(spec: ChannelSpec) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``(channel_type, settings, secrets)`` of a channel that ``POST /inboxes`` may create."""
    if spec.type not in CREATABLE_CHANNEL_TYPES:
        raise InvalidInput(
            f"channel type {spec.type!r} is not available yet; create one of: "
            + ", ".join(CREATABLE_CHANNEL_TYPES),
            field="channel.type",
        )
    channel = _validated(CHANNEL_MODELS[spec.type], spec.model_dump())
    settings, secrets = _split(spec.type, channel.model_dump(exclude_none=True))
    return spec.type, settings, secrets


# --- writes ---------------------------------------------------------------------------------


async def add_inbox(
    session: AsyncSession,
    holder: SecretBox | HasSecretBox,
    account_id: int,
    *,
    name: str,
    channel_type: str,
    settings: dict[str, Any],
    secrets: dict[str, Any] | None = None,
    enable_auto_assignment: bool = True,
    max_open_per_agent: int | None = None,
    resolved_policy: str = "reopen",
    actor_user_id: int | None = None,
) -> Inbox:
    """Create an inbox from already-validated channel settings.

    The HTTP route goes through :func:`create_inbox`; channel domains (sandbox, WhatsApp Web)
    call this directly for the inbox types they own.
    """
    if channel_type not in CHANNEL_TYPES:
        raise InvalidInput(f"unknown channel type {channel_type!r}", field="channel.type")
    if resolved_policy not in RESOLVED_POLICIES:
        raise InvalidInput("resolved_policy must be `reopen` or `new`", field="resolved_policy")
    inbox = Inbox(
        account_id=account_id,
        name=name,
        channel_type=channel_type,
        settings=settings,
        secrets_encrypted=_box(holder).seal(secrets) if secrets else None,
        enable_auto_assignment=enable_auto_assignment,
        max_open_per_agent=max_open_per_agent,
        resolved_policy=resolved_policy,
    )
    async with unique_or_conflict(session, _conflicts()):
        session.add(inbox)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "inbox.created",
        "inbox",
        inbox.id,
        {"name": name, "channel_type": channel_type},
    )
    return inbox


async def create_inbox(
    session: AsyncSession,
    holder: SecretBox | HasSecretBox,
    account_id: int,
    body: InboxCreate,
    *,
    actor_user_id: int | None,
) -> Inbox:
    channel_type, settings, secrets = parse_channel(body.channel)
    return await add_inbox(
        session,
        holder,
        account_id,
        name=body.name,
        channel_type=channel_type,
        settings=settings,
        secrets=secrets,
        enable_auto_assignment=body.enable_auto_assignment,
        max_open_per_agent=body.max_open_per_agent,
        resolved_policy=body.resolved_policy,
        actor_user_id=actor_user_id,
    )


def _patch_channel(
    holder: SecretBox | HasSecretBox, inbox: Inbox, patch: ChannelPatch
) -> tuple[dict[str, Any], str | None, list[str]]:
    """The inbox's new settings and sealed secrets, and the names of what changed."""
    if patch.type is not None and patch.type != inbox.channel_type:
        raise InvalidInput(
            f"an inbox's channel type cannot change (it is {inbox.channel_type!r}); create another inbox",
            field="channel.type",
        )
    model = CHANNEL_PATCH_MODELS.get(inbox.channel_type)
    if model is None:
        raise InvalidInput(f"{inbox.channel_type!r} channels cannot be edited here yet", field="channel.type")
    values = _validated(model, patch.model_dump(exclude_unset=True)).model_dump(exclude_unset=True)
    changes, secrets_changed = _split(inbox.channel_type, values)
    settings = {**inbox.settings}
    for key, value in changes.items():
        if value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    secrets_changed = {k: v for k, v in secrets_changed.items() if v is not None}
    sealed = inbox.secrets_encrypted
    if secrets_changed:
        sealed = _box(holder).seal({**channel_secrets(holder, inbox), **secrets_changed})
    return settings, sealed, sorted(changes) + sorted(secrets_changed)


async def update_inbox(
    session: AsyncSession,
    holder: SecretBox | HasSecretBox,
    account_id: int,
    inbox_id: int,
    body: InboxUpdate,
    *,
    actor_user_id: int | None,
) -> Inbox:
    inbox = await get_inbox(session, account_id, inbox_id)
    given = body.model_fields_set
    for name in ("name", "enable_auto_assignment", "resolved_policy"):
        if name in given and getattr(body, name) is None:
            raise InvalidInput(f"{name} must not be null", field=name)
    new_settings, new_sealed = inbox.settings, inbox.secrets_encrypted
    channel_changes: list[str] = []
    if body.channel is not None:
        new_settings, new_sealed, channel_changes = _patch_channel(holder, inbox, body.channel)
    changed = [f"channel.{name}" for name in channel_changes]
    async with unique_or_conflict(session, _conflicts()):
        if body.name is not None and body.name != inbox.name:
            inbox.name = body.name
            changed.append("name")
        if body.enable_auto_assignment is not None:
            inbox.enable_auto_assignment = body.enable_auto_assignment
            changed.append("enable_auto_assignment")
        if "max_open_per_agent" in given:
            inbox.max_open_per_agent = body.max_open_per_agent
            changed.append("max_open_per_agent")
        if body.resolved_policy is not None:
            inbox.resolved_policy = body.resolved_policy
            changed.append("resolved_policy")
        if channel_changes:
            inbox.settings = new_settings
            inbox.secrets_encrypted = new_sealed
    if changed:
        # Field names only: the values may be secrets.
        await audit.record(
            session, account_id, actor_user_id, "inbox.updated", "inbox", inbox.id, {"fields": changed}
        )
        await session.refresh(inbox)
    return inbox


async def delete_inbox(
    session: AsyncSession, account_id: int, inbox_id: int, *, actor_user_id: int | None
) -> None:
    """Delete the inbox; its conversations, messages and contact ids on it go with it."""
    inbox = await get_inbox(session, account_id, inbox_id)
    await audit.record(
        session,
        account_id,
        actor_user_id,
        "inbox.deleted",
        "inbox",
        inbox.id,
        {"name": inbox.name, "channel_type": inbox.channel_type},
    )
    await session.delete(inbox)
    await session.flush()


# --- members --------------------------------------------------------------------------------


async def list_members(
    session: AsyncSession, account_id: int, inbox_id: int
) -> Sequence[tuple[User, AccountUser]]:
    """The inbox's members with their account role and presence, by user id."""
    ids = await inbox_member_ids(session, inbox_id)
    if not ids:
        return []
    rows, _ = await accounts.list_members(
        session, account_id, user_ids=ids, limit=len(ids), include_bots=True
    )
    return rows


async def _checked_user_ids(session: AsyncSession, account_id: int, user_ids: Iterable[int]) -> set[int]:
    wanted = set(user_ids)
    missing = wanted - await accounts.member_ids(session, account_id, wanted)
    if missing:
        raise InvalidInput(
            "not members of this account: " + ", ".join(str(i) for i in sorted(missing)), field="user_ids"
        )
    return wanted


async def set_members(
    session: AsyncSession,
    account_id: int,
    inbox_id: int,
    user_ids: Iterable[int],
    *,
    actor_user_id: int | None,
) -> list[int]:
    """Make exactly these account members the inbox's members; returns their ids."""
    inbox = await get_inbox(session, account_id, inbox_id)
    wanted = await _checked_user_ids(session, account_id, user_ids)
    before = set(await inbox_member_ids(session, inbox.id))
    removal = delete(InboxMember).where(InboxMember.inbox_id == inbox.id)
    if wanted:
        removal = removal.where(InboxMember.user_id.not_in(wanted))
    await session.execute(removal)
    if wanted:
        await session.execute(
            insert(InboxMember)
            .values([{"inbox_id": inbox.id, "user_id": user_id} for user_id in sorted(wanted)])
            .on_conflict_do_nothing(index_elements=["inbox_id", "user_id"])
        )
    if wanted != before:
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "inbox.members_changed",
            "inbox",
            inbox.id,
            {"added": sorted(wanted - before), "removed": sorted(before - wanted)},
        )
    return sorted(wanted)


async def remove_members(
    session: AsyncSession,
    account_id: int,
    inbox_id: int,
    user_ids: Iterable[int],
    *,
    actor_user_id: int | None,
) -> list[int]:
    """Take these users out of the inbox (ids that are not members are ignored); returns who is left."""
    inbox = await get_inbox(session, account_id, inbox_id)
    unwanted = set(user_ids)
    before = set(await inbox_member_ids(session, inbox.id))
    if unwanted & before:
        await session.execute(
            delete(InboxMember).where(InboxMember.inbox_id == inbox.id, InboxMember.user_id.in_(unwanted))
        )
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "inbox.members_changed",
            "inbox",
            inbox.id,
            {"added": [], "removed": sorted(unwanted & before)},
        )
    return sorted(before - unwanted)


async def remove_user_from_account_inboxes(session: AsyncSession, account_id: int, user_id: int) -> None:
    """Someone who left the account leaves its inboxes too, so round robin and member lists forget them."""
    await session.execute(
        delete(InboxMember).where(
            InboxMember.user_id == user_id,
            InboxMember.inbox_id.in_(select(Inbox.id).where(Inbox.account_id == account_id)),
        )
    )
