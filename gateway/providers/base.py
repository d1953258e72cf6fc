"""The one interface every provider adapter implements.

The gateway's canonical shape is OpenAI's: adapters take an OpenAI chat-completions (or
embeddings) request body and give back an OpenAI-shaped body or SSE frames, plus the usage read
from the provider's own reply, converted to OpenAI accounting exactly once (pricing.Usage).
Failures are raised as the UpstreamError tree, never as client-library exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tollgate.gateway.pricing import Usage

__all__ = ["ChatStream", "Provider", "Reply"]


@dataclass(slots=True)
class Reply:
    """A complete provider answer: the OpenAI-shaped JSON body, ready to send, and its usage."""

    body: bytes
    usage: Usage | None


class ChatStream:
    """An open streamed answer: OpenAI SSE frames (`data: …\\n\\n`) and usage as it arrives.

    `usage` is None until the provider has reported it (OpenAI: the final usage chunk); a stream
    cut short keeps whatever was last reported. Call `aclose()` whatever happens.
    """

    usage: Usage | None

    def __init__(self, closer: Callable[[], None] | None = None) -> None:
        self.usage = None
        self._frames: AsyncIterator[bytes] | None = None
        self._closer = closer

    def bind(self, frames: AsyncIterator[bytes]) -> ChatStream:
        """Attach the frame generator (which usually needs this object to report usage)."""
        self._frames = frames
        return self

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> bytes:
        assert self._frames is not None, "ChatStream used before bind()"
        return await self._frames.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._frames, "aclose", None)
        if aclose is not None:
            await aclose()
        if self._closer is not None:
            self._closer()
            self._closer = None


class Provider(Protocol):
    """A configured upstream: one instance per provider entry in the current config."""

    name: str
    type: str
    available: bool

    async def chat(self, body: dict[str, Any], model: str) -> Reply:
        """Serve a non-streaming chat completion for `model` (the upstream's model name)."""
        ...

    async def chat_stream(
        self, body: dict[str, Any], model: str, include_usage: bool
    ) -> ChatStream:
        """Open a stream; raise before returning if the provider refused. `include_usage`: the
        client asked for the usage chunk (the gateway always asks the provider for it)."""
        ...

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        """Serve an embeddings request."""
        ...

    def served_models(self) -> tuple[str, ...]:
        """The model names this provider answers for (config list or catalog)."""
        ...
