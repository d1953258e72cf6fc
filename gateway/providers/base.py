"""The one interface every provider adapter implements.

An adapter speaks exactly one **wire shape** (`wire`: "openai", "anthropic"; later
"bedrock-converse", "gemini" …) and does only what is specific to the provider: URL, auth or
signing, transport, mapping its errors onto the UpstreamError tree (providers/errors.py) and
reading its usage into `pricing.Usage` (OpenAI accounting), exactly once. It never translates:
requests arrive already in its wire shape (translate/ made them from the inbound shape) and
replies and stream events leave in its wire shape.

    chat(request, model)         → Reply: the wire body as bytes, its usage, the parsed body
    chat_stream(request, model)  → ChatStream of wire `Event`s, usage updated as it arrives
    embeddings(body, model)      → Reply (OpenAI-shaped embeddings; other wires may refuse)

Failures are raised as the UpstreamError tree, never as client-library exceptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, runtime_checkable

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Reply, WireRequest
from tollgate.gateway.translate.sse import Event

__all__ = ["ChatStream", "Provider", "Reply", "TokenCounter", "WireRequest"]


class ChatStream:
    """An open streamed answer: wire-shaped events, and the usage as it arrives.

    `usage` is None until the provider has reported it (OpenAI: the final usage chunk;
    Anthropic: `message_start`, then every cumulative `message_delta`); a stream cut short keeps
    whatever was last reported. The event iterator raises UpstreamError when the provider fails
    mid-stream or ends without its terminal event. Call `aclose()` whatever happens.
    """

    usage: Usage | None

    def __init__(self, closer: Callable[[], None] | None = None) -> None:
        self.usage = None
        self._events: AsyncIterator[Event] | None = None
        self._closer = closer

    def bind(self, events: AsyncIterator[Event]) -> ChatStream:
        """Attach the event generator (which usually needs this object to report usage)."""
        self._events = events
        return self

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> Event:
        assert self._events is not None, "ChatStream used before bind()"
        return await self._events.__anext__()

    async def aclose(self) -> None:
        aclose = getattr(self._events, "aclose", None)
        if aclose is not None:
            await aclose()
        if self._closer is not None:
            self._closer()
            self._closer = None


class Provider(Protocol):
    """A configured upstream: one instance per provider entry in the current config."""

    name: str
    type: str
    wire: str
    available: bool

    async def chat(self, request: WireRequest, model: str) -> Reply:
        """Serve a non-streaming request for `model` (the upstream's model name)."""
        ...

    async def chat_stream(self, request: WireRequest, model: str) -> ChatStream:
        """Open a stream; raise before returning if the provider refused it."""
        ...

    async def embeddings(self, body: dict[str, Any], model: str) -> Reply:
        """Serve an OpenAI-shaped embeddings request."""
        ...

    def served_models(self) -> tuple[str, ...]:
        """The model names this provider answers for (config list or catalog)."""
        ...


@runtime_checkable
class TokenCounter(Protocol):
    """Optional: a provider that counts a request's input tokens itself, in its wire shape
    (Anthropic's /v1/messages/count_tokens)."""

    async def count_tokens(self, request: WireRequest, model: str) -> int: ...
