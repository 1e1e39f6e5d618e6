"""``wacanda ask`` as a user runs it: a real process over the real database, no server, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

WACANDA = Path(sys.executable).with_name("wacanda")
ACCOUNT = "515151"
RETURNS = (
    "# Returns\n\nYou have 14 days to return a phone you bought.\n\n"
    "## Refunds\n\nRefunds reach your card within 5 business days after we receive the phone.\n\n"
    "## Pickup\n\nA courier picks up the returned phone at your address for free.\n"
)


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WACANDA), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def ask(env: dict[str, str], *args: str) -> tuple[dict[str, Any], int]:
    result = run(env, "ask", *args, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    session = int(result.stderr.strip().rsplit(" ", 1)[-1])
    return json.loads(result.stdout), session


@pytest.fixture(scope="module")
def env(wacanda_db: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    environment = {
        **os.environ,
        "DATABASE_URL": wacanda_db,
        "WHATWUT_DATA_DIR": str(tmp_path_factory.mktemp("wacanda-ask")),
        "WACANDA_ACCOUNT_ID": ACCOUNT,
        "COLUMNS": "200",
    }
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        environment.pop(name, None)  # offline: the extractive answerer
    folder = tmp_path_factory.mktemp("ask-kb")
    (folder / "returns.md").write_text(RETURNS)
    result = run(environment, "ingest", str(folder), "--kb", "help", "--json")
    assert result.returncode == 0, result.stderr
    return environment


def test_an_answerable_question_is_answered_from_the_document_and_cites_it(env: dict[str, str]) -> None:
    reply, _ = ask(env, "How long do refunds take to reach my card?", "--kb", "help")
    assert set(reply) == {"answer", "sources", "confidence", "handoff"}
    assert reply["answer"] is not None and "5 business days" in reply["answer"]
    assert {"document": "returns.md", "heading": "Refunds"} in reply["sources"]
    assert 0.5 <= reply["confidence"] <= 1
    assert reply["handoff"] == {"needed": False, "reason": None}


def test_an_unanswerable_question_gets_no_answer_and_a_low_confidence_handoff(env: dict[str, str]) -> None:
    reply, _ = ask(env, "What is the capital of Australia?")
    assert reply["answer"] is None
    assert reply["handoff"] == {"needed": True, "reason": "low_confidence"}
    assert reply["confidence"] < 0.5


def test_asking_for_a_person_hands_off_at_once(env: dict[str, str]) -> None:
    reply, _ = ask(env, "I want to talk to a human")
    assert reply["answer"] is None
    assert reply["handoff"] == {"needed": True, "reason": "human_request"}


def test_a_follow_up_in_the_same_session_uses_the_memory_and_every_turn_is_stored(
    env: dict[str, str], wacanda_db: str
) -> None:
    first, session = ask(env, "How many days do I have to return a phone?")
    assert first["answer"] is not None and "14 days" in first["answer"]
    follow_up, same = ask(env, "and the refund, how long does that take?", "--session", str(session))
    assert same == session
    assert follow_up["answer"] is not None and "5 business days" in follow_up["answer"]
    with psycopg.connect(wacanda_db) as conn:
        rows = conn.execute(
            "SELECT role, confidence_score IS NOT NULL FROM wacanda.chat_messages"
            " WHERE session_id = %s ORDER BY id",
            (session,),
        ).fetchall()
        traced = conn.execute(
            "SELECT count(*) FROM wacanda.rag_contexts r JOIN wacanda.chat_messages m ON m.id = r.message_id"
            " WHERE m.session_id = %s AND r.source_documents::text LIKE '%%returns.md%%'",
            (session,),
        ).fetchone()
        memory = conn.execute("SELECT memory FROM wacanda.chat_sessions WHERE id = %s", (session,)).fetchone()
    assert rows == [("user", False), ("assistant", True), ("user", False), ("assistant", True)]
    assert traced == (2,)
    assert memory is not None and len(memory[0]["turns"]) == 4


def test_the_readable_output_shows_answer_sources_and_confidence(env: dict[str, str]) -> None:
    result = run(env, "ask", "Is the courier pickup free?")
    assert result.returncode == 0, result.stderr
    assert "for free" in result.stdout and "returns.md > Pickup" in result.stdout
    assert "confidence" in result.stdout and "session" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["refund", "--session", "999999999"], "--session: chat session 999999999 not found"),
        (["refund", "--kb", "nope"], "--kb: knowledge base 'nope' not found"),
    ],
)
def test_bad_options_get_a_clear_message(env: dict[str, str], args: list[str], message: str) -> None:
    result = run(env, "ask", *args)
    assert result.returncode == 2
    assert message in " ".join(result.stderr.split()), result.stderr
    assert "Traceback" not in result.stderr
