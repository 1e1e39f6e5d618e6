"""Conversation memory: the recent turns, a running summary of older ones, and the rewriting of
an elliptical follow-up ("and for Mexico?") into a standalone question.

Offline, the rewrite is a heuristic: when the new message leans on the previous one (it starts
with "and"/"what about"/"e"/"y", points back with "that"/"isso"/"eso", or is too short to stand
alone), the key terms of the previous standalone question are carried over, minus a place the
customer has just replaced ("what about in Mexico?" drops "US"). With an LLM configured the
pipeline asks it instead and falls back to this heuristic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from wacanda.answering.words import STOP_WORDS, content_terms, fold, words


def _split(text: str) -> list[str]:
    return text.split()


MAX_RECENT_TURNS = 8
MAX_SUMMARY_CHARS = 600

_FOLLOW_UP_START = re.compile(
    r"^\W*(?:and|also|what about|how about|what if|and if|ok(?:ay)?,? and|so|then|"
    r"e|e se|e pra|e para|e no|e na|e o|e a|e quanto|tambem|entao|"
    r"y|y si|y para|y en|y el|y la|y cuanto|tambien|entonces|que tal)\b"
)
_POINTING_BACK = re.compile(
    r"\b(?:that|this|it|there|them|those|these|one|ones|mine|same|"
    r"isso|isto|esse|essa|ele|ela|la|lo|le|eso|esto|ese|esa|ahi|alli|aquilo|dele|dela)\b"
)
# Places a customer swaps in a follow-up; a new one replaces the old in the carried terms.
PLACES = frozenset(
    fold(place)
    for place in _split(
        "usa america states united brazil brasil mexico méxico canada france frança francia japan "
        "japão japon spain espanha españa portugal germany alemanha alemania italy italia uk "
        "england london europe europa asia argentina chile colombia peru china india australia "
        "rio janeiro paulo são sao monterrey guadalajara cdmx chicago austin york miami texas "
        "california "
    )
)
_PLACE_STEMS = frozenset(content_terms(" ".join(PLACES)))


@dataclass
class Turn:
    role: str  # "customer" | "agent"
    text: str
    standalone: str | None = None  # the rewritten question (customer turns)
    failed: bool = False  # no answer could be given


@dataclass
class ConversationMemory:
    turns: list[Turn] = field(default_factory=list)
    summary: str = ""
    max_turns: int = MAX_RECENT_TURNS

    def add_customer(self, text: str, standalone: str | None = None, *, failed: bool = False) -> None:
        self._append(Turn("customer", text, standalone, failed))

    def add_agent(self, text: str) -> None:
        self._append(Turn("agent", text))

    def _append(self, turn: Turn) -> None:
        self.turns.append(turn)
        while len(self.turns) > self.max_turns:
            dropped = self.turns.pop(0)
            if dropped.role == "customer":
                self._summarise(dropped)

    def _summarise(self, turn: Turn) -> None:
        """Keep the gist of a turn leaving the window: its standalone question, shortened."""
        gist = (turn.standalone or turn.text).strip().replace("\n", " ")[:160]
        self.summary = (self.summary + " | " if self.summary else "") + gist
        if len(self.summary) > MAX_SUMMARY_CHARS:
            self.summary = "…" + self.summary[-(MAX_SUMMARY_CHARS - 1) :]

    @property
    def last_question(self) -> str | None:
        for turn in reversed(self.turns):
            if turn.role == "customer" and turn.standalone:
                return turn.standalone
        return None

    def failed_before(self, standalone: str) -> bool:
        """True when a similar question already went unanswered in this conversation."""
        terms = set(content_terms(standalone))
        for turn in self.turns:
            if turn.role == "customer" and turn.failed:
                previous = set(content_terms(turn.standalone or turn.text))
                if terms and previous and len(terms & previous) / len(terms | previous) >= 0.5:
                    return True
        return False

    def transcript(self, limit: int = 6) -> str:
        """Recent turns for a prompt (the summary first), newest last."""
        lines = [f"(earlier: {self.summary})"] if self.summary else []
        lines += [f"{turn.role}: {turn.text}" for turn in self.turns[-limit:]]
        return "\n".join(lines)

    def rewrite(self, message: str) -> str:
        """The heuristic standalone question for ``message``."""
        previous = self.last_question
        if previous is None or not is_follow_up(message):
            return message.strip()
        carried = carried_terms(previous, message)
        if not carried:
            return message.strip()
        return f"{message.strip()} ({' '.join(carried)})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "turns": [
                {"role": t.role, "text": t.text, "standalone": t.standalone, "failed": t.failed}
                for t in self.turns
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConversationMemory:
        memory = cls(summary=str(data.get("summary", "")))
        memory.turns = [
            Turn(str(t["role"]), str(t["text"]), t.get("standalone"), bool(t.get("failed", False)))
            for t in data.get("turns", [])
        ]
        return memory


def is_follow_up(message: str) -> bool:
    folded = fold(message).strip()
    if _FOLLOW_UP_START.search(folded) or _POINTING_BACK.search(folded):
        return True
    return len([w for w in words(message) if w not in STOP_WORDS]) <= 3


def carried_terms(previous: str, message: str) -> list[str]:
    """Words of ``previous`` worth repeating after ``message`` (as written, without repeats)."""
    present = set(content_terms(message))
    new_place = bool(present & _PLACE_STEMS)
    carried: list[str] = []
    seen: set[str] = set()
    for word in re.findall(r"[$€£]?\d+(?:[.,:]\d+)*%?|[^\W\d_]+", previous):
        folded = fold(word)
        if (folded in STOP_WORDS and word != "US") or len(folded) < 2:
            continue
        stems = content_terms(word)
        key = stems[0] if stems else folded
        if word == "US":
            key = "usa"
        if key in present or key in seen:
            continue
        if new_place and key in _PLACE_STEMS:
            continue  # the customer moved on to another place
        seen.add(key)
        carried.append(word)
    return carried[:12]
