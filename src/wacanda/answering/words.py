"""Word-level text handling shared by the answering parts: normalising, stop words, crude stems,
sentences, numbers and the customer's language.

Everything here is deterministic and offline; it serves the extractive answerer, the in-memory
full-text index, the heuristic question rewriter and the handoff rules for English, Portuguese
and Spanish.
"""

from __future__ import annotations

import re
import unicodedata

from wacanda.knowledge.language import detect_language


def _split(text: str) -> list[str]:
    return text.split()


_WORD = re.compile(r"[$€£]?\d+(?:[.,:]\d+)*%?|[^\W\d_]+(?:['\u2019][^\W\d_]+)?", re.UNICODE)
_NUMBER = re.compile(r"(?:R\$|MX\$|US\$|\$|€|£)?\s?\d+(?:[.,:]\d+)*\s?%?")

STOP_WORDS = frozenset(
    _split(
        "a about above after again all also am an and any are as at be been before being below "
        "between both but by can could did do does doing done don't down during each else ever "
        "few for from get got had has have having he her here hers him his how however i i'm if "
        "in into is it it's its just let me more most much my myself no nor not now of off ok "
        "okay on once one only or other our out over own please pls plz same she should so some "
        "such than thank thanks that the their them then there these they this those through to "
        "too under until up us very want was we were what when where which while who whom why "
        "will with would yes you your yours hey hi hello guys really need like know tell just "
        "still my mine im ive id dont cant whats o os as um uma uns umas de do da dos das no na "
        "nos nas em e ou que se por para pra pro com sem ao aos à às é ser são foi era está estou "
        "estão tem tenho têm ter como qual quais quanto quanta quantos quantas quando onde porque "
        "porquê mais menos muito muita meu minha meus minhas seu sua seus suas você vocês eu ele "
        "ela eles elas isso isto esse essa este esta aquele lá aqui já também só até pelo pela "
        "pelos pelas num numa me te lhe nós olá oi obrigado obrigada favor dá posso pode preciso "
        "queria quero vou vai el la los las un una unos unas del al en y o u que se por para con "
        "sin es son fue era está estoy están tengo tiene tienen tener como cuál cuáles cuánto "
        "cuánta cuántos cuántas cuando cuándo dónde donde porque qué más menos muy mi mis tu tus "
        "su sus usted ustedes yo él ella ellos ellas eso esto ese esa este esta aquel allí aquí "
        "ahí ya también solo hasta le lo les nos hola gracias puedo puede necesito quiero voy va "
        "si "
    )
)

# Question words that ask for an amount, a time or a price: a sentence with a number answers them.
QUANTITY_WORDS = frozenset(
    _split(
        "how much many long fee cost costs price pay charge deposit quanto quanta quantos quantas "
        "custa custo preço taxa multa prazo cuánto cuánta cuántos cuántas cuesta costo precio "
        "cargo tarda demora when quando cuándo hours horário horario hora time days dias días "
    )
)


# Words that say what kind of answer is wanted ("how long does it take", "quanto tempo demora"),
# not what it is about: a passage need not repeat them to answer ("within 5 business days").
QUESTION_FORM_WORDS = frozenset(
    _split(
        "long take takes taking took many much often soon possible way ways happen happens "
        "tempo demora demoram leva levam acontece jeito forma tarda tardan lleva llevan pasa "
        "manera cuanto quanto quantos cuantos "
    )
)


