"""The answering brain over the database: an account's agent configuration, chat sessions whose
memory survives between requests, and the record of every turn (message, sources, context).

Used by ``wacanda ask`` and the ``/functions/v1`` answering routes; never commits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from wacanda.answering.config import RAGConfig
from wacanda.answering.kb import KnowledgeBaseRetriever
from wacanda.answering.latent_store import LatentStore
from wacanda.answering.llm import ChatModel, OpenAIChatModel
from wacanda.answering.memory import ConversationMemory
from wacanda.answering.models import AgentConfig, ChatMessageRecord, ChatSession, RagContext
from wacanda.answering.pipeline import AnsweringPipeline, clean_message
from wacanda.answering.sentence_store import SentenceStore
from wacanda.answering.types import Reply
from wacanda.errors import InvalidInput, NotFound
from wacanda.jobs import QUEUE, REPLIES_QUEUE
from wacanda.knowledge import search as kb_search
from wacanda.knowledge.embeddings import Embedder
from wacanda.knowledge.models import KnowledgeBase
from wacanda.knowledge.reranking import reranker_for
from wacanda.settings import Settings

_models: dict[tuple[str | None, str | None], ChatModel] = {}


def llm_for(settings: Settings) -> ChatModel | None:
    """The OpenAI-compatible model when ``OPENAI_BASE_URL`` or ``OPENAI_API_KEY`` is set; else
    None (offline: extractive answers)."""
    if not settings.openai_base_url and settings.openai_api_key is None:
        return None
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    cache_key = (settings.openai_base_url, key)
    if cache_key not in _models:
        _models[cache_key] = OpenAIChatModel(base_url=settings.openai_base_url, api_key=key)
    return _models[cache_key]


async def load_config(session: AsyncSession, account_id: int) -> RAGConfig:
    row = await session.get(AgentConfig, account_id)
    if row is None:
        return RAGConfig()
    try:
        return RAGConfig.model_validate(row.config)
    except ValidationError:
        return RAGConfig()  # a config saved by an older version: the defaults, never a crash


async def save_config(session: AsyncSession, account_id: int, config: RAGConfig) -> RAGConfig:
    row = await session.get(AgentConfig, account_id)
    data = config.model_dump(mode="json")
    if row is None:
        session.add(AgentConfig(account_id=account_id, config=data))
    else:
        row.config = data
        row.updated_at = func.now()
    await session.flush()
    return config


async def open_session(
    session: AsyncSession, account_id: int, session_id: int | None = None, external_id: str | None = None
) -> ChatSession:
    """The account's session ``session_id`` (404 otherwise), the one for ``external_id``, or a new one."""
    if session_id is not None:
        chat = await session.get(ChatSession, session_id, with_for_update=True)
        if chat is None or chat.account_id != account_id:
            raise NotFound(f"chat session {session_id} not found", field="session_id")
        return chat
    if external_id is not None:
        chat = await session.scalar(
            select(ChatSession)
            .where(ChatSession.account_id == account_id, ChatSession.external_id == external_id)
            .with_for_update()
        )
        if chat is not None:
            return chat
    chat = ChatSession(account_id=account_id, external_id=external_id, summary="", memory={})
    session.add(chat)
    await session.flush()
    return chat


@dataclass
class Turn:
    """What one answered message needs: the session, its memory and the pipeline to run."""

    chat: ChatSession
    memory: ConversationMemory
    pipeline: AnsweringPipeline


async def prepare(
    session: AsyncSession,
    settings: Settings,
    embedder: Embedder,
    account_id: int,
    *,
    session_id: int | None = None,
    external_id: str | None = None,
    knowledge_bases: list[str] | None = None,
    kb_field: str = "knowledge_base",
) -> Turn:
    kbs = [name.strip() for name in knowledge_bases or [] if name.strip()]
    if kbs:
        # An unknown name is the caller's mistake: say so now, not as "I don't know".
        known = set(
            await session.scalars(
                select(KnowledgeBase.name).where(
                    KnowledgeBase.account_id == account_id, KnowledgeBase.name.in_(kbs)
                )
            )
        )
        missing = sorted(set(kbs) - known)
        if missing:
            raise NotFound(f"knowledge base {missing[0]!r} not found", field=kb_field)
    chat = await open_session(session, account_id, session_id, external_id)
    config = await load_config(session, account_id)
    retriever = KnowledgeBaseRetriever(
        session, embedder, account_id, kb_search.SearchFilters(knowledge_bases=kbs), reranker_for(settings)
    )
    pipeline = AnsweringPipeline(
        retriever,
        embedder=embedder,
        config=config,
        llm=llm_for(settings),
        sentence_store=SentenceStore(session),
        latent_store=LatentStore(session),
    )
    return Turn(chat, ConversationMemory.from_dict(chat.memory or {}), pipeline)


