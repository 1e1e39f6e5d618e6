"""Chat models behind one narrow interface, and the OpenAI-compatible implementation.

:class:`OpenAIChatModel` uses the ``openai`` SDK against ``OPENAI_BASE_URL`` (OpenAI, Azure,
vLLM, Ollama, llama.cpp's server …). The SDK retries connection errors, 408/409/429 and 5xx with
exponential backoff; every failure that is left (timeouts, refusals, a malformed body) becomes
one :class:`LLMError`, so the pipeline has one thing to catch before it falls back. The pipeline
retries on its own (``RAGConfig.llm_retries``, short backoff), so the client's own retries default
to none: retries would otherwise multiply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict


class ChatMessage(TypedDict):
    role: str  # "system" | "user" | "assistant"
    content: str


@dataclass(frozen=True)
class Completion:
    text: str
    model: str
    tokens_used: int


class LLMError(Exception):
    """The model could not answer: timeout, connection, HTTP error or malformed response."""


class ChatModel(Protocol):
    async def complete(
        self, messages: Sequence[ChatMessage], *, model: str, temperature: float, max_tokens: int
    ) -> Completion: ...

    def stream(
        self, messages: Sequence[ChatMessage], *, model: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[str]:
        """Text deltas as the model writes them."""
        ...


class OpenAIChatModel:
    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 20.0,
        max_retries: int = 0,
        client: Any = None,
    ) -> None:
        if client is None:
            from openai import AsyncOpenAI

            client = AsyncOpenAI(
                base_url=base_url, api_key=api_key or "none", timeout=timeout, max_retries=max_retries
            )
        self._client = client

    async def complete(
        self, messages: Sequence[ChatMessage], *, model: str, temperature: float, max_tokens: int
    ) -> Completion:
        import openai

        try:
            response = await self._client.chat.completions.create(
                model=model, messages=list(messages), temperature=temperature, max_tokens=max_tokens
            )
            choice = response.choices[0]
            text = choice.message.content or ""
            usage = getattr(response, "usage", None)
            tokens = int(getattr(usage, "total_tokens", 0) or 0)
            return Completion(text=text, model=str(response.model or model), tokens_used=tokens)
        except openai.OpenAIError as error:
            raise LLMError(_describe(error)) from error
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
            raise LLMError(f"malformed response: {error}") from error

    async def stream(
        self, messages: Sequence[ChatMessage], *, model: str, temperature: float, max_tokens: int
    ) -> AsyncIterator[str]:
        import openai

        try:
            chunks = await self._client.chat.completions.create(
                model=model,
                messages=list(messages),
                temperature=temperature,
                max_tokens=max_tokens,
                stream=True,
            )
            async for chunk in chunks:
                if not chunk.choices:
                    continue
                delta = chunk.choices[0].delta.content
                if delta:
                    yield delta
        except openai.OpenAIError as error:
            raise LLMError(_describe(error)) from error
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as error:
            raise LLMError(f"malformed stream: {error}") from error


def _describe(error: Exception) -> str:
    status = getattr(error, "status_code", None)
    name = type(error).__name__
    return f"{name} (HTTP {status})" if status else name
