"""A sentiment score in [-1, 1] for each customer message, in English, Portuguese and Spanish.

No maintained library fits offline: VADER reads English only, LeIA (its Portuguese port) is an
unmaintained single release, and the multilingual ones load models from a hub at run time. So
this is a VADER-style lexicon scorer with curated en/pt/es lexicons tuned to support chats:
negation flips and damps the next words, intensifiers and ALL CAPS amplify, "!!" and "???" add
weight, emoji count, and a lone positive word in an angry message ("Incredible.") reads as
sarcasm. Words that only name a problem the knowledge base answers ("stolen", "late fee",
"cracked") are deliberately neutral: asking about them is not being upset.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from wacanda.answering.words import fold


def _split(text: str) -> list[str]:
    return text.split()


# Valences from -4 to +4, folded (no accents). Phrases are matched before single words.
_PHRASES: dict[str, float] = {
    # English
    "sick of": -2.8, "fed up": -2.8, "sick and tired": -3.0, "worst experience": -3.2,
    "stops working": -1.6, "stopped working": -1.6, "doesn't work": -1.4, "does not work": -1.4,
    "nobody told": -1.8, "no one told": -1.8, "nobody helps": -2.0, "never agreed": -1.6,
    "no signal": -1.2, "waste of": -2.4, "rip off": -2.8, "ripped off": -2.8, "third time": -1.2,
    "again and again": -1.4, "not acceptable": -2.5, "what a joke": -2.6, "so done": -2.0,
    "thank you": 1.5, "thanks a lot": 1.8, "works great": 2.2, "great job": 2.5,
    # Portuguese
    "que absurdo": -3.0, "um absurdo": -3.0, "ate agora nada": -2.0, "ate agora": -0.6,
    "mesmo assim": -0.8, "nao funciona": -1.6, "parou de funcionar": -1.6, "ninguem resolve": -2.2,
    "ninguem me ajuda": -2.2, "to cansado": -2.2, "to cansada": -2.2, "de novo": -0.6,
    "cortaram minha linha": -1.8, "falta de respeito": -3.0, "muito obrigado": 2.0,
    "muito obrigada": 2.0, "servico pessimo": -3.2, "pessimo servico": -3.2,
    # Spanish
    "mal servicio": -2.8, "pesimo servicio": -3.2, "servicio pesimo": -3.2, "estoy harto": -2.8,
    "estoy harta": -2.8, "nadie me da": -2.0, "nadie me ayuda": -2.2, "no funciona": -1.6,
    "dos veces": -0.8, "sin internet": -1.2, "sin senal": -1.2, "una verguenza": -3.0,
    "que verguenza": -3.0, "falta de respeto": -3.0, "muchas gracias": 2.0, "me cobraron": -0.8,
}  # fmt: skip

_WORDS: dict[str, float] = {
    # English
    "ridiculous": -2.8, "garbage": -2.8, "trash": -2.6, "useless": -2.8, "worst": -3.0,
    "terrible": -3.0, "horrible": -3.0, "awful": -3.0, "pathetic": -3.0, "unacceptable": -3.0,
    "frustrated": -2.6, "frustrating": -2.6, "upset": -2.6, "angry": -3.0, "furious": -3.4,
    "annoyed": -2.2, "annoying": -2.2, "disappointed": -2.4, "disappointing": -2.4, "hate": -3.0,
    "unbelievable": -1.8, "scam": -3.0, "incompetent": -3.0, "stupid": -2.6, "sucks": -2.8,
    "joke": -1.2, "nightmare": -3.0, "disgusting": -3.2, "shameful": -3.0, "outrageous": -3.0,
    "bad": -2.0, "poor": -1.6, "seriously": -1.0, "dead": -1.2, "never": -0.4, "nobody": -0.8, "mad": -2.4, "lied": -2.6,  # noqa: E501
    "ignored": -2.2, "rude": -2.6, "hopeless": -2.6, "fuming": -3.2, "sick": -1.0,
    "good": 1.6, "great": 2.4, "excellent": 3.0, "amazing": 2.8, "awesome": 2.8, "love": 2.6,
    "perfect": 2.6, "thanks": 1.4, "thank": 1.4, "helpful": 2.0, "happy": 2.2, "nice": 1.6,
    "incredible": 2.2, "fantastic": 2.8, "wonderful": 2.8, "glad": 2.0, "appreciate": 2.0,
    # Portuguese
    "absurdo": -2.8, "pessimo": -3.2, "pessima": -3.2, "horrivel": -3.0, "irritado": -2.8,
    "irritada": -2.8, "raiva": -3.0, "lixo": -2.8, "vergonha": -2.8, "revoltado": -3.0,
    "revoltada": -3.0, "chateado": -2.4, "chateada": -2.4, "decepcionado": -2.4,
    "decepcionada": -2.4, "inutil": -2.8, "ridiculo": -2.8, "palhacada": -3.0, "cansado": -1.4,
    "cansada": -1.4, "nervoso": -2.2, "nervosa": -2.2, "descaso": -3.0, "enganado": -2.6,
    "enganada": -2.6, "ninguem": -0.8, "nunca": -0.4, "riscada": -1.0, "riscado": -1.0,
    "ruim": -2.2, "otimo": 2.4, "otima": 2.4, "bom": 1.6, "boa": 1.4, "excelente": 3.0, "obrigado": 1.4,
    "obrigada": 1.4, "adorei": 2.8, "perfeito": 2.6, "maravilhoso": 2.8, "feliz": 2.2,
    # Spanish
    "harto": -2.6, "harta": -2.6, "furioso": -3.4, "furiosa": -3.4, "molesto": -2.4,
    "molesta": -2.4, "enojado": -3.0, "enojada": -3.0, "pesimo": -3.2, "pesima": -3.2,
    "fatal": -2.6, "basura": -2.8, "verguenza": -2.8, "inaceptable": -3.0, "estafa": -3.0,
    "decepcionante": -2.4, "indignado": -3.0, "indignada": -3.0, "nadie": -0.8,
    "malo": -2.2, "mala": -2.0, "buenisimo": 2.8, "bueno": 1.6, "buena": 1.4, "excelente_es": 3.0, "gracias": 1.4,  # noqa: E501
    "genial": 2.6, "perfecto": 2.6, "encanta": 2.6, "contento": 2.2, "contenta": 2.2,
}  # fmt: skip

_NEGATIONS = frozenset(_split(
    "not no never isn't isnt don't dont doesn't doesnt didn't didnt wasn't can't cant won't "
    'nao nem nunca jamais ni tampoco '
))  # fmt: skip
_BOOSTERS: dict[str, float] = {
    "very": 0.3, "really": 0.3, "so": 0.3, "extremely": 0.5, "totally": 0.4, "absolutely": 0.4,
    "honestly": 0.2, "super": 0.3, "such": 0.2, "muito": 0.3, "muita": 0.3, "demais": 0.3,
    "totalmente": 0.4, "extremamente": 0.5, "muy": 0.3, "tan": 0.3, "super_es": 0.3,
    "realmente": 0.3, "bastante": 0.2, "slightly": -0.3, "pouco": -0.3, "poco": -0.3,
}  # fmt: skip
_EMOJI: dict[str, float] = {
    "😡": -3.2, "🤬": -3.4, "😠": -3.0, "😤": -2.4, "😞": -2.2, "😢": -2.2, "😭": -2.6, "👎": -2.2,
    "🙄": -1.8, "😒": -1.8, "💩": -2.6, "😩": -2.4, "😫": -2.4, "😔": -1.8, "😑": -1.0,
    "🙂": 1.2, "😊": 2.0, "😀": 2.0, "😃": 2.0, "😁": 2.0, "😍": 2.8, "❤": 2.6, "👍": 1.8,
    "🙏": 1.2, "🎉": 2.2, "😂": 1.0, "🥰": 2.8, "👏": 2.0,
}  # fmt: skip
_PHRASE_PATTERN = re.compile(
    r"(?<!\w)(" + "|".join(re.escape(p) for p in sorted(_PHRASES, key=len, reverse=True)) + r")(?!\w)"
)
_TOKEN = re.compile(r"[^\W\d_]+(?:['\u2019][^\W\d_]+)?|\d+|[!?.]+", re.UNICODE)
ALPHA = 15.0  # VADER's normalisation constant: s / sqrt(s * s + alpha)


@dataclass(frozen=True)
class Sentiment:
    score: float  # -1 (very negative) … +1 (very positive)
    label: str  # "negative" | "neutral" | "positive"


def score(message: str) -> float:
    """The sentiment of ``message`` in [-1, 1] (0 for empty or neutral text)."""
    if not message or not message.strip():
        return 0.0
    folded = fold(message)
    total = 0.0
    # Phrases first; their words are blanked so they do not count twice.
    for match in _PHRASE_PATTERN.finditer(folded):
        total += _PHRASES[match.group(1)] * _negated_before(folded[: match.start()])
    folded = _PHRASE_PATTERN.sub(" ", folded)
    original_tokens = _TOKEN.findall(message)
    caps = {fold(t) for t in original_tokens if len(t) > 2 and t.isupper() and t.isalpha()}
    shouting = len(caps) >= 1 and len(caps) < max(2, len([t for t in original_tokens if t.isalpha()])) * 0.8
    tokens = _TOKEN.findall(folded)
    positives_alone = 0.0
    for i, token in enumerate(tokens):
        valence = _WORDS.get(token)
        if valence is None:
            continue
        boost = sum(_BOOSTERS.get(tokens[j], 0.0) for j in range(max(0, i - 2), i))
        valence *= 1 + boost
        if shouting and token in caps:
            valence *= 1.3
        if any(tokens[j] in _NEGATIONS for j in range(max(0, i - 3), i)):
            valence *= -0.5 if valence > 0 else -0.3
        if valence > 0 and _alone_in_sentence(tokens, i):
            positives_alone += valence
        total += valence
    total += sum(value for emoji, value in _EMOJI.items() for _ in range(message.count(emoji)))
    # "Incredible." after a complaint is sarcasm: count it as negative.
    if positives_alone and total - positives_alone < -1.0:
        total -= 2 * positives_alone
    marks = "".join(t for t in tokens if t[0] in "!?")
    emphasis = min(marks.count("!"), 4) * 0.3 + (
        min(marks.count("?"), 4) * 0.25 if marks.count("?") > 1 else 0
    )
    if total < 0:
        total -= emphasis
    elif total > 0:
        total += min(marks.count("!"), 4) * 0.3
    return max(-1.0, min(1.0, total / math.sqrt(total * total + ALPHA)))


def analyse(message: str, negative_below: float = -0.5, positive_above: float = 0.5) -> Sentiment:
    value = score(message)
    label = "negative" if value < negative_below else "positive" if value > positive_above else "neutral"
    return Sentiment(round(value, 4), label)


def _negated_before(prefix: str) -> float:
    before = _TOKEN.findall(prefix)[-3:]
    return -0.5 if any(token in _NEGATIONS for token in before) else 1.0


def _alone_in_sentence(tokens: list[str], i: int) -> bool:
    """True for a word that is a sentence on its own ("Incredible." / "Great!")."""
    words_before = 0
    for token in reversed(tokens[:i]):
        if token[0] in "!?.":
            break
        words_before += 1
    if words_before:
        return False
    return i + 1 >= len(tokens) or tokens[i + 1][0] in "!?."