async def record(session: AsyncSession, turn: Turn, message: str, reply: Reply) -> int:
    """Store the customer's message, the reply (and the passages behind it); return the reply's id."""
    config = turn.pipeline.config
    session.add(
        ChatMessageRecord(
            session_id=turn.chat.id,
            role="user",
            content=clean_message(message, config.max_message_chars),
            tokens_used=0,
            sentiment=reply.sentiment,
            handoff_needed=False,
        )
    )
    answer = ChatMessageRecord(
        session_id=turn.chat.id,
        role="assistant",
        content=reply.answer or reply.message or "",
        tokens_used=reply.tokens_used,
        model_used=reply.model or ("extractive" if reply.mode == "extractive" else None),
        confidence_score=reply.confidence,
        sentiment=reply.sentiment,
        handoff_needed=reply.handoff.needed,
        handoff_reason=reply.handoff.reason.value if reply.handoff.reason else None,
    )
    session.add(answer)
    await session.flush()
    if reply.passages:
        session.add(
            RagContext(
                message_id=answer.id,
                source_documents=[
                    {
                        "document": p.document,
                        "title": p.title,
                        "heading_path": list(p.heading_path),
                        "text": p.text,
                    }
                    for p in reply.passages
                ],
                similarity_scores=[p.score for p in reply.passages],
                context_used=reply.context or "\n\n".join(p.text for p in reply.passages),
            )
        )
    turn.chat.memory = turn.memory.as_dict()
    turn.chat.summary = turn.memory.summary
    turn.chat.updated_at = func.now()
    await session.flush()
    return answer.id


async def status(session: AsyncSession, settings: Settings, account_id: int) -> dict[str, Any]:
    config = await load_config(session, account_id)
    sessions = await session.scalar(
        select(func.count()).select_from(ChatSession).where(ChatSession.account_id == account_id)
    )
    counts = (
        await session.execute(
            select(
                func.count(),
                func.count().filter(ChatMessageRecord.handoff_needed),
                func.avg(ChatMessageRecord.confidence_score),
            )
            .select_from(ChatMessageRecord)
            .join(ChatSession, ChatSession.id == ChatMessageRecord.session_id)
            .where(ChatSession.account_id == account_id, ChatMessageRecord.role == "assistant")
        )
    ).one()
    llm = llm_for(settings)
    return {
        "jobs": await job_counts(session, account_id),
        "mode": "llm" if llm is not None else "extractive",
        "model": config.model if llm is not None else "extractive",
        "config": config.model_dump(mode="json"),
        "sessions": int(sessions or 0),
        "replies": int(counts[0] or 0),
        "handoffs": int(counts[1] or 0),
        "average_confidence": round(float(counts[2]), 3) if counts[2] is not None else None,
    }


_JOB_COUNTS = text(
    "SELECT queue_name, count(*) FILTER (WHERE status = 'todo'), count(*) FILTER (WHERE status = 'doing')"
    " FROM wacanda.procrastinate_jobs"
    " WHERE status IN ('todo', 'doing') AND (args->>'account_id')::bigint = :account_id"
    " GROUP BY queue_name"
)


async def job_counts(session: AsyncSession, account_id: int) -> dict[str, dict[str, int]]:
    """The account's jobs waiting and running, per queue: customers' replies, and the knowledge
    base's ingestion, preparation and re-embedding (a growing backlog is what an operator needs
    to see)."""
    counts = {queue: {"waiting": 0, "running": 0} for queue in ("replies", "knowledge_base")}
    names = {REPLIES_QUEUE: "replies", QUEUE: "knowledge_base"}
    for queue_name, waiting, running in await session.execute(_JOB_COUNTS, {"account_id": account_id}):
        if queue_name in names:
            counts[names[queue_name]] = {"waiting": int(waiting), "running": int(running)}
    return counts


def invalid_config(error: ValidationError) -> InvalidInput:
    first = error.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "config"
    return InvalidInput(f"{field}: {first['msg']}", field=field)
