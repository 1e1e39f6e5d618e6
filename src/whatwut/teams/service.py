"""Teams and their members (no HTTP; callers own the transaction).

Only members of the team's account may join it; membership facts come from the accounts service.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from whatwut.accounts import service as accounts
from whatwut.accounts.models import AccountUser, User
from whatwut.audit import service as audit
from whatwut.kit.errors import Conflict, InvalidInput, NotFound
from whatwut.kit.integrity import unique_or_conflict
from whatwut.kit.pagination import decode_cursor, encode_cursor
from whatwut.teams.models import Team, TeamMember

MAX_ID = 2**63 - 1


def _after_id(cursor: str | None) -> int | None:
    if not cursor:
        return None
    (value,) = decode_cursor(cursor, 1)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("cursor is not valid; use meta.next_cursor as given", field="cursor")
    return value


async def get_team(session: AsyncSession, account_id: int, team_id: int) -> Team:
    """The account's team; another account's team id is simply not found."""
    team = (
        await session.execute(select(Team).where(Team.id == team_id, Team.account_id == account_id))
    ).scalar_one_or_none()
    if team is None:
        raise NotFound("team not found", field="team_id")
    return team


async def list_teams(
    session: AsyncSession, account_id: int, *, cursor: str | None = None, limit: int = 25
) -> tuple[Sequence[Team], str | None]:
    query = select(Team).where(Team.account_id == account_id)
    after = _after_id(cursor)
    if after is not None:
        query = query.where(Team.id > after)
    rows = (await session.execute(query.order_by(Team.id).limit(limit + 1))).scalars().all()
    return rows[:limit], encode_cursor(rows[limit - 1].id) if len(rows) > limit else None


def _name_taken(name: str) -> dict[str, tuple[str, str]]:
    return {"uq_teams_account_id": ("name", f"a team named {name!r} already exists in this account")}


async def _ensure_name_free(
    session: AsyncSession, account_id: int, name: str, team_id: int | None = None
) -> None:
    query = select(Team.id).where(Team.account_id == account_id, func.lower(Team.name) == name.lower())
    if team_id is not None:
        query = query.where(Team.id != team_id)
    if (await session.execute(query)).first() is not None:
        raise Conflict(f"a team named {name!r} already exists in this account", field="name")


async def create_team(
    session: AsyncSession,
    account_id: int,
    *,
    actor_user_id: int | None,
    name: str,
    description: str = "",
    allow_auto_assign: bool = True,
) -> Team:
    await _ensure_name_free(session, account_id, name)
    team = Team(
        account_id=account_id, name=name, description=description, allow_auto_assign=allow_auto_assign
    )
    async with unique_or_conflict(session, _name_taken(name)):
        session.add(team)
    await session.refresh(team)
    await audit.record(session, account_id, actor_user_id, "team.created", "team", team.id, {"name": name})
    return team


async def update_team(
    session: AsyncSession,
    account_id: int,
    team_id: int,
    *,
    actor_user_id: int | None,
    name: str | None = None,
    description: str | None = None,
    allow_auto_assign: bool | None = None,
) -> Team:
    team = await get_team(session, account_id, team_id)
    changes: dict[str, object] = {}
    if name is not None and name != team.name:
        await _ensure_name_free(session, account_id, name, team.id)
        changes["name"] = [team.name, name]
        async with unique_or_conflict(session, _name_taken(name)):
            team.name = name
    if description is not None and description != team.description:
        changes["description"] = [team.description, description]
        team.description = description
    if allow_auto_assign is not None and allow_auto_assign != team.allow_auto_assign:
        changes["allow_auto_assign"] = [team.allow_auto_assign, allow_auto_assign]
        team.allow_auto_assign = allow_auto_assign
    if changes:
        await session.flush()
        await audit.record(session, account_id, actor_user_id, "team.updated", "team", team.id, changes)
    return team


async def delete_team(
    session: AsyncSession, account_id: int, team_id: int, *, actor_user_id: int | None
) -> None:
    team = await get_team(session, account_id, team_id)
    await audit.record(
        session, account_id, actor_user_id, "team.deleted", "team", team.id, {"name": team.name}
    )
    await session.delete(team)
    await session.flush()


async def team_member_ids(session: AsyncSession, team_id: int) -> list[int]:
    """The user ids in a team, ascending (for assignment and filters in other domains)."""
    rows = await session.execute(
        select(TeamMember.user_id).where(TeamMember.team_id == team_id).order_by(TeamMember.user_id)
    )
    return list(rows.scalars().all())


async def list_members(
    session: AsyncSession, account_id: int, team_id: int, *, cursor: str | None = None, limit: int = 25
) -> tuple[Sequence[tuple[User, AccountUser]], str | None]:
    team = await get_team(session, account_id, team_id)
    return await accounts.list_members(
        session,
        account_id,
        user_ids=await team_member_ids(session, team.id),
        cursor=cursor,
        limit=limit,
        include_bots=True,
    )


async def _check_members(session: AsyncSession, account_id: int, user_ids: Iterable[int]) -> list[int]:
    wanted = sorted(set(user_ids))
    out_of_range = [i for i in wanted if not 1 <= i <= MAX_ID]
    known = await accounts.member_ids(session, account_id, [i for i in wanted if 1 <= i <= MAX_ID])
    strangers = out_of_range + [i for i in wanted if i not in known and i not in out_of_range]
    if strangers:
        raise InvalidInput(
            f"not members of this account: {', '.join(map(str, sorted(strangers)))}", field="user_ids"
        )
    return wanted


async def add_members(
    session: AsyncSession,
    account_id: int,
    team_id: int,
    user_ids: Iterable[int],
    *,
    actor_user_id: int | None,
) -> list[int]:
    """Add account members to the team (already there is fine); returns the ids newly added."""
    team = await get_team(session, account_id, team_id)
    wanted = await _check_members(session, account_id, user_ids)
    added = (
        (
            await session.execute(
                insert(TeamMember)
                .values([{"team_id": team.id, "user_id": user_id} for user_id in wanted])
                .on_conflict_do_nothing(index_elements=["team_id", "user_id"])
                .returning(TeamMember.user_id)
            )
        )
        .scalars()
        .all()
    )
    if added:
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "team.members_added",
            "team",
            team.id,
            {"user_ids": sorted(added)},
        )
    return sorted(added)


async def remove_members(
    session: AsyncSession,
    account_id: int,
    team_id: int,
    user_ids: Iterable[int],
    *,
    actor_user_id: int | None,
) -> list[int]:
    """Take account members out of the team (not in it is fine); returns the ids removed."""
    team = await get_team(session, account_id, team_id)
    wanted = await _check_members(session, account_id, user_ids)
    removed = (
        (
            await session.execute(
                delete(TeamMember)
                .where(TeamMember.team_id == team.id, TeamMember.user_id.in_(wanted))
                .returning(TeamMember.user_id)
            )
        )
        .scalars()
        .all()
    )
    if removed:
        await audit.record(
            session,
            account_id,
            actor_user_id,
            "team.members_removed",
            "team",
            team.id,
            {"user_ids": sorted(removed)},
        )
    return sorted(removed)


async def remove_user_from_account_teams(session: AsyncSession, account_id: int, user_id: int) -> None:
    """A person who leaves an account leaves its teams too."""
    await session.execute(
        delete(TeamMember).where(
            TeamMember.user_id == user_id,
            TeamMember.team_id.in_(select(Team.id).where(Team.account_id == account_id)),
        )
    )
