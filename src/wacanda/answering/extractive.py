"""The offline answerer: the best-supported sentences of the retrieved passages, quoted with
numbered citations, and a calibrated confidence.

Nothing is generated: each sentence is copied from a passage (table rows are spelled out with
their column names), so numbers and prices stay exactly as the knowledge base writes them. When
the passage is in another language than the customer's, it cannot be translated offline; the
answer starts with a short lead-in in the customer's language ("Segundo nossa documentação
(…):") and quotes the passage as written.

The confidence is a logistic function of retrieval evidence (top fused score, margin to the next
document, agreement of the full-text and vector retrievers) and of the answer itself (embedding
similarity of the best sentence to the question, share of the question's terms the cited text
covers); its weights are fitted by ``bench/answer_quality.py --fit`` on the labelled corpus.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from wacanda.answering.types import Citation, Passage
from wacanda.answering.words import QUANTITY_WORDS, content_terms, guess_language, numbers, sentences, words
from wacanda.knowledge.embeddings import Embedder, Vectors
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS

MAX_ANSWER_CHARS = 600  # a WhatsApp message a customer reads without scrolling
MAX_SENTENCES = 3
PASSAGES_CONSIDERED = 4
SENTENCES_EMBEDDED = 12
# The best fused score a passage can get: first in both retrievers.
_TOP_FUSED = sum(DEFAULT_WEIGHTS.values()) / (DEFAULT_RRF_K + 1)

# Fitted by ``bench/answer_quality.py --fit`` (logistic regression on standardised features, L2,
# weights given back in raw units) on the support corpus: 60 answerable and 20 unanswerable
# questions, "right" meaning every must_contain string and the source document cited. The
# default threshold 0.5 (RAGConfig.similarity_threshold) keeps 90 % abstention on that corpus.
FEATURES = (
    "top_score",
    "margin",
    "agreement",
    "semantic",
    "coverage",
    "answer_coverage",
    "coverage_all",
    "cross_language",
)
WEIGHTS = {
    "top_score": 9.293,
    "margin": 2.5,
    "agreement": -2.958,
    "semantic": 39.916,
    "coverage": 2.326,
    "answer_coverage": -1.172,
    "coverage_all": 0.07,
    "cross_language": 1.967,
}
BIAS = -42.363

LEAD_INS = {
    "en": "According to our documentation ({heading}):",
    "pt": "Segundo a nossa documentação ({heading}):",
    "es": "Según nuestra documentación ({heading}):",
}


@dataclass
class ScoredSentence:
    text: str
    passage: int  # index into the passages
    position: int  # order inside the passage
    lexical: float
    semantic: float
    score: float


@dataclass
class ExtractiveAnswer:
    text: str | None
    citations: list[Citation]
    confidence: float
    features: dict[str, float] = field(default_factory=dict)
    sentences: list[ScoredSentence] = field(default_factory=list)
    cited_passages: list[Passage] = field(default_factory=list)


def confidence_from(features: dict[str, float]) -> float:
    z = BIAS + sum(WEIGHTS[name] * features.get(name, 0.0) for name in FEATURES)
    return 1 / (1 + math.exp(-z))


class ExtractiveAnswerer:
    """Picks sentences by a mix of term overlap and embedding similarity to the question.

    ``embedder`` may be None (term overlap only, e.g. in constrained tests); sentence vectors are
    cached, since the same passages come back for related questions."""

    def __init__(self, embedder: Embedder | None, *, max_chars: int = MAX_ANSWER_CHARS) -> None:
        self.embedder = embedder
        self.max_chars = max_chars
        self._cache: dict[str, Vectors] = {}
        self._lock = threading.Lock()

    def answer(
        self, question: str, passages: Sequence[Passage], language: str | None = None
    ) -> ExtractiveAnswer:
        language = language or guess_language(question)
        if not passages:
            return ExtractiveAnswer(None, [], 0.0, dict.fromkeys(FEATURES, 0.0))
        considered = list(passages[:PASSAGES_CONSIDERED])
        scored = self._score_sentences(question, considered)
        if not scored:
            return ExtractiveAnswer(None, [], 0.0, dict.fromkeys(FEATURES, 0.0))
        chosen = self._choose(scored)
        text, citations, cited = self._compose(chosen, considered, language)
        features = self._features(question, passages, scored, chosen, language)
        return ExtractiveAnswer(text, citations, confidence_from(features), features, chosen, cited)

    # -- scoring --------------------------------------------------------------------------------

    def _score_sentences(self, question: str, passages: Sequence[Passage]) -> list[ScoredSentence]:
        question_terms = set(content_terms(question))
        asks_quantity = bool(set(words(question)) & QUANTITY_WORDS)
        candidates: list[tuple[int, int, str, str]] = []  # passage, position, sentence, embedded text
        for p_index, passage in enumerate(passages):
            heading = " > ".join(passage.heading_path[-2:])
            for position, sentence in enumerate(readable_sentences(passage.text)):
                candidates.append((p_index, position, sentence, f"{heading}\n{sentence}"))
        if not candidates:
            return []
        top = passages[0].score or 1.0
        partial = []
        for p_index, _position, sentence, embedded in candidates:
            passage = passages[p_index]
            sentence_terms = set(content_terms(sentence))
            heading_terms = set(content_terms(" ".join(passage.heading_path)))
            lexical = 0.0
            if question_terms:
                in_heading = question_terms & (heading_terms - sentence_terms)
                lexical = (len(question_terms & sentence_terms) + 0.5 * len(in_heading)) / len(question_terms)
            quantity = 0.1 if asks_quantity and numbers(sentence) else 0.0
            partial.append((0.35 * lexical + 0.2 * passage.score / top + quantity, lexical, embedded))
        # Only the most promising sentences are embedded: the cost stays bounded per question.
        shortlist = sorted(range(len(candidates)), key=lambda i: -partial[i][0])[:SENTENCES_EMBEDDED]
        similarities = dict(
            zip(shortlist, self._similarities(question, [partial[i][2] for i in shortlist]), strict=True)
        )
        scored = []
        for i, (p_index, position, sentence, _) in enumerate(candidates):
            similarity = similarities.get(i)
            semantic_norm = 0.0 if similarity is None else min(1.0, max(0.0, (similarity - 0.72) / 0.18))
            score = 0.45 * semantic_norm + partial[i][0]
            scored.append(
                ScoredSentence(sentence, p_index, position, partial[i][1], similarity or 0.0, score)
            )
        return sorted(scored, key=lambda s: -s.score)

    def _similarities(self, question: str, texts: list[str]) -> list[float]:
        if self.embedder is None:
            return [0.8] * len(texts)
        query = self.embedder.embed_query(question)
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            vectors = self.embedder.embed_passages(missing)
            with self._lock:
                for text, vector in zip(missing, vectors, strict=True):
                    self._cache[text] = vector
                if len(self._cache) > 20_000:
                    self._cache.clear()
        with self._lock:
            matrix = np.vstack([self._cache.get(t, np.zeros_like(query)) for t in texts])
        return [float(x) for x in matrix @ query]

    def _choose(self, scored: list[ScoredSentence]) -> list[ScoredSentence]:
        best = scored[0]
        chosen = [best]
        length = len(best.text)
        for candidate in scored[1:]:
            if len(chosen) >= MAX_SENTENCES:
                break
            if candidate.score < 0.8 * best.score:
                break
            if candidate.passage != best.passage and candidate.score < 0.92 * best.score:
                continue  # another passage only when it is nearly as good
            if length + len(candidate.text) + 6 > self.max_chars - 80:
                continue
            chosen.append(candidate)
            length += len(candidate.text) + 6
        return chosen

    # -- the reply ------------------------------------------------------------------------------

    def _compose(
        self, chosen: list[ScoredSentence], passages: Sequence[Passage], language: str
    ) -> tuple[str, list[Citation], list[Passage]]:
        order: list[int] = []
        for sentence in chosen:
            if sentence.passage not in order:
                order.append(sentence.passage)
        citations, cited, parts = [], [], []
        for number, p_index in enumerate(order, start=1):
            passage = passages[p_index]
            quoted = sorted((s for s in chosen if s.passage == p_index), key=lambda s: s.position)
            body = " ".join(_with_period(s.text) for s in quoted)
            if language != passage_language(passage):
                lead = LEAD_INS.get(language, LEAD_INS["en"]).format(heading=passage.heading or passage.title)
                body = f"{lead} {body}"
            parts.append(f"{body} [{number}]")
            citations.append(Citation(number, passage.document, passage.heading, passage.title))
            cited.append(passage)
        text = "\n".join(parts)
        if len(text) > self.max_chars:
            text = text[: self.max_chars - 1].rsplit(" ", 1)[0] + "…"
        return text, citations, cited

    # -- confidence -----------------------------------------------------------------------------

    def _features(
        self,
        question: str,
        passages: Sequence[Passage],
        scored: list[ScoredSentence],
        chosen: list[ScoredSentence],
        language: str,
    ) -> dict[str, float]:
        top = passages[0]
        other = next((p for p in passages[1:] if p.document != top.document), None)
        margin = (top.score - other.score) / top.score if other is not None and top.score > 0 else 1.0
        ranks = top.ranks
        if "vector" in ranks and "fulltext" in ranks:
            agreement = 1.0 if max(ranks["vector"], ranks["fulltext"]) <= 3 else 0.5
        else:
            agreement = 0.0
        question_terms = set(content_terms(question))
        best_passage = passages[chosen[0].passage]
        context_terms = set(
            content_terms(" ".join([best_passage.title, *best_passage.heading_path, best_passage.text]))
        )
        answer_terms = set(content_terms(" ".join(s.text for s in chosen)))
        coverage = len(question_terms & context_terms) / len(question_terms) if question_terms else 0.0
        answer_coverage = len(question_terms & answer_terms) / len(question_terms) if question_terms else 0.0
        all_terms = set(
            content_terms(" ".join(" ".join([p.title, *p.heading_path, p.text]) for p in passages))
        )
        coverage_all = len(question_terms & all_terms) / len(question_terms) if question_terms else 0.0
        return {
            "coverage_all": coverage_all,
            "cross_language": 0.0 if passage_language(best_passage) == language else 1.0,
            "top_score": min(1.0, top.score / _TOP_FUSED),
            "margin": max(0.0, min(1.0, margin)),
            "agreement": agreement,
            "semantic": max(s.semantic for s in scored),
            "coverage": coverage,
            "answer_coverage": answer_coverage,
        }


def passage_language(passage: Passage) -> str:
    return guess_language(passage.text, default="en")


def readable_sentences(text: str) -> list[str]:
    """The passage's sentences; a table row becomes "Column: value; …" so it reads on its own."""
    result: list[str] = []
    header: list[str] | None = None
    for block_line in text.split("\n"):
        line = block_line.strip()
        if " | " in line:
            cells = [cell.strip() for cell in line.split(" | ")]
            if header is None or len(cells) != len(header):
                header = cells
                continue
            result.append("; ".join(f"{name}: {value}" for name, value in zip(header, cells, strict=True)))
            continue
        header = None
        if line:
            result.extend(sentences(line))
    return [sentence for sentence in result if len(sentence) >= 3]


def _with_period(sentence: str) -> str:
    return sentence if sentence[-1:] in ".!?:;…)" else sentence + "."
