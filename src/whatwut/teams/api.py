"""HTTP routes of the teams domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from whatwut.accounts.auth import AccountAdmin, AccountMember
from whatwut.kit.deps import DbSession
from whatwut.kit.schemas import Page, PageMeta
from whatwut.teams import service
from whatwut.teams.schemas import TeamCreate, TeamMemberOut, TeamMembersChange, TeamOut, TeamUpdate

router = APIRouter(tags=["teams"])

Id = Annotated[int, Path(ge=1, le=2**63 - 1)]
Cursor = Annotated[str | None, Query(max_length=200, description="meta.next_cursor of the previous page")]
Limit = Annotated[int, Query(ge=1, le=100)]
TEAMS = "/api/v1/accounts/{account_id}/teams"


@router.get(TEAMS, summary="The account's teams")
async def list_teams(
    member: AccountMember, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[TeamOut]:
    teams, next_cursor = await service.list_teams(session, member.account_id, cursor=cursor, limit=limit)
    return Page(data=[TeamOut.model_validate(t) for t in teams], meta=PageMeta(next_cursor=next_cursor))


@router.post(TEAMS, status_code=201, summary="Create a team")
async def create_team(body: TeamCreate, admin: AccountAdmin, session: DbSession) -> TeamOut:
    team = await service.create_team(
        session,
        admin.account_id,
        actor_user_id=admin.user.id,
        name=body.name,
        description=body.description,
        allow_auto_assign=body.allow_auto_assign,
    )
    return TeamOut.model_validate(team)


@router.get(TEAMS + "/{team_id}", summary="One team")
async def get_team(team_id: Id, member: AccountMember, session: DbSession) -> TeamOut:
    return TeamOut.model_validate(await service.get_team(session, member.account_id, team_id))


@router.patch(TEAMS + "/{team_id}", summary="Rename or change a team")
async def update_team(team_id: Id, body: TeamUpdate, admin: AccountAdmin, session: DbSession) -> TeamOut:
    team = await service.update_team(
        session,
        admin.account_id,
        team_id,
        actor_user_id=admin.user.id,
        name=body.name,
        description=body.description,
        allow_auto_assign=body.allow_auto_assign,
    )
    return TeamOut.model_validate(team)


@router.delete(TEAMS + "/{team_id}", status_code=204, summary="Delete a team")
async def delete_team(team_id: Id, admin: AccountAdmin, session: DbSession) -> None:
    await service.delete_team(session, admin.account_id, team_id, actor_user_id=admin.user.id)


async def _members_page(
    session: DbSession, account_id: int, team_id: int, cursor: str | None, limit: int
) -> Page[TeamMemberOut]:
    rows, next_cursor = await service.list_members(session, account_id, team_id, cursor=cursor, limit=limit)
    return Page(
        data=[
            TeamMemberOut(id=u.id, name=u.name, email=u.email, role=m.role, availability=m.availability)
            for u, m in rows
        ],
        meta=PageMeta(next_cursor=next_cursor),
    )


@router.get(TEAMS + "/{team_id}/team_members", summary="The team's members")
async def list_team_members(
    team_id: Id, member: AccountMember, session: DbSession, cursor: Cursor = None, limit: Limit = 25
) -> Page[TeamMemberOut]:
    return await _members_page(session, member.account_id, team_id, cursor, limit)


@router.post(
    TEAMS + "/{team_id}/team_members", summary="Add account members to the team; answers the first page"
)
async def add_team_members(
    team_id: Id, body: TeamMembersChange, admin: AccountAdmin, session: DbSession
) -> Page[TeamMemberOut]:
    await service.add_members(session, admin.account_id, team_id, body.user_ids, actor_user_id=admin.user.id)
    return await _members_page(session, admin.account_id, team_id, None, 100)


@router.delete(TEAMS + "/{team_id}/team_members", status_code=204, summary="Take members out of the team")
async def remove_team_members(
    team_id: Id, body: TeamMembersChange, admin: AccountAdmin, session: DbSession
) -> None:
    await service.remove_members(
        session, admin.account_id, team_id, body.user_ids, actor_user_id=admin.user.id
    )
