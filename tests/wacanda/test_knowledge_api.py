"""Wacanda's knowledge-base API over real HTTP, with a real job worker and real files of every format."""

from __future__ import annotations

import io
import json
import random
import threading
import time
from typing import Any

import httpx
import pytest

from tests.wacanda.conftest import WacandaServer, wait_processed
from tests.wacanda.documents import docx_bytes, pdf_bytes

FILES: dict[str, tuple[bytes, str, str]] = {
    # name: (content, a query, the text the top hit must contain)
    "returns.md": (
        b"# Returns\n\nYou have 14 days to return a phone you bought.\n\n## Refunds\n\n"
        b"Refunds reach your card within 5 business days.\n",
        "how long until my refund arrives",
        "5 business days",
    ),
    "roaming.txt": (
        b"ROAMING\n\nThe Travel Pass costs 12 dollars per day in Europe and Mexico.\n",
        "travel pass price europe",
        "12 dollars",
    ),
    "stores.html": (
        b"<html><head><title>Repair Centers</title><script>alert('pickup fee')</script></head><body>"
        b"<h1>Repair Centers</h1><h2>Opening hours</h2><p>Repair centers open at nine on weekdays.</p>"
        b"<script>document.write('secret script words zebracorn')</script></body></html>",
        "when do repair centers open",
        "nine on weekdays",
    ),
    "warranty.pdf": (
        pdf_bytes(
            [["Warranty", "Every phone has a warranty of twelve months from delivery."]],
            outline=[("Warranty", 0)],
        ),
        "how long is the warranty",
        "twelve months",
    ),
    "guide.docx": (docx_bytes(), "pickup fee in brazil", "R$ 10"),
    "faq.csv": (
        b"question,answer\nComo pago minha fatura?,Pague com Pix no aplicativo da Lumen.\n"
        b"Can I keep my number?,Yes, port it in the app in one day.\n",
        "como pago a fatura",
        "Pix",
    ),
    "faq.json": (
        json.dumps(
            [{"question": "¿Cómo activo el eSIM?", "answer": "Escanea el código QR en Ajustes."}]
        ).encode(),
        "activar esim",
        "código QR",
    ),
}


def new_account() -> int:
    return random.randint(10_000, 2**40)


def upload(
    client: httpx.Client,
    headers: dict[str, str],
    files: list[tuple[str, bytes]],
    kb: str = "default",
    **form: str,
) -> httpx.Response:
    return client.post(
        "/functions/v1/document-embed",
        headers=headers,
        files=[("files", (name, data, "application/octet-stream")) for name, data in files],
        data={"knowledge_base": kb, **form},
    )


def ingest(
    client: httpx.Client, headers: dict[str, str], name: str, data: bytes, **kw: Any
) -> dict[str, Any]:
    response = upload(client, headers, [(name, data)], **kw)
    assert response.status_code == 202, response.text
    (document,) = response.json()["documents"]
    if document["status"] == "unchanged":
        return document  # type: ignore[no-any-return]
    return wait_processed(client, headers, document["id"])


