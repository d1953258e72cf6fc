"""OpenAI chat completions: the usage object, chunk builders and the inbound stream writer.

A stream is `data: {chunk}` frames ending with `data: [DONE]`; usage comes in one extra chunk
with `choices: []` just before [DONE], and only when the client set
`stream_options.include_usage`.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollgate.gateway.errors import TollgateError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.sse import Event, encode

__all__ = ["DONE", "OpenAIOutbound", "chunk", "commits", "usage_json"]

DONE = Event(b"[DONE]")
_DONE_DATA = b"[DONE]"
_DONE_FRAME = b"data: [DONE]\n\n"


def usage_json(usage: Usage) -> dict[str, Any]:
    """OpenAI's usage object: prompt includes cached (and cache-written) tokens, completion
    includes reasoning — the accounting `Usage` already keeps."""
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
    }


def chunk(ident: str, created: int, model: str, delta: dict[str, Any],
          finish_reason: str | None = None) -> Event:
    """One `chat.completion.chunk` with a single choice."""
    return Event.of(None, {
        "id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None,
                     "finish_reason": finish_reason}],
    })


def commits(event: Event) -> bool:
    """Every OpenAI wire event commits: the first chunk (role) is sent together with the first
    generated token, so holding it back would only delay the client, never save a failover."""
    return True


class OpenAIOutbound:
    """Writes an OpenAI-shaped stream to the client."""

    __slots__ = ("_request_id",)

    def __init__(self, request_id: str) -> None:
        self._request_id = request_id

    def write(self, event: Event) -> bytes:
        return encode(event)

    def is_end(self, event: Event) -> bool:
        return event.data == _DONE_DATA

    def counts_output(self, event: Event) -> bool:
        return b'"content"' in event.data

    def error(self, error: TollgateError) -> bytes:
        return b"data: " + error.body() + b"\n\n"

    def stop(self, model: str, usage: Usage | None) -> bytes:
        final = {
            "id": f"chatcmpl-{self._request_id}", "object": "chat.completion.chunk",
            "created": 0, "model": model,
            "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "length"}],
        }
        return b"data: " + orjson.dumps(final) + b"\n\n" + _DONE_FRAME
