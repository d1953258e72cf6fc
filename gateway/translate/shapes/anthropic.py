"""Anthropic messages: the usage object, stream-event builders and the inbound stream writer.

A stream is named events: `message_start` (the message with empty content and the input-side
usage), per content block `content_block_start` / `content_block_delta`… / `content_block_stop`,
`message_delta` (stop reason and cumulative usage), `message_stop`; `ping` may come anywhere and
`error` ends a failed stream. Anthropic's `input_tokens` excludes cache reads and writes.
"""

from __future__ import annotations

from typing import Any

from tollgate.gateway.errors import InvalidRequest, TollgateError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.sse import Event, encode

__all__ = [
    "AnthropicOutbound",
    "custom_tools",
    "input_schema",
    "unsupported",
    "block_delta",
    "block_start",
    "block_stop",
    "commits",
    "message_delta",
    "message_start",
    "message_stop",
    "usage_json",
]

_LIFECYCLE = frozenset({"message_start", "content_block_start", "ping"})


def unsupported(message: str, param: str) -> InvalidRequest:
    """A request another provider's wire cannot carry (400, code `unsupported_for_provider`)."""
    return InvalidRequest(message, param=param, code="unsupported_for_provider")


def custom_tools(tools: Any) -> list[dict[str, Any]]:
    """An Anthropic `tools` array, checked for what other wires can carry: client tools only
    (server tools such as web search run on Anthropic's side and nowhere else)."""
    if not isinstance(tools, list):
        raise unsupported("`tools` must be an array", "tools")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") not in (None, "custom"):
            kind = tool.get("type") if isinstance(tool, dict) else None
            raise unsupported(f"`tools[{i}]`: the server tool {kind!r} exists only on Anthropic",
                              f"tools[{i}]")
    return tools


def input_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """A tool's JSON Schema for its input; a tool without one takes an empty object."""
    return tool.get("input_schema") or {"type": "object", "properties": {}}


def commits(event: Event) -> bool:
    """Anthropic announces a message (`message_start`, `content_block_start`, `ping`) before it
    generates, and an overload can still follow as an `error` event; the first delta — or the
    end — commits."""
    return event.name not in _LIFECYCLE


def usage_json(usage: Usage) -> dict[str, Any]:
    """Anthropic's usage object from normalised usage: the cache classes come out of input."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    writes = min(usage.cache_write_tokens, usage.input_tokens - cached)
    writes_1h = min(usage.cache_write_1h_tokens, writes)
    return {
        "input_tokens": usage.input_tokens - cached - writes,
        "cache_creation_input_tokens": writes,
        "cache_read_input_tokens": cached,
        "cache_creation": {"ephemeral_5m_input_tokens": writes - writes_1h,
                           "ephemeral_1h_input_tokens": writes_1h},
        "output_tokens": usage.output_tokens,
    }


def message_start(ident: str, model: str, usage: dict[str, Any]) -> Event:
    return Event.of("message_start", {"type": "message_start", "message": {
        "id": ident, "type": "message", "role": "assistant", "model": model, "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": usage,
    }})


def block_start(index: int, block: dict[str, Any]) -> Event:
    return Event.of("content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": block})


def block_delta(index: int, delta: dict[str, Any]) -> Event:
    return Event.of("content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta})


def block_stop(index: int) -> Event:
    return Event.of("content_block_stop", {"type": "content_block_stop", "index": index})


def message_delta(stop_reason: str | None, usage: dict[str, Any],
                  stop_sequence: str | None = None) -> Event:
    return Event.of("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
        "usage": usage,
    })


def message_stop() -> Event:
    return Event.of("message_stop", {"type": "message_stop"})


class AnthropicOutbound:
    """Writes an Anthropic-shaped stream to the client, keeping track of the open content block
    (by its start/stop events, no JSON parsing) so an early stop can close it first."""

    __slots__ = ("_blocks", "_open")

    def __init__(self, request_id: str) -> None:
        self._blocks = 0
        self._open = False

    def write(self, event: Event) -> bytes:
        name = event.name
        if name == "content_block_start":
            self._blocks += 1
            self._open = True
        elif name == "content_block_stop":
            self._open = False
        return encode(event)

    def is_end(self, event: Event) -> bool:
        return event.name == "message_stop"

    def counts_output(self, event: Event) -> bool:
        return event.name == "content_block_delta"

    def error(self, error: TollgateError) -> bytes:
        return encode(Event.of("error", error.to_anthropic()))

    def stop(self, model: str, usage: Usage | None) -> bytes:
        frames = []
        if self._open:
            frames.append(encode(block_stop(self._blocks - 1)))
            self._open = False
        output = usage.output_tokens if usage is not None else 0
        frames.append(encode(message_delta("max_tokens", {"output_tokens": output})))
        frames.append(encode(message_stop()))
        return b"".join(frames)