def search(client: httpx.Client, headers: dict[str, str], q: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get("/functions/v1/document-search", headers=headers, params={"q": q, **params})
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def loaded(wacanda_live: WacandaServer) -> tuple[int, dict[str, str]]:
    """One account with every format uploaded in one request and processed by the worker."""
    account = new_account()
    headers = wacanda_live.headers(account)
    with httpx.Client(base_url=wacanda_live.url, timeout=60) as client:
        response = upload(
            client,
            headers,
            [(name, content) for name, (content, _, _) in FILES.items()],
            kb="help",
            tags="public,v1",
        )
        assert response.status_code == 202, response.text
        documents = response.json()["documents"]
        assert [d["status"] for d in documents] == ["processing"] * len(FILES)
        for document in documents:
            status = wait_processed(client, headers, document["id"])
            assert status["status"] == "ready", status
            assert status["chunk_count"] >= 1 and status["progress"] == 1.0
    return account, headers


@pytest.mark.parametrize("name", list(FILES))
def test_every_format_is_ingested_and_found_by_search(
    wacanda: httpx.Client, loaded: tuple[int, dict[str, str]], name: str
) -> None:
    _account, headers = loaded
    _content, query, expected = FILES[name]
    results = search(wacanda, headers, query, kb="help", limit=3)
    assert results[0]["document"] == name, results
    assert expected in results[0]["text"]
    top = results[0]
    assert set(top) >= {"document", "title", "heading", "heading_path", "text", "score", "ranks"}
    assert top["ranks"] and set(top["ranks"]) <= {"vector", "fulltext"}


def test_html_scripts_are_not_indexed(wacanda: httpx.Client, loaded: tuple[int, dict[str, str]]) -> None:
    _account, headers = loaded
    results = search(wacanda, headers, "zebracorn", kb="help", limit=10)
    assert all("zebracorn" not in r["text"] for r in results)
    assert all("fulltext" not in r["ranks"] for r in results)


def test_results_carry_title_heading_path_and_each_retrievers_rank(
    wacanda: httpx.Client, loaded: tuple[int, dict[str, str]]
) -> None:
    _account, headers = loaded
    (top,) = search(wacanda, headers, "refunds business days", kb="help", limit=1)
    assert top["document"] == "returns.md"
    assert top["title"] == "Returns"
    assert top["heading_path"] == ["Returns", "Refunds"] and top["heading"] == "Refunds"
    assert top["ranks"] == {"vector": 1, "fulltext": 1}
    assert top["score"] > 0


def test_filters_by_document_and_tags(wacanda: httpx.Client, loaded: tuple[int, dict[str, str]]) -> None:
    _account, headers = loaded
    only = search(wacanda, headers, "refund", document="roaming.txt", limit=10)
    assert only and {r["document"] for r in only} == {"roaming.txt"}
    assert search(wacanda, headers, "refund", tags="public", limit=1)[0]["document"] == "returns.md"
    assert search(wacanda, headers, "refund", tags="public,v1")
    assert search(wacanda, headers, "refund", tags="internal") == []


def test_document_list_pages_with_a_cursor_and_shows_details(
    wacanda: httpx.Client, loaded: tuple[int, dict[str, str]]
) -> None:
    _account, headers = loaded
    seen: list[str] = []
    cursor = None
    while True:
        params = {"kb": "help", "limit": 3, **({"cursor": cursor} if cursor else {})}
        page = wacanda.get("/functions/v1/documents", headers=headers, params=params).json()
        seen += [d["name"] for d in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(FILES)
    document = wacanda.get("/functions/v1/documents", headers=headers, params={"kb": "help"}).json()["data"][
        0
    ]
    detail = wacanda.get(f"/functions/v1/documents/{document['id']}", headers=headers).json()
    assert detail["status"] == "ready" and detail["is_current"] and detail["version"] == 1
    assert len(detail["content_hash"]) == 64 and detail["tags"] == ["public", "v1"] and detail["size"] > 0
    kbs = wacanda.get("/functions/v1/knowledge-bases", headers=headers).json()["data"]
    assert [(kb["name"], kb["documents"], kb["embedding_dim"], kb["chunk_size"]) for kb in kbs] == [
        ("help", len(FILES), 384, 256)
    ]


def test_another_account_sees_none_of_it(
    wacanda: httpx.Client, wacanda_live: WacandaServer, loaded: tuple[int, dict[str, str]]
) -> None:
    _account, headers = loaded
    other = wacanda_live.headers(new_account())
    assert search(wacanda, other, "refund") == []
    assert (
        wacanda.get(
            "/functions/v1/document-search", headers=other, params={"q": "refund", "kb": "help"}
        ).status_code
        == 404
    )
    document_id = wacanda.get("/functions/v1/documents", headers=headers).json()["data"][0]["id"]
    for method, path in [
        ("GET", f"/functions/v1/documents/{document_id}"),
        ("GET", f"/functions/v1/document-status/{document_id}"),
        ("GET", f"/functions/v1/documents/{document_id}/versions"),
        ("DELETE", f"/functions/v1/documents/{document_id}"),
    ]:
        assert wacanda.request(method, path, headers=other).status_code == 404
    assert wacanda.get("/functions/v1/documents", headers=other).json()["data"] == []
    # Same knowledge base name, other account: its own, separate knowledge base.
    ingest(
        wacanda, other, "returns.md", b"# Returns\n\nOther company: 30 days to return anything.", kb="help"
    )
    assert {r["text"] for r in search(wacanda, other, "return days", kb="help")} == {
        "Other company: 30 days to return anything."
    }
    assert all("Other company" not in r["text"] for r in search(wacanda, headers, "return days", limit=20))


def test_a_new_version_replaces_the_old_one_and_an_unchanged_file_is_not_embedded_again(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    first = ingest(wacanda, headers, "plans.md", b"# Plans\n\nThe Basic plan costs 10 dollars a month.")
    assert first["status"] == "ready" and first["version"] == 1
    again = upload(wacanda, headers, [("plans.md", b"# Plans\n\nThe Basic plan costs 10 dollars a month.")])
    (same,) = again.json()["documents"]
    assert (same["status"], same["unchanged"], same["id"], same["version"]) == (
        "unchanged",
        True,
        first["id"],
        1,
    )

    second = ingest(wacanda, headers, "plans.md", b"# Plans\n\nThe Basic plan now costs 15 dollars a month.")
    assert second["status"] == "ready" and second["version"] == 2
    texts = [r["text"] for r in search(wacanda, headers, "basic plan price", limit=10)]
    assert texts == ["The Basic plan now costs 15 dollars a month."]
    versions = wacanda.get(f"/functions/v1/documents/{second['id']}/versions", headers=headers).json()["data"]
    assert [(v["version"], v["is_current"], v["status"]) for v in versions] == [
        (2, True, "ready"),
        (1, False, "ready"),
    ]
    listed = wacanda.get("/functions/v1/documents", headers=headers).json()["data"]
    assert [(d["name"], d["version"]) for d in listed] == [("plans.md", 2)]


def test_search_never_sees_half_a_new_version(wacanda: httpx.Client, wacanda_live: WacandaServer) -> None:
    """While version 2 (many chunks) is embedded, every search sees version 1 whole, then version 2 whole."""
    headers = wacanda_live.headers(new_account())
    old = "\n\n".join(f"## Old {i}\n\nOld answer number {i} about shipping." for i in range(3))
    new = "\n\n".join(f"## New {i}\n\nNew answer number {i} about shipping." for i in range(40))
    ingest(wacanda, headers, "shipping.md", ("# Shipping\n\n" + old).encode())
    response = upload(wacanda, headers, [("shipping.md", ("# Shipping\n\n" + new).encode())])
    document_id = response.json()["documents"][0]["id"]
    seen = []
    while True:
        status = wacanda.get(f"/functions/v1/document-status/{document_id}", headers=headers).json()
        texts = [r["text"] for r in search(wacanda, headers, "shipping answer", limit=50)]
        seen.append((status["chunks_embedded"], {t.split()[0] for t in texts}, len(texts)))
        if status["status"] != "processing":
            break
    assert status["status"] == "ready"
    for _embedded, kinds, count in seen:
        assert kinds in ({"Old"}, {"New"}), seen
        assert count == (3 if kinds == {"Old"} else 40), seen
    assert seen[-1][1] == {"New"}
    assert any(0 < embedded < 40 for embedded, _, _ in seen), "progress was never seen mid-way"


def test_delete_removes_a_document_from_search_at_once(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    document = ingest(wacanda, headers, "pets.md", b"# Pets\n\nDogs are welcome in every store.")
    ingest(wacanda, headers, "pets.md", b"# Pets\n\nDogs and cats are welcome in every store.")
    assert search(wacanda, headers, "dogs in store")
    assert wacanda.delete(f"/functions/v1/documents/{document['id']}", headers=headers).status_code == 204
    assert search(wacanda, headers, "dogs in store") == []
    assert wacanda.get("/functions/v1/documents", headers=headers).json()["data"] == []
    history = wacanda.get(f"/functions/v1/documents/{document['id']}/versions", headers=headers).json()[
        "data"
    ]
    assert [v["version"] for v in history] == [2, 1] and all(v["deleted_at"] for v in history)
    assert wacanda.delete(f"/functions/v1/documents/{document['id']}", headers=headers).status_code == 404
    # The same name can be uploaded again later, as a new version.
    back = ingest(wacanda, headers, "pets.md", b"# Pets\n\nDogs are welcome in every store.")
    assert back["status"] == "ready" and back["version"] == 3


def test_a_json_text_document_is_ingested(wacanda: httpx.Client, wacanda_live: WacandaServer) -> None:
    headers = wacanda_live.headers(new_account())
    response = wacanda.post(
        "/functions/v1/document-embed",
        headers=headers,
        json={"name": "hours.md", "text": "# Hours\n\nSupport answers from 8 to 20.", "knowledge_base": "kb"},
    )
    assert response.status_code == 202, response.text
    assert wait_processed(wacanda, headers, response.json()["documents"][0]["id"])["status"] == "ready"
    assert search(wacanda, headers, "support hours", kb="kb")[0]["document"] == "hours.md"
    bad = wacanda.post("/functions/v1/document-embed", headers=headers, json={"name": "x.md"})
    assert bad.status_code == 422 and bad.json()["field"] == "text"


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.txt", b" \n\n ", "empty"),
        ("photo.md", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "unsupported_type"),
        ("noise.txt", bytes(range(256)) * 16, "unsupported_type"),
        ("manual.pdf", b"# not a pdf", "wrong_extension"),
        ("sheet.xlsx", b"hello", "unsupported_type"),
    ],
)
def test_files_that_can_never_be_documents_are_refused_at_once(
    wacanda: httpx.Client, wacanda_live: WacandaServer, name: str, data: bytes, reason: str
) -> None:
    headers = wacanda_live.headers(new_account())
    response = upload(wacanda, headers, [(name, data)])
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["field"] == "file" and problem["reason"] == reason and name in problem["detail"]
    assert wacanda.get("/functions/v1/documents", headers=headers).json()["data"] == []


def _zip_bomb_docx() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<" + b" " * 30_000_000 + b">")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("locked.pdf", pdf_bytes([["Secret"]], user_password="pw"), "encrypted"),
        ("broken.pdf", b"%PDF-1.7\n" + b"\x00garbage" * 50, "corrupt"),
        ("faq.csv", b"name,email\nAna,ana@example.com\n", "missing_columns"),
        ("faq.json", b'{"not": "a list"}', "invalid_faq"),
        ("script.html", b"<html><body><script>alert(1)</script></body></html>", "no_text"),
        ("bomb.docx", _zip_bomb_docx(), "too_large"),
    ],
)
def test_files_that_fail_to_parse_end_in_error_with_the_reason(
    wacanda: httpx.Client, wacanda_live: WacandaServer, name: str, data: bytes, reason: str
) -> None:
    headers = wacanda_live.headers(new_account())
    response = upload(wacanda, headers, [(name, data)])
    assert response.status_code == 202, response.text
    status = wait_processed(wacanda, headers, response.json()["documents"][0]["id"])
    assert (status["status"], status["error_reason"]) == ("error", reason), status
    assert status["error_message"]
    # A failed upload can be fixed by uploading again: the error is not "unchanged".
    again = upload(wacanda, headers, [(name, data)]).json()["documents"][0]
    assert again["status"] == "processing" and again["version"] == 2
    wait_processed(wacanda, headers, again["id"])


