"""The knowledge base's database search as an :class:`~wacanda.answering.types.AsyncRetriever`:
the pipeline runs over it unchanged once the API layer hands it a session and an account."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from wacanda.answering.types import Passage
from wacanda.knowledge import search as kb_search
from wacanda.knowledge.embeddings import Embedder
from wacanda.knowledge.reranking import Reranker


class KnowledgeBaseRetriever:
    def __init__(
        self,
        session: AsyncSession,
        embedder: Embedder,
        account_id: int,
        filters: kb_search.SearchFilters | None = None,
        reranker: Reranker | None = None,
    ) -> None:
        self.session = session
        self.embedder = embedder
        self.account_id = account_id
        self.filters = filters
        self.reranker = reranker

    async def search(self, question: str, *, limit: int) -> list[Passage]:
        # The search refuses queries over its limit; a long message's start carries its question.
        query = question.strip()[: kb_search.MAX_QUERY_CHARS]
        if not any(char.isalnum() for char in query):
            return []
        hits = await kb_search.search(
            self.session,
            self.embedder,
            self.account_id,
            query,
            self.filters,
            limit=max(1, min(limit, kb_search.MAX_LIMIT)),
            reranker=self.reranker,
        )
        return [
            Passage(
                document=hit.document,
                title=hit.title,
                heading_path=tuple(hit.heading_path),
                text=hit.text,
                score=hit.score,
                ranks=dict(hit.ranks),
            )
            for hit in hits
        ]
