"""``POST /api/knowledge-base/documents`` and ``GET /api/knowledge-base/search`` (the original plan's
WhatWut paths): WhatWut signs the caller in and checks the account, Wacanda does the work."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from whatwut.accounts import service as accounts
from whatwut.accounts.auth import CurrentPrincipal, Principal
from whatwut.kit.deps import DbSession
from whatwut.kit.errors import InvalidInput, NotFound, NotPermitted, problem_response
from whatwut.knowledge_proxy.client import WacandaResponse, WacandaUnavailable, forward
from whatwut.settings import get_settings

router = APIRouter(prefix="/api/knowledge-base", tags=["knowledge base"])

AccountQuery = Annotated[
    int | None,
    Query(
        ge=1,
        le=2**63 - 1,
        description="The account (optional for account-bound tokens and single-account users)",
    ),
]


async def _account(session: DbSession, principal: Principal, account_id: int | None) -> tuple[int, str]:
    """The account the caller acts in and their role there; other accounts answer 404."""
    if account_id is None:
        account_id = principal.token.account_id
    if account_id is None:
        memberships = await accounts.accounts_of(session, principal.user.id)
        if len(memberships) != 1:
            raise InvalidInput("you belong to several accounts; pass account_id", field="account_id")
        account_id = memberships[0][0].id
    if principal.token.account_id is not None and principal.token.account_id != account_id:
        raise NotFound("account not found", field="account_id")
    membership = await accounts.get_membership(session, account_id, principal.user.id)
    if membership is None:
        raise NotFound("account not found", field="account_id")
    return account_id, membership.role


def _relay(answer: WacandaResponse) -> Response:
    return Response(answer.content, status_code=answer.status_code, media_type=answer.content_type)


def _unavailable(request: Request, exc: WacandaUnavailable) -> JSONResponse:
    return problem_response(
        503,
        "Service unavailable",
        f"the knowledge base (Wacanda) is not reachable: {exc}",
        type_slug="wacanda-unavailable",
        instance=request.url.path,
    )


@router.post(
    "/documents",
    status_code=202,
    summary="Upload documents to a knowledge base (administrators); processed by Wacanda",
    openapi_extra={
        "requestBody": {
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                            "knowledge_base": {"type": "string", "default": "default"},
                            "tags": {"type": "string"},
                        },
                    }
                }
            }
        }
    },
)
async def upload_documents(
    request: Request, principal: CurrentPrincipal, session: DbSession, account_id: AccountQuery = None
) -> Response:
    account, role = await _account(session, principal, account_id)
    if role != "administrator":
        raise NotPermitted("only administrators of this account can change its knowledge base")
    body = await request.body()
    content_type = request.headers.get("content-type", "application/octet-stream")
    try:
        answer = await forward(
            get_settings(),
            "POST",
            "/functions/v1/document-embed",
            account,
            content=body,
            headers={"content-type": content_type},
        )
    except WacandaUnavailable as exc:
        return _unavailable(request, exc)
    return _relay(answer)


@router.get("/search", summary="Hybrid search of the account's knowledge bases (any member)")
async def search_knowledge_base(
    request: Request,
    principal: CurrentPrincipal,
    session: DbSession,
    q: Annotated[str, Query(description="What the customer asked")],
    account_id: AccountQuery = None,
) -> Response:
    account, _role = await _account(session, principal, account_id)
    params = [(key, value) for key, value in request.query_params.multi_items() if key != "account_id"]
    try:
        answer = await forward(get_settings(), "GET", "/functions/v1/document-search", account, params=params)
    except WacandaUnavailable as exc:
        return _unavailable(request, exc)
    return _relay(answer)
