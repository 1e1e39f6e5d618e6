from __future__ import annotations

import httpx

from tests.support import PASSWORD, assert_problem, new_account


def test_health_reports_the_database(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["database_version"].startswith("18")
    assert body["schema_revision"]


def test_login_returns_token_and_accounts(live, client: httpx.Client) -> None:
    actor = new_account(live, client)
    response = client.post("/api/v1/auth/login", json={"email": actor.email, "password": PASSWORD})
    body = response.json()
    assert body["token_type"] == "bearer" and body["access_token"].startswith("wws_")
    assert body["accounts"] == [
        {"id": actor.account_id, "name": body["accounts"][0]["name"], "role": "administrator"}
    ]


def test_wrong_password_is_401_problem(live, client: httpx.Client) -> None:
    actor = new_account(live, client)
    response = client.post("/api/v1/auth/login", json={"email": actor.email, "password": "nope-nope"})
    assert_problem(response, 401)


def test_malformed_login_body_names_the_field(client: httpx.Client) -> None:
    assert_problem(
        client.post("/api/v1/auth/login", json={"email": "not-an-email", "password": "x"}), 422, field="email"
    )
    assert_problem(
        client.post("/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}),
        422,
    )
    assert_problem(
        client.post("/api/v1/auth/login", json={"email": "a@b.co", "password": "x", "extra": 1}),
        422,
        field="extra",
    )


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/auth/login", content=b"x" * (3 * 1024 * 1024), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413)


def test_unknown_route_is_problem_json(client: httpx.Client) -> None:
    assert_problem(client.get("/api/v1/nothing-here"), 404)