def fold(text: str) -> str:
    """Casefolded and without accents, so "não" matches "nao" and "Cuánto" matches "cuanto"."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(char for char in decomposed if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    """Folded word and number tokens (``$10``, ``2,5``, ``19:00`` and ``25%`` stay whole)."""
    return _WORD.findall(fold(text))


_SUFFIXES = (
    "amentos", "imentos", "amento", "imento", "mente", "ações", "acoes", "ación", "acion", "ções",
    "coes", "ção", "cao", "ciones", "cion", "ings", "ing", "edly", "ed", "ies", "es", "s",
)  # fmt: skip


def stem(word: str) -> str:
    """A crude stem: drop a common suffix, then keep at most six characters.

    Good enough to match "shipping"/"shipped"/"ship" and "cobrança"/"cobrar" for ranking and term
    overlap; never used for display."""
    if not word[:1].isalpha() or len(word) <= 3:
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word[:6]


def content_terms(text: str) -> list[str]:
    """Stems of the words that carry meaning (stop words dropped), in order, with repeats."""
    return [stem(word) for word in words(text) if word not in STOP_WORDS and len(word) > 1]


def topic_terms(text: str) -> list[str]:
    """:func:`content_terms` without the words of the question's form (:data:`QUESTION_FORM_WORDS`)."""
    return [
        stem(word)
        for word in words(text)
        if word not in STOP_WORDS and word not in QUESTION_FORM_WORDS and len(word) > 1
    ]


def numbers(text: str) -> set[str]:
    """Numbers as written (``R$ 39,90``, ``$10``, ``25%``), normalised for comparison."""
    return {_normalise_number(match) for match in _NUMBER.findall(text) if any(c.isdigit() for c in match)}


def _normalise_number(value: str) -> str:
    digits = re.sub(r"[^\d.,:%]", "", value).rstrip(".,")
    return digits.replace(",", ".")


_ABBREVIATIONS = (
    "a.m.", "p.m.", "e.g.", "i.e.", "etc.", "vs.", "mr.", "mrs.", "ms.", "dr.", "st.", "no.",
    "approx.", "min.", "max.", "u.s.", "sr.", "sra.", "av.", "núm.", "nº.", "pág.", "ex.",
)  # fmt: skip
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]»\u201d\u2019]*\s+|\n+")


def sentences(text: str) -> list[str]:
    """Sentences and list items of a passage, exactly as written (abbreviations do not split)."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        candidate = text[start : match.start()].rstrip()
        tail = candidate.rsplit(None, 1)[-1].casefold() if candidate.split() else ""
        if "\n" not in match.group() and (tail in _ABBREVIATIONS or _next_is_lower(text, match.end())):
            continue
        if candidate.strip():
            pieces.append(candidate.strip())
        start = match.end()
    rest = text[start:].strip()
    if rest:
        pieces.append(rest)
    return [piece.strip(" -*•\t") for piece in pieces if any(char.isalnum() for char in piece)]


def _next_is_lower(text: str, position: int) -> bool:
    return position < len(text) and text[position].islower()


_LANGUAGE_HINTS = {
    "pt": frozenset(
        _split(
            "não você vocês voces nao quero tô to tá ta pra obrigado obrigada olá oi fatura celular "
            "linha conta atendente atendimento humano quanto custa preciso falar com alguém posso como qual minha meu "  # noqa: E501
            "está estou tem uma pessoa vou também já isso é são entrega loja "
        )
    ),
    "es": frozenset(
        _split(
            "usted ustedes quiero hablar necesito cuánto cuanto cuesta gracias hola factura línea "
            "linea cuenta teléfono telefono porfa pásame puedo cómo como cuál mi estoy tiene una "
            "persona voy también ya eso es son envío tienda qué alguien asesor y me lo si "
        )
    ),
}


def guess_language(text: str, default: str = "en") -> str:
    """``en``, ``pt`` or ``es`` for a customer's message, even a short one ("atendimento humano").

    Function-word counting first (the knowledge base's detector); short messages fall back to
    words typical of each language and to its letters (ã/õ/ç Portuguese, ñ/¿/¡ Spanish)."""
    detected = detect_language(text)
    if detected is not None:
        return detected
    lowered = text.casefold()
    if any(char in lowered for char in "ãõç"):
        return "pt"
    if any(char in lowered for char in "ñ¿¡"):
        return "es"
    tokens = re.findall(r"[^\W\d_]+", lowered)
    scores = {
        language: sum(token in hints for token in tokens) for language, hints in _LANGUAGE_HINTS.items()
    }
    best = max(scores, key=lambda language: scores[language])
    if scores[best] and list(scores.values()).count(scores[best]) == 1:
        return best
    return default
