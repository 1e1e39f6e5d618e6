"""The answering brain's narrow interface: what it needs from retrieval, and what it gives back.

Retrieval is a :class:`Retriever` (the in-memory index of :mod:`wacanda.answering.inmemory` now,
the knowledge base's database search later): the brain never knows which one it has.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk. ``score`` is the fused retrieval score (higher is better); ``ranks``
    holds the 1-based rank per retriever that found it (``"vector"``, ``"fulltext"``), when known."""

    document: str
    title: str
    heading_path: tuple[str, ...]
    text: str
    score: float
    ranks: dict[str, int] = field(default_factory=dict, hash=False, compare=False)

    @property
    def heading(self) -> str:
        return self.heading_path[-1] if self.heading_path else ""


class Retriever(Protocol):
    def search(self, question: str, *, limit: int) -> list[Passage]:
        """The best passages for ``question``, best first (may be empty)."""
        ...


class AsyncRetriever(Protocol):
    """The same, for retrieval that awaits a database (the knowledge base's search)."""

    async def search(self, question: str, *, limit: int) -> list[Passage]: ...


@dataclass(frozen=True)
class Citation:
    """``[number]`` in an answer points at this document and heading (the plan's DocumentSource)."""

    number: int
    document: str
    heading: str
    title: str = ""


class HandoffReason(enum.StrEnum):
    HUMAN_REQUEST = "human_request"
    ESCALATION_KEYWORD = "escalation_keyword"
    NEGATIVE_SENTIMENT = "negative_sentiment"
    LOW_CONFIDENCE = "low_confidence"
    REPEATED_FAILURE = "repeated_failure"
    FORBIDDEN_TOPIC = "forbidden_topic"
    LLM_FAILURE = "llm_failure"
    UNSAFE_MESSAGE = "unsafe_message"


@dataclass(frozen=True)
class Handoff:
    needed: bool
    reason: HandoffReason | None = None
    detail: str = ""  # the matched phrase, keyword or score, for the agent who takes over

    @classmethod
    def none(cls) -> Handoff:
        return cls(False)


@dataclass
class Reply:
    """What the pipeline decided for one customer message.

    ``answer`` is None when nothing may be sent (abstention); then ``handoff.needed`` is True or
    ``message`` holds a polite "I don't know" to send instead. ``mode`` says which path produced
    the answer: ``"llm"``, ``"extractive"`` or ``"none"``."""

    answer: str | None
    citations: list[Citation]
    confidence: float
    handoff: Handoff
    sentiment: float
    language: str
    standalone_question: str
    mode: str = "none"
    message: str | None = None  # the text to send when there is no answer (an apology, a handoff note)
    passages: list[Passage] = field(default_factory=list)  # the context used, for rag_contexts
    context: str = ""  # the text sent to the LLM (empty offline)
    model: str | None = None
    tokens_used: int = 0
    events: list[str] = field(default_factory=list)  # retries, fallbacks, groundedness notes

    def as_json(self) -> dict[str, object]:
        """The CLI/API contract: ``{"answer", "sources", "confidence", "handoff"}`` plus details."""
        return {
            "answer": self.answer,
            "sources": [{"document": c.document, "heading": c.heading} for c in self.citations],
            "confidence": round(self.confidence, 3),
            "handoff": {
                "needed": self.handoff.needed,
                "reason": self.handoff.reason.value if self.handoff.reason else None,
            },
            "message": self.message,
            "sentiment": round(self.sentiment, 3),
            "language": self.language,
            "mode": self.mode,
        }
