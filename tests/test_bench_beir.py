"""``bench/retrieval_quality.py`` takes any BEIR-format folder (corpus.jsonl, queries.jsonl,
qrels/test.tsv), as the knowledge-base issue asks for SciFact: run as a user runs it, on a small
generated dataset and the real database, it reports nDCG@10 for full-text, vector and hybrid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from whatwut.db.embedded import libpq_url

ROOT = Path(__file__).resolve().parents[1]

DOCUMENTS = {  # long enough for the language of each to be detected (English, like SciFact)
    "d1": ("Vitamin D", "Vitamin D deficiency is common in the northern countries during the winter, "
           "when the days are short and there is little sun."),
    "d2": ("Sleep", "Adults who sleep less than six hours a night have a higher risk of obesity "
           "than those who sleep for seven hours or more."),
    "d3": ("Coffee", "Moderate coffee drinking is not linked to heart disease in the large cohort "
           "studies that have followed people for years."),
    "d4": ("Exercise", "Regular aerobic exercise lowers the resting blood pressure of patients with "
           "hypertension, and it is safe for most of them."),
    "d5": ("Smoking", "Smoking cessation reduces the risk of lung cancer within ten years, and the "
           "benefit is larger for those who stop early."),
    "d6": ("Antibiotics", "Antibiotics do not shorten the duration of the common colds that are "
           "caused by viruses, and they have side effects."),
}  # fmt: skip

QUERIES = {
    "q1": ("Is a lack of vitamin D frequent in winter in the north?", {"d1": 1}),
    "q2": ("Short sleep is associated with obesity in adults", {"d2": 1}),
    "q3": ("Does quitting smoking lower lung cancer risk?", {"d5": 1}),
    "q4": ("antibiotics colds viruses duration", {"d6": 1, "d4": 0}),
}


def write_beir(folder: Path) -> None:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in DOCUMENTS.items()) + "\n"
    )
    queries = [json.dumps({"_id": q, "text": text}) for q, (text, _) in QUERIES.items()]
    queries.append(json.dumps({"_id": "q-unjudged", "text": "not in the qrels, so not scored"}))
    (folder / "queries.jsonl").write_text("\n".join(queries) + "\n")
    qrels = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{doc}\t{grade}" for q, (_, judged) in QUERIES.items() for doc, grade in judged.items()
    ]
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n")


def test_the_retrieval_benchmark_scores_any_beir_folder(tmp_path: Path, database_url: str) -> None:
    beir, eval_dir = tmp_path / "tinyfact", tmp_path / "eval"
    write_beir(beir)
    eval_dir.mkdir()
    (eval_dir / "questions.jsonl").write_text("")
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "retrieval_quality.py"),
            "--eval-dir", str(eval_dir),
            "--skip-support",
            "--beir", str(beir),
            "--database-url", libpq_url(database_url),
            "--cache-dir", str(tmp_path / "cache"),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report, _end = json.JSONDecoder().raw_decode(done.stdout)
    result = report["beir"]
    assert (result["dataset"], result["documents"], result["queries"]) == ("tinyfact", 6, 4)
    ndcg = result["ndcg@10"]
    assert set(ndcg) == {"fulltext", "vector", "hybrid"}
    assert all(0.0 <= value <= 1.0 for value in ndcg.values())
    assert ndcg["fulltext"] == 1.0 and ndcg["vector"] == 1.0  # each query's own document first
    assert ndcg["hybrid"] == 1.0
    assert "Public benchmark: `tinyfact` (BEIR format), 4 test queries over 6 documents" in done.stdout
    assert "| **hybrid** | 1.000 |" in done.stdout
    assert list((tmp_path / "cache").glob("beir-tinyfact-*.npy"))  # vectors kept for the next run