def test_an_upload_over_the_size_limit_is_refused_with_413(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    big = b"a" * (52 * 1024 * 1024)
    response = upload(wacanda, headers, [("big.txt", big)])
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"q": "x" * 10_000}, 422, "q"),
        ({"q": "   "}, 422, "q"),
        ({}, 422, "q"),
        ({"q": "refund", "limit": 0}, 422, "limit"),
        ({"q": "refund", "limit": 500}, 422, "limit"),
        ({"q": "refund", "kb": "nope"}, 404, "kb"),
    ],
)
def test_bad_searches_get_a_clear_problem(
    wacanda: httpx.Client, loaded: tuple[int, dict[str, str]], params: dict[str, Any], status: int, field: str
) -> None:
    _account, headers = loaded
    response = wacanda.get("/functions/v1/document-search", headers=headers, params=params)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


def test_an_emoji_only_query_finds_nothing(wacanda: httpx.Client, loaded: tuple[int, dict[str, str]]) -> None:
    _account, headers = loaded
    assert search(wacanda, headers, "😀🙏🔥") == []


@pytest.mark.parametrize(
    ("headers", "status", "field"),
    [
        ({}, 401, None),
        ({"Authorization": "Bearer wrong-key", "X-Account-Id": "1"}, 401, None),
        ({"Authorization": "Basic abc", "X-Account-Id": "1"}, 401, None),
        ({"Authorization": "Bearer wacanda-test-service-key"}, 422, "X-Account-Id"),
        ({"Authorization": "Bearer wacanda-test-service-key", "X-Account-Id": "-3"}, 422, "X-Account-Id"),
    ],
)
def test_the_api_needs_the_service_key_and_an_account(
    wacanda: httpx.Client, headers: dict[str, str], status: int, field: str | None
) -> None:
    for method, path in [
        ("GET", "/functions/v1/document-search?q=hi"),
        ("GET", "/functions/v1/documents"),
        ("POST", "/functions/v1/document-embed"),
    ]:
        response = wacanda.request(method, path, headers=headers)
        assert response.status_code == status, (path, response.text)
        assert response.json().get("field") == field


