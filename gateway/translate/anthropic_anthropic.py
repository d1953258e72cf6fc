"""Anthropic inbound → Anthropic wire: pass-through. The body and every event go on unchanged;
the client's `anthropic-beta` header (the only one the API layer lets through) is forwarded,
because beta features only mean something to Anthropic itself."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.sse import Event

__all__ = ["AnthropicPassthrough"]


class AnthropicPassthrough:
    inbound = "anthropic"
    wire = "anthropic"
    __slots__ = ("_context",)

    def __init__(self, context: Context) -> None:
        self._context = context

    def request(self, body: dict[str, Any]) -> WireRequest:
        return WireRequest(body, headers=self._context.headers)

    def response(self, reply: Reply) -> bytes:
        return reply.body

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        return (event,)
