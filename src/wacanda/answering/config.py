"""Per-agent answering configuration (the original plan's ``RAGConfig``), validated up front so a
bad value (temperature 7, threshold 2) is rejected with the field named, never used."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wacanda.answering.handoff import DEFAULT_ESCALATION_KEYWORDS

DEFAULT_PERSONA = (
    "You are Wacanda, the customer-support assistant of this business on WhatsApp. "
    "You are friendly, brief and precise."
)


class RAGConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="gpt-4o-mini", min_length=1, max_length=200)
    temperature: float = Field(default=0.2, ge=0.0, le=2.0)
    max_tokens: int = Field(default=400, ge=16, le=8192)
    #: The minimum confidence (0 to 1) for an answer to be sent; below it Wacanda abstains.
    similarity_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    max_context_documents: int = Field(default=5, ge=1, le=20)
    #: Tokens of retrieved text sent to the LLM, counted with the embedding model's tokenizer.
    context_token_budget: int = Field(default=1500, ge=100, le=100_000)
    persona: str = Field(default=DEFAULT_PERSONA, max_length=8000)
    escalation_keywords: tuple[str, ...] = DEFAULT_ESCALATION_KEYWORDS
    forbidden_topics: tuple[str, ...] = ()
    negative_sentiment_threshold: float = Field(default=-0.65, ge=-1.0, le=0.0)
    #: Hand off when the confidence is too low (else apologise, and hand off on the second failure).
    handoff_on_low_confidence: bool = True
    llm_timeout_seconds: float = Field(default=20.0, gt=0.0, le=300.0)
    llm_retries: int = Field(default=2, ge=0, le=10)
    on_llm_failure: Literal["extractive", "handoff"] = "extractive"
    #: ``lexical``: numbers and names in the answer must appear in the cited passages;
    #: ``llm``: a second LLM call judges the answer against them (lexical when it fails).
    groundedness: Literal["lexical", "llm"] = "lexical"
    rewrite_with_llm: bool = True
    max_message_chars: int = Field(default=4000, ge=100, le=100_000)

    @field_validator("escalation_keywords", "forbidden_topics")
    @classmethod
    def _clean_phrases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(phrase.strip() for phrase in value if phrase.strip())
        if any(len(phrase) > 200 for phrase in cleaned):
            raise ValueError("each phrase has at most 200 characters")
        return cleaned
