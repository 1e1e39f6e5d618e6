"""Is an LLM answer supported by the passages it cites? And is a message trying to take over the
agent? Both are checks on text, kept apart from the pipeline so they can be tested alone."""

from __future__ import annotations

import re
from collections.abc import Sequence

from wacanda.answering.words import fold, numbers

NO_ANSWER = "NO_ANSWER"
_CITATION = re.compile(r"\[(\d{1,2})\]")
# Capitalised words that are names ("Estafeta", "Lumen Protect"), not sentence starts.
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-zA-Z]{2,}(?:\s+[A-Z][a-zA-Z]{2,})*")


def cited_numbers(answer: str) -> list[int]:
    return sorted({int(n) for n in _CITATION.findall(answer)})


def strip_citations(answer: str) -> str:
    return _CITATION.sub("", answer)


def groundedness(answer: str, passages: Sequence[str]) -> tuple[float, list[str]]:
    """The share of the answer's checkable facts (numbers, names) found in ``passages``, and the
    facts that were not. An answer with nothing checkable counts as grounded (1.0)."""
    body = strip_citations(answer)
    source = " ".join(passages)
    source_numbers = numbers(source)
    folded_source = fold(source)
    facts: list[tuple[str, bool]] = []
    for number in numbers(body):
        facts.append((number, number in source_numbers or number.rstrip("%") in source_numbers))
    for name in {m.group(0) for m in _NAME.finditer(body)}:
        facts.append((name, fold(name) in folded_source))
    if not facts:
        return 1.0, []
    missing = [fact for fact, found in facts if not found]
    return 1 - len(missing) / len(facts), missing


_INJECTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b[^.?!]{0,40}\b(?:instructions?|rules|prompt|guidelines|above|previous)\b"
    r"|\b(?:system|developer|hidden|initial)\s+(?:prompt|message|instructions?)\b"
    r"|\b(?:print|reveal|show|repeat|output|leak)\b[^.?!]{0,30}\b(?:prompt|instructions?)\b"
    r"|\byou\s+are\s+now\b|\bjailbreak\b|\bdo\s+anything\s+now\b|\bact\s+as\s+(?:an?\s+)?(?:unrestricted|dan)\b"
    r"|\b(?:ignore|esqueca|esquece|ignora|ignore|olvida|olvide)\b[^.?!]{0,40}\b(?:instrucoes|instrucciones|regras|reglas)\b"
    r"|\b(?:mostre|mostra|imprima|muestra|muestre|imprime)\b[^.?!]{0,30}\b(?:prompt|instrucoes|instrucciones)\b"
)


def looks_like_injection(message: str) -> bool:
    """Instructions aimed at the model rather than a question for support."""
    return bool(_INJECTION.search(fold(message)))


def leaks(answer: str, secret: str, window: int = 60) -> bool:
    """True when ``answer`` repeats any ``window`` characters of ``secret`` (the system prompt)."""
    a, s = " ".join(fold(answer).split()), " ".join(fold(secret).split())
    if len(s) < window:
        return bool(s) and s in a
    return any(s[i : i + window] in a for i in range(0, len(s) - window + 1, max(1, window // 4)))
