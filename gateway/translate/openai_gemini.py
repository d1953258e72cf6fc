"""OpenAI inbound → Gemini wire: chat completions served by `generateContent` (Vertex AI).

Composed like openai_bedrock.py, with the Anthropic Messages shape in between: the request goes
through openai_anthropic's request half (messages, tool calls and results, images, tools,
tool_choice, stop, n — see that module), then anthropic_gemini's `gemini_request`; replies and
stream chunks come back through anthropic_gemini's converter and openai_anthropic's response
half (finish reasons: STOP → stop, or tool_calls when a function is called; MAX_TOKENS → length;
the safety family → content_filter).

What Gemini can say and Anthropic cannot is taken from the OpenAI body directly:
`temperature` unclamped (Gemini accepts 0–2), `seed`, `presence_penalty`, `frequency_penalty`,
and `response_format` (`json_object` → `responseMimeType: application/json`; `json_schema` →
that plus `responseJsonSchema`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.anthropic_gemini import (
    GeminiEvents,
    gemini_request,
    loads_reply,
    message_from_gemini,
)
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.openai_anthropic import OpenAIToAnthropic
from tollgate.gateway.translate.sse import Event

__all__ = ["OpenAIToGemini"]

_NUMBERS = (("temperature", "temperature"), ("seed", "seed"),
            ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))


def _completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class OpenAIToGemini:
    inbound = "openai"
    wire = "gemini"
    __slots__ = ("_context", "_events", "_openai")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._openai = OpenAIToAnthropic(context)
        self._events = GeminiEvents(_completion_id(context.request_id), context.model,
                                    context.request_id)

    def request(self, body: dict[str, Any]) -> WireRequest:
        wire = gemini_request(self._openai.request(body).body)
        generation: dict[str, Any] = wire.setdefault("generationConfig", {})
        for source, target in _NUMBERS:
            if _number(body.get(source)):
                generation[target] = body[source]
        response_format = body.get("response_format")
        kind = response_format.get("type") if isinstance(response_format, dict) else None
        if kind in ("json_object", "json_schema"):
            generation["responseMimeType"] = "application/json"
            schema = (response_format.get("json_schema") or {}).get("schema") \
                if kind == "json_schema" else None
            if isinstance(schema, dict):
                generation["responseJsonSchema"] = schema
        if not generation:
            del wire["generationConfig"]
        return WireRequest(wire)

    def response(self, reply: Reply) -> bytes:
        data = reply.data if reply.data is not None else loads_reply(reply.body)
        context = self._context
        message = message_from_gemini(data, reply.usage, _completion_id(context.request_id),
                                      context.model, context.request_id)
        return self._openai.response(Reply(b"", reply.usage, message))

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        out: list[Event] = []
        for step in self._events.feed(event, usage):
            out.extend(self._openai.feed(step, usage))
        return out
