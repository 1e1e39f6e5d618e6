"""HTTP routes of the realtime domain (thin: parse, call the service, shape the answer)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from sse_starlette import EventSourceResponse

from whatwut.accounts.auth import AccountMember
from whatwut.kit.deps import Context, DbSession
from whatwut.kit.errors import InvalidInput, NotFound
from whatwut.realtime.hub import EventHub
from whatwut.realtime.stream import event_stream, load_viewer

router = APIRouter(tags=["realtime"])

#: Seconds between keep-alive comments, below the idle timeouts of common proxies.
PING_SECONDS = 15


def _cursor(header: str | None, query: int | None) -> int | None:
    """The browser's reconnect header wins over the query (which only seeds the first connection)."""
    if header is None or not header.strip():
        return query
    value = header.strip()
    if not value.isdigit() or int(value) > 2**63 - 1:
        raise InvalidInput("Last-Event-ID must be an event id as sent in `id:`", field="Last-Event-ID")
    return int(value)


@router.get(
    "/api/v1/accounts/{account_id}/events",
    summary="Stream the account's events (Server-Sent Events)",
    response_class=EventSourceResponse,
    responses={200: {"content": {"text/event-stream": {}}, "description": "an endless event stream"}},
)
async def stream_events(
    member: AccountMember,
    session: DbSession,
    context: Context,
    request: Request,
    last_event_id: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="replay events after this id")
    ] = None,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    """``id:`` is the event id, ``event:`` its type, ``data:`` its JSON payload.

    Reconnecting with ``Last-Event-ID`` (or ``?last_event_id=``) replays what was missed first.
    Events of an inbox reach only the users who can see that inbox.
    """
    cursor = _cursor(last_event_id_header, last_event_id)
    viewer = await load_viewer(session, member.account_id, member.user.id)
    # The request's transaction ends here, not when the (endless) stream does: a stream must not
    # hold a pooled connection.
    await session.commit()
    if viewer is None:  # left the account between the two queries
        raise NotFound("account not found")
    hub: EventHub = request.app.state.event_hub
    return EventSourceResponse(
        event_stream(hub, context.sessionmaker, viewer, cursor),
        ping=PING_SECONDS,
    )
