"""When a person must take over, and why.

The rules read the customer's own message, before any retrieval: an explicit request for a
person (in many phrasings, English, Portuguese and Spanish), an escalation keyword from the
agent's configuration, a topic the agent never handles, or strongly negative sentiment. The
pipeline adds the reasons that need an answer attempt: low confidence and the same question
failing twice.

Requests for a person are told apart from questions that merely mention one ("what hours are
your human agents available?", "can another person pick up my order?") by requiring a verb of
asking or connecting next to the person word, or a message that is nothing but the request
("agent", "atendimento humano").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from wacanda.answering.types import Handoff, HandoffReason
from wacanda.answering.words import fold

DEFAULT_ESCALATION_KEYWORDS: tuple[str, ...] = (
    # English
    "lawyer", "attorney", "lawsuit", "sue you", "legal action", "small claims", "fraud",
    "fraudulent", "chargeback", "charge back", "dispute the charge", "cancel my account",
    "cancel my service", "cancel my line", "cancel my plan", "close my account", "FCC",
    "better business bureau", "BBB", "attorney general", "ombudsman", "identity theft",
    # Portuguese
    "advogado", "processo judicial", "processar vocês", "justiça", "fraude", "golpe", "estorno",
    "cancelar minha conta", "cancelar a conta", "cancelar minha linha", "cancelar meu plano",
    "Procon", "Anatel", "Reclame Aqui", "consumidor.gov",
    # Spanish
    "abogado", "demanda", "demandar", "contracargo", "cancelar mi cuenta", "cancelar mi línea",
    "cancelar mi plan", "dar de baja", "PROFECO", "CONDUSEF", "queja formal",
)  # fmt: skip

_PERSON = (
    r"(?:human|humans|person|people|agent|representative|rep|someone|somebody|anyone|anybody|"
    r"supervisor|manager|operator|staff|employee|associate|"
    r"atendente|pessoa|humano|humana|alguem|alguien|agente|gerente|operador|operadora|consultor|"
    r"consultora|funcionario|funcionaria|representante|persona|asesor|asesora|ejecutivo|ejecutiva)"
)
_ARTICLE = r"(?:(?:a|an|the|some|one|real|live|actual|um|uma|o|a|algum|alguma|un|una|el|la|algun|alguna|de verdade|de verdad)\s+){0,3}"  # noqa: E501
_HUMAN_REQUEST_PATTERNS = [
    # talk / speak / chat with a person, in three languages
    rf"\b(?:talk|speak|chat|speaking|talking)\s+(?:to|with)\s+{_ARTICLE}{_PERSON}\b",
    rf"\b(?:falar|conversar|fala|converso|falo)\s+com\s+{_ARTICLE}{_PERSON}\b",
    rf"\b(?:hablar|platicar|conversar|hablo|hable)\s+con\s+{_ARTICLE}{_PERSON}\b",
    # transfer / connect / put me through
    r"\b(?:transfer|connect|put|pass|forward|escalate|send)\s+me\s+(?:to|through|with|over)\b",
    r"\b(?:please\s+)?connect\s+me\b",
    r"\bme\s+(?:passa|passe|transfere|transfira|coloca|coloque|encaminha|encaminhe|conecta)\s+(?:pra|para|com|a|ao)\b",
    r"\b(?:pasame|pasenme|paseme|comunicame|comuniqueme|comuniquenme|transfiereme|transfierame|conectame)\b",
    r"\b(?:comunicarme|pasarme)\s+con\s+" + _ARTICLE + _PERSON + r"\b",
    r"\b(?:me\s+)?(?:pasa|pase|comunica|comunique|transfiere|transfiera)\s+(?:con|a)\s+"
    + _ARTICLE
    + _PERSON
    + r"\b",
    # I want / get me / need a person
    rf"\b(?:get|give|want|need|request|prefer)\s+(?:me\s+)?{_ARTICLE}(?:human|person|agent|representative|rep|supervisor|manager|operator)\b",
    rf"\b(?:quero|queria|preciso|prefiro|quiero|quisiera|necesito|prefiero)\s+(?:de\s+)?{_ARTICLE}(?:atendente|atendimento humano|humano|pessoa|agente|asesor|persona|supervisor|gerente)\b",  # noqa: E501
    rf"\b(?:me\s+puede|me\s+pueden|puede|pueden)\s+atender\s+{_ARTICLE}{_PERSON}\b",
    r"\b(?:atendimento|atencion)\s+(?:humano|humana|personalizado|personal)\s*(?:por favor|pfv|pf|agora|ja)?\s*[.!]*$",  # noqa: E501
    r"^\W*(?:atendimento|atencion)\s+(?:humano|humana)\b",
    # a person who is real, not a bot
    r"\b(?:real|live|actual)\s+(?:person|human|agent|people)\b",
    r"\bpessoa\s+de\s+verdade\b|\bpersona\s+(?:real|de\s+verdad)\b|\batendente\s+humano\b",
    r"\bnot\s+(?:a|the)\s+(?:bot|robot|machine)\b|\bnao\s+(?:um|o)\s+(?:robo|bot)\b|\bno\s+(?:un|el)\s+(?:robot|bot)\b",
    r"\b(?:stop|no\s+more|enough\s+with)\s+(?:the\s+|this\s+)?(?:bot|robot|automated)\b",
    r"\b(?:human|agent|person|operator|representative)\s*(?:please|pls|plz|now)\b",
    # anyone I can talk to / someone to call me back
    r"\b(?:anyone|someone|somebody|anybody)\b[^.?!]{0,40}\b(?:talk|speak)\s+to\b",
    r"\bwho\s+(?:can|could|should|do)\s+i\s+(?:talk|speak)\s+to\b",
    r"\b(?:person|human|someone|somebody)\s+i\s+can\s+(?:call|talk\s+to|speak\s+to|speak\s+with|talk\s+with)\b",
    r"\bcall\s+me\s+back\b|\bcallback\b|\bcall\s+back\b|\bgive\s+me\s+a\s+call\b|\b(?:can|could)\s+(?:someone|somebody|you)\s+call\s+me\b",
    r"\bme\s+(?:liga|ligue|liguem|ligar)\b|\bretorno\s+(?:por|de)\s+(?:telefone|ligacao)\b",
    r"\b(?:llamenme|llameme|llamame)\b|\b(?:me\s+pueden|me\s+puede|pueden|puede)\s+llamar\b|\bque\s+me\s+llamen\b",
    r"\b(?:supervisor|manager|gerente)\b[^.?!]{0,30}\bplease\b|\b(?:speak|talk)\s+to\s+(?:your|a)\s+(?:supervisor|manager)\b",
]
_HUMAN_REQUEST = [re.compile(pattern) for pattern in _HUMAN_REQUEST_PATTERNS]
# A message that is only the request: "agent", "human please", "operator!", "atendente".
_BARE_REQUEST = re.compile(
    r"^\W*(?:an?\s+|um\s+|uma\s+|un\s+|una\s+)?(?:live\s+|real\s+)?(?:agent|human|operator|representative|rep|person|"
    r"supervisor|manager|customer\s+service|atendente|humano|pessoa|agente|asesor|operador|persona|"
    r"atendimento|atencion\s+al\s+cliente|servicio\s+al\s+cliente)"
    r"(?:\s+(?:please|pls|plz|por\s+favor|porfa|pfv|now|agora|ya))?\W*$"
)


def human_request(message: str) -> str | None:
    """The phrase that asks for a person, or None."""
    folded = fold(message).strip()
    if _BARE_REQUEST.match(folded):
        return folded
    for pattern in _HUMAN_REQUEST:
        match = pattern.search(folded)
        if match:
            return match.group(0).strip()
    return None


def keyword_in(message: str, keywords: Sequence[str]) -> str | None:
    """The first keyword (a word or phrase; case and accents ignored) found as whole words."""
    folded = fold(message)
    for keyword in keywords:
        key = fold(keyword).strip()
        if key and re.search(rf"(?<!\w){re.escape(key)}(?!\w)", folded):
            return keyword
    return None


def decide(
    message: str,
    *,
    sentiment: float,
    escalation_keywords: Sequence[str] = DEFAULT_ESCALATION_KEYWORDS,
    forbidden_topics: Sequence[str] = (),
    negative_sentiment_threshold: float = -0.65,
) -> Handoff:
    """The handoff the message itself calls for, before any answer is tried."""
    topic = keyword_in(message, forbidden_topics)
    if topic is not None:
        return Handoff(True, HandoffReason.FORBIDDEN_TOPIC, topic)
    request = human_request(message)
    if request is not None:
        return Handoff(True, HandoffReason.HUMAN_REQUEST, request)
    keyword = keyword_in(message, escalation_keywords)
    if keyword is not None:
        return Handoff(True, HandoffReason.ESCALATION_KEYWORD, keyword)
    if sentiment < negative_sentiment_threshold:
        return Handoff(True, HandoffReason.NEGATIVE_SENTIMENT, f"{sentiment:.2f}")
    return Handoff.none()