def test_bad_upload_requests_get_a_clear_problem(wacanda: httpx.Client, wacanda_live: WacandaServer) -> None:
    headers = wacanda_live.headers(new_account())
    no_files = wacanda.post("/functions/v1/document-embed", headers=headers, data={"knowledge_base": "x"})
    assert no_files.status_code == 422 and no_files.json()["field"] == "files"
    as_text = wacanda.post(
        "/functions/v1/document-embed", headers={**headers, "content-type": "text/plain"}, content=b"hi"
    )
    assert as_text.status_code == 422
    long_kb = upload(wacanda, headers, [("a.md", b"# A\n\ntext")], kb="k" * 300)
    assert long_kb.status_code == 422 and long_kb.json()["field"] == "knowledge_base"
    broken_json = wacanda.post(
        "/functions/v1/document-embed", headers={**headers, "content-type": "application/json"}, content=b"{"
    )
    assert broken_json.status_code == 422


def test_progress_events_stream_over_sse(wacanda: httpx.Client, wacanda_live: WacandaServer) -> None:
    headers = wacanda_live.headers(new_account())
    ingest(
        wacanda, headers, "seed.md", b"# Seed\n\nA first document creates the knowledge base.", kb="events"
    )
    events: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()

    def listen() -> None:
        with (
            httpx.Client(base_url=wacanda_live.url, timeout=60) as client,
            client.stream(
                "GET", "/functions/v1/document-events", headers=headers, params={"knowledge_base": "events"}
            ) as stream,
        ):
            name = None
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and name:
                    events.append((name, json.loads(line.split(":", 1)[1])))
                    if name == "ready":
                        ready.set()
                    if name in ("document.ready", "document.error"):
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert ready.wait(20)
    text = "# Long\n\n" + "\n\n".join(f"## Part {i}\n\nParagraph {i} of the long guide." for i in range(20))
    ingest(wacanda, headers, "long.md", text.encode(), kb="events")
    ingest(
        wacanda, wacanda_live.headers(new_account()), "other.md", b"# Other\n\nSomeone else's.", kb="events"
    )
    listener.join(30)
    names = [name for name, _ in events]
    assert names[0] == "ready" and names[-1] == "document.ready"
    progress = [data["chunks_embedded"] for name, data in events if name == "document.progress"]
    assert progress == sorted(progress) and progress[-1] == 20 and len(set(progress)) >= 2
    assert {data["name"] for _, data in events[1:]} == {"long.md"}


def test_openapi_documents_the_routes(wacanda: httpx.Client) -> None:
    paths = wacanda.get("/openapi.json").json()["paths"]
    assert {
        "/functions/v1/document-embed",
        "/functions/v1/document-search",
        "/functions/v1/document-events",
    } <= set(paths)
    assert wacanda.get("/health").json() == {"status": "ok", "database": "ok"}


def test_unknown_routes_answer_problem_json(wacanda: httpx.Client) -> None:
    response = wacanda.get("/functions/v1/nope")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    time.sleep(0)
