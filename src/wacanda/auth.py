"""Who may call Wacanda's API (ADR 0006): holders of the service key, on behalf of one account.

WhatWut's proxy signs its users in, checks their membership, and forwards with the key and the
account id; Wacanda trusts the account id only together with the key.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Request

from wacanda.errors import InvalidInput, NotAuthenticated

ACCOUNT_HEADER = "X-Account-Id"


def require_service_key(request: Request) -> None:
    expected: str = request.app.state.service_key
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send `Authorization: Bearer <WACANDA_API_KEY>`")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise NotAuthenticated("the API key is not valid")


def caller_account(
    request: Request,
    _key: Annotated[None, Depends(require_service_key)],
    x_account_id: Annotated[str | None, Header(alias=ACCOUNT_HEADER)] = None,
) -> int:
    if x_account_id is None or not x_account_id.strip().isdigit() or not 1 <= int(x_account_id) < 2**63:
        raise InvalidInput(
            f"send the account as a positive integer in {ACCOUNT_HEADER}", field=ACCOUNT_HEADER
        )
    return int(x_account_id)


CallerAccount = Annotated[int, Depends(caller_account)]
