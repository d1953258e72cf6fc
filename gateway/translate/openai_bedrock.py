"""OpenAI inbound → Bedrock Converse wire: chat completions served by Converse.

Composed of the two halves that already exist, with the Anthropic Messages shape in between
(Converse was modelled on it, so nothing is lost on the way): the request goes through
openai_anthropic's request half (system/developer messages, tool messages and tool calls, image
and PDF parts, tools and tool_choice, stop, n, max tokens — see that module for what is mapped,
dropped and refused), then anthropic_bedrock's `converse_request`; replies and stream events come
back through anthropic_bedrock's converter and then openai_anthropic's response half. Stop
reasons end as OpenAI finish reasons (end_turn/stop_sequence → stop, max_tokens and a full
context window → length, tool_use → tool_calls, guardrail/content filter → content_filter).

Two Bedrock-specific differences: image URLs are refused (Converse takes bytes), and
`temperature` is not clamped to Anthropic's 0–1 unless the model is an Anthropic one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.anthropic_bedrock import (
    ConverseEvents,
    converse_request,
    is_anthropic_model,
    loads_reply,
    message_from_converse,
)
from tollgate.gateway.translate.base import Context, Reply, WireRequest
from tollgate.gateway.translate.openai_anthropic import OpenAIToAnthropic
from tollgate.gateway.translate.sse import Event

__all__ = ["OpenAIToBedrock"]


def _completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id}"


class OpenAIToBedrock:
    inbound = "openai"
    wire = "bedrock-converse"
    __slots__ = ("_context", "_converse", "_openai")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._openai = OpenAIToAnthropic(context)
        self._converse = ConverseEvents(_completion_id(context.request_id), context.model)

    def request(self, body: dict[str, Any]) -> WireRequest:
        messages = self._openai.request(body).body
        wire = converse_request(messages, self._context.model)
        temperature = body.get("temperature")
        if (not is_anthropic_model(self._context.model) and "inferenceConfig" in wire
                and isinstance(temperature, int | float) and not isinstance(temperature, bool)):
            wire["inferenceConfig"]["temperature"] = temperature
        return WireRequest(wire)

    def response(self, reply: Reply) -> bytes:
        data = reply.data if reply.data is not None else loads_reply(reply.body)
        message = message_from_converse(data, reply.usage,
                                        _completion_id(self._context.request_id),
                                        self._context.model)
        return self._openai.response(Reply(b"", reply.usage, message))

    def feed(self, event: Event, usage: Usage | None) -> Sequence[Event]:
        out: list[Event] = []
        for step in self._converse.feed(event, usage):
            out.extend(self._openai.feed(step, usage))
        return out
