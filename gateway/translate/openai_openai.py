"""OpenAI inbound → OpenAI wire: pass-through. The body and every event go on unchanged (the
adapter only swaps the model); nothing is parsed here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.sse import Event

__all__ = ["OpenAIPassthrough"]


class OpenAIPassthrough:
    inbound = "openai"
    wire = "openai"
    __slots__ = ("_context",)

    def __init__(self, context: Context) -> None:
        self._context = context

    def request(self, body: dict[str, Any]) -> WireRequest:
        # the usage-only chunk reaches the client only if it asked for it
        return WireRequest(body, usage_event=self._context.include_usage)

    def response(self, reply: Reply) -> bytes:
        return reply.body

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        return (event,)
