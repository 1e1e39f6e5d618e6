"""Guess whether a text is English, Portuguese or Spanish, to pick its full-text configuration.

Function words are the cheapest reliable signal for the three languages a Lumen-style help
centre uses; anything else (or too little text to tell) gets PostgreSQL's ``simple`` config.
"""

from __future__ import annotations

_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "of",
            "to",
            "is",
            "in",
            "it",
            "you",
            "that",
            "for",
            "on",
            "with",
            "are",
            "this",
            "your",
            "be",
            "can",
            "if",
            "not",
            "or",
            "have",
            "what",
            "how",
            "my",
            "do",
            "i",
            "we",
            "will",
            "from",
            "at",
            "an",
            "by",
            "does",
            "when",
            "after",
            "before",
            "any",
        ]
    ),
    "pt": frozenset(
        [
            "o",
            "a",
            "os",
            "as",
            "de",
            "do",
            "da",
            "dos",
            "das",
            "em",
            "no",
            "na",
            "nos",
            "nas",
            "um",
            "uma",
            "para",
            "com",
            "não",
            "por",
            "que",
            "se",
            "meu",
            "minha",
            "você",
            "é",
            "são",
            "como",
            "posso",
            "mais",
            "pelo",
            "pela",
            "ao",
            "até",
            "também",
            "isso",
            "quando",
            "depois",
            "seu",
            "sua",
            "tem",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "la",
            "los",
            "las",
            "de",
            "del",
            "en",
            "un",
            "una",
            "para",
            "con",
            "no",
            "por",
            "que",
            "se",
            "mi",
            "es",
            "son",
            "como",
            "puedo",
            "más",
            "al",
            "hasta",
            "también",
            "eso",
            "cuando",
            "después",
            "su",
            "tiene",
            "qué",
            "cómo",
            "y",
            "lo",
            "le",
            "usted",
            "mis",
        ]
    ),
}
# PostgreSQL text-search configuration per language; "simple" lowercases without stemming.
TEXT_SEARCH_CONFIGS = {"en": "english", "pt": "portuguese", "es": "spanish"}
FALLBACK_CONFIG = "simple"


def detect_language(text: str, minimum_hits: int = 2) -> str | None:
    """``"en"``, ``"pt"``, ``"es"`` or ``None`` when the text is too short or ambiguous."""
    words = [word.strip(".,;:!?¿¡\"'()[]").casefold() for word in text.split()]
    scores = {
        language: sum(word in vocabulary for word in words)
        for language, vocabulary in _FUNCTION_WORDS.items()
    }
    best = max(scores, key=lambda language: scores[language])
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] < minimum_hits or ranked[0] == ranked[1]:
        return None
    return best


def text_search_config(language: str | None) -> str:
    return TEXT_SEARCH_CONFIGS.get(language or "", FALLBACK_CONFIG)
