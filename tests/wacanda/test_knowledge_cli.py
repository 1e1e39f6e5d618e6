"""``wacanda ingest`` and ``wacanda search`` as a user runs them: real processes, no server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.wacanda.documents import docx_bytes, pdf_bytes
from wacanda.answering.sentence_store import chunk_texts, text_hash

WACANDA = Path(sys.executable).with_name("wacanda")
ACCOUNT = "424242"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WACANDA), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def as_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert "Traceback" not in result.stderr, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def env(wacanda_db: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": wacanda_db,
        "WHATWUT_DATA_DIR": str(tmp_path_factory.mktemp("wacanda-cli")),
        "WACANDA_ACCOUNT_ID": ACCOUNT,
        "COLUMNS": "200",
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kb")
    (root / "returns.md").write_text(
        "# Returns\n\nYou have 14 days to return a phone.\n\n## Refunds\n\nRefunds take 5 days."
    )
    (root / "faq.csv").write_text("question,answer\nComo pago minha fatura?,Pague com Pix no aplicativo.\n")
    (root / "policies").mkdir()
    (root / "policies" / "guide.docx").write_bytes(docx_bytes())
    (root / "policies" / "warranty.pdf").write_bytes(
        pdf_bytes([["Warranty", "Every phone has a warranty of twelve months."]], outline=[("Warranty", 0)])
    )
    (root / ".hidden.md").write_text("# Hidden\n\nnot to be ingested")
    (root / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return root


@pytest.fixture(scope="module")
def ingested(env: dict[str, str], folder: Path) -> dict[str, Any]:
    result = run(env, "ingest", str(folder), "--kb", "help", "--json")
    assert result.returncode == 0, result.stderr
    return as_json(result)  # type: ignore[no-any-return]


def test_ingest_takes_a_folder_and_reports_every_document(ingested: dict[str, Any]) -> None:
    documents = {d["name"]: d for d in ingested["documents"]}
    assert set(documents) == {"returns.md", "faq.csv", "guide.docx", "warranty.pdf"}
    assert all(d["status"] == "ready" and d["chunks"] >= 1 for d in documents.values()), documents


def test_search_prints_the_documented_json(env: dict[str, str], ingested: dict[str, Any]) -> None:
    results = as_json(run(env, "search", "how long do refunds take", "--kb", "help", "--json"))["results"]
    top = results[0]
    assert {"document", "title", "heading", "text", "score"} <= set(top)
    assert (top["document"], top["title"], top["heading"]) == ("returns.md", "Returns", "Refunds")
    assert (
        as_json(run(env, "search", "warranty months", "--json"))["results"][0]["document"] == "warranty.pdf"
    )


def test_search_prints_readable_results_without_json(env: dict[str, str], ingested: dict[str, Any]) -> None:
    result = run(env, "search", "pix fatura")
    assert result.returncode == 0, result.stderr
    assert "faq.csv" in result.stdout and "Pague com Pix" in result.stdout


def test_ingesting_the_same_files_again_changes_nothing(
    env: dict[str, str], folder: Path, ingested: dict[str, Any]
) -> None:
    again = as_json(
        run(env, "ingest", str(folder / "returns.md"), str(folder / "faq.csv"), "--kb", "help", "--json")
    )
    assert [(d["name"], d["status"]) for d in again["documents"]] == [
        ("returns.md", "unchanged"),
        ("faq.csv", "unchanged"),
    ]


def test_bad_files_are_reported_with_a_reason_and_exit_1(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "locked.pdf").write_bytes(pdf_bytes([["Secret"]], user_password="pw"))
    (tmp_path / "people.csv").write_text("name,email\nAna,ana@example.com\n")
    (tmp_path / "fake.pdf").write_text("# not a pdf")
    files = [str(tmp_path / name) for name in ("empty.txt", "locked.pdf", "people.csv", "fake.pdf")]
    result = run(env, "ingest", *files, "--kb", "bad", "--json")
    assert result.returncode == 1
    documents = as_json(result)["documents"]
    assert [(d["name"], d["status"]) for d in documents] == [
        ("empty.txt", "error"),
        ("locked.pdf", "error"),
        ("people.csv", "error"),
        ("fake.pdf", "error"),
    ]
    errors = [d["error"] for d in documents]
    assert (
        "empty" in errors[0] and errors[1].startswith("encrypted") and errors[2].startswith("missing_columns")
    )
    assert "pdf" in errors[3].lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "x" * 10_000], "query: the query has 10,000 characters"),
        (["search", "refund", "--kb", "nope"], "knowledge base 'nope' not found"),
        (["ingest", "/no/such/file.md"], "no such file or folder"),
        (["ingest", "--kb", "k" * 300, __file__], "--kb: a knowledge base name is 1 to 200"),
    ],
)
def test_bad_input_gets_a_clear_message_and_no_traceback(
    env: dict[str, str], args: list[str], message: str
) -> None:
    result = run(env, *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr


def test_an_emoji_only_query_finds_nothing(env: dict[str, str], ingested: dict[str, Any]) -> None:
    assert as_json(run(env, "search", "😀🙏", "--json")) == {"results": []}


def test_ingest_prepares_what_replies_read_before_it_ends(
    env: dict[str, str], ingested: dict[str, Any]
) -> None:
    """No worker runs beside the CLI: the sentence vectors and latent terms of every chunk it
    ingested are stored by the time the command exits."""
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        chunks = conn.execute(
            "SELECT e.heading_path, e.chunk_text FROM wacanda.document_embeddings e"
            " JOIN wacanda.documents d ON d.id = e.document_id WHERE d.account_id = %s AND e.is_live",
            (int(ACCOUNT),),
        ).fetchall()
        sentences = {text_hash(t) for t in chunk_texts((path, text) for path, text in chunks)}
        passages = {text_hash(text) for _, text in chunks}
        stored_sentences = {
            bytes(row[0])
            for row in conn.execute(
                "SELECT text_hash FROM wacanda.sentence_vectors WHERE text_hash = ANY(%s)", (list(sentences),)
            )
        }
        stored_passages = {
            bytes(row[0])
            for row in conn.execute(
                "SELECT text_hash FROM wacanda.latent_terms WHERE text_hash = ANY(%s)", (list(passages),)
            )
        }
    assert len(chunks) >= 4 and sentences
    assert stored_sentences == sentences
    assert stored_passages == passages


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("WACANDA_REPLY_CONCURRENCY", "0", "worker"),
        ("WACANDA_PORT", "http", "serve"),
        ("WACANDA_RERANK_TIMEOUT", "0", "search"),
    ],
)
def test_a_bad_setting_is_named_with_exit_2_and_no_traceback(
    env: dict[str, str], variable: str, value: str, command: str
) -> None:
    result = run({**env, variable: value}, command, *(["refunds"] if command == "search" else []))
    text = " ".join((result.stdout + result.stderr).split())
    assert result.returncode == 2, text
    assert f"invalid configuration: {variable}={value!r}" in text and "Traceback" not in text
