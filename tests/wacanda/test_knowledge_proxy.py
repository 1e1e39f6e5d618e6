"""WhatWut's ``/api/knowledge-base`` routes: WhatWut signs the user in, Wacanda answers over HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support import LiveServer, add_user, assert_problem, free_port, new_account
from tests.wacanda.conftest import WacandaServer


@pytest.fixture(scope="module", autouse=True)
def wacanda_for_whatwut(wacanda_live: WacandaServer) -> Iterator[None]:
    """Point WhatWut's proxy at the test Wacanda, as ``whatwut serve`` does for the one it starts."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WACANDA_URL", wacanda_live.url)
        patch.setenv("WACANDA_API_KEY", wacanda_live.key)
        yield


def upload(
    client: httpx.Client, headers: dict[str, str], name: str, data: bytes, **params: Any
) -> httpx.Response:
    return client.post(
        "/api/knowledge-base/documents",
        headers=headers,
        params=params,
        files={"files": (name, data, "text/markdown")},
        data={"knowledge_base": "support"},
    )


def search_until_found(
    client: httpx.Client, headers: dict[str, str], q: str, **params: Any
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 90
    while True:
        response = client.get("/api/knowledge-base/search", headers=headers, params={"q": q, **params})
        assert response.status_code == 200, response.text
        results: list[dict[str, Any]] = response.json()["results"]
        if results or time.monotonic() > deadline:
            return results
        time.sleep(0.2)


def test_an_administrator_uploads_and_any_member_searches(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    response = upload(
        client, admin.headers, "returns.md", b"# Returns\n\nYou have 14 days to return a phone."
    )
    assert response.status_code == 202, response.text
    (document,) = response.json()["documents"]
    assert (document["name"], document["status"], document["version"]) == ("returns.md", "processing", 1)

    agent = add_user(live, client, admin.account_id, role="agent")
    results = search_until_found(
        client, agent.headers, "how many days to return", account_id=admin.account_id
    )
    assert results[0]["document"] == "returns.md" and "14 days" in results[0]["text"]
    assert results[0]["title"] == "Returns" and results[0]["ranks"]


def test_agents_cannot_change_the_knowledge_base(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    agent = add_user(live, client, admin.account_id, role="agent")
    response = upload(client, agent.headers, "x.md", b"# X\n\ntext", account_id=admin.account_id)
    assert_problem(response, 403)


def test_other_accounts_knowledge_is_invisible(live: LiveServer, client: httpx.Client) -> None:
    owner = new_account(live, client)
    assert (
        upload(client, owner.headers, "secret.md", b"# Secret\n\nThe vault code is 9911.").status_code == 202
    )
    assert search_until_found(client, owner.headers, "vault code")
    stranger = new_account(live, client)
    denied = client.get("/api/knowledge-base/search", headers=stranger.headers,
                        params={"q": "vault code", "account_id": owner.account_id})  # fmt: skip
    assert_problem(denied, 404, field="account_id")
    assert_problem(upload(client, stranger.headers, "x.md", b"# X\n\nx", account_id=owner.account_id), 404)
    own = client.get("/api/knowledge-base/search", headers=stranger.headers, params={"q": "vault code"})
    assert own.status_code == 200 and own.json()["results"] == []


def test_sign_in_is_required(client: httpx.Client) -> None:
    assert_problem(client.get("/api/knowledge-base/search", params={"q": "x"}), 401)
    assert_problem(client.post("/api/knowledge-base/documents", files={"files": ("a.md", b"# a")}), 401)


def test_wacandas_problems_are_relayed(live: LiveServer, client: httpx.Client) -> None:
    admin = new_account(live, client)
    empty = upload(client, admin.headers, "empty.md", b"")
    assert_problem(empty, 422, field="file")
    assert_problem(
        client.get("/api/knowledge-base/search", headers=admin.headers, params={"q": "x" * 10_000}),
        422,
        field="q",
    )


def test_wacanda_down_answers_503(
    live: LiveServer, client: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = new_account(live, client)
    monkeypatch.setenv("WACANDA_URL", f"http://127.0.0.1:{free_port()}")
    response = client.get("/api/knowledge-base/search", headers=admin.headers, params={"q": "refund"})
    assert_problem(response, 503)
    assert "not reachable" in response.json()["detail"]
