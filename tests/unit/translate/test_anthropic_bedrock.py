"""Anthropic inbound → Bedrock Converse wire: exact request bodies, responses, stream events
and usage."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.anthropic_bedrock import AnthropicToBedrock
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.sse import Event

CLAUDE = "global.anthropic.claude-sonnet-4-5-20250929-v1:0"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
USAGE = Usage(input_tokens=3400, output_tokens=200, cached_input_tokens=2000,
              cache_write_tokens=400, cache_write_1h_tokens=100)


def translator(model: str = CLAUDE, **context: Any) -> AnthropicToBedrock:
    return AnthropicToBedrock(Context(**{"model": model, "request_id": "req1", **context}))


def wire(body: dict[str, Any], model: str = CLAUDE) -> dict[str, Any]:
    return translator(model).request(body).body


def test_system_sampling_and_stop_sequences_become_converse_fields():
    body = {"model": "m", "max_tokens": 100, "system": "be brief", "temperature": 0.3,
            "top_p": 0.8, "top_k": 5, "stop_sequences": ["END"], "stream": True,
            "metadata": {"user_id": "u"}, "messages": [{"role": "user", "content": "hi"}]}
    assert wire(body) == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.3, "topP": 0.8,
                            "stopSequences": ["END"]},
        "additionalModelRequestFields": {"top_k": 5}}
    assert "additionalModelRequestFields" not in wire(body, model="meta.llama3-70b-instruct-v1:0")


def test_cache_markers_become_cache_points_after_their_block():
    body = {"max_tokens": 5,
            "system": [{"type": "text", "text": "rules", "cache_control": {"type": "ephemeral"}}],
            "tools": [{"name": "weather", "input_schema": WEATHER,
                       "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "doc", "cache_control": {"type": "ephemeral"}},
                {"type": "text", "text": ""},
                {"type": "text", "text": "question"}]}]}
    out = wire(body)
    assert out["system"] == [{"text": "rules"}, {"cachePoint": {"type": "default"}}]
    assert out["messages"][0]["content"] == [
        {"text": "doc"}, {"cachePoint": {"type": "default"}}, {"text": "question"}]
    assert out["toolConfig"]["tools"] == [
        {"toolSpec": {"name": "weather", "inputSchema": {"json": WEATHER}}},
        {"cachePoint": {"type": "default"}}]


def test_images_and_documents_are_sent_as_bytes_and_urls_are_refused():
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                     "data": "AAA="}},
        {"type": "document", "title": "Q3 report.pdf",
         "source": {"type": "base64", "media_type": "application/pdf", "data": "JVB="}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                        "data": "plain words"}}]}]}
    assert wire(body)["messages"][0]["content"] == [
        {"image": {"format": "jpeg", "source": {"bytes": "AAA="}}},
        {"document": {"format": "pdf", "name": "Q3 report pdf", "source": {"bytes": "JVB="}}},
        {"text": "plain words"}]
    url = {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}}]}]}
    with pytest.raises(InvalidRequest, match="base64"):
        wire(url)


def test_tool_use_and_results_and_each_tool_choice():
    body = {"max_tokens": 5, "tools": [{"name": "weather", "description": "W",
                                        "input_schema": WEATHER}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "s1"},
                    {"type": "tool_use", "id": "t1", "name": "weather",
                     "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "is_error": True,
                     "content": [{"type": "text", "text": "timeout"}]},
                    {"type": "text", "text": "try again"}]}]}
    out = wire(body)
    assert out["messages"][1:] == [
        {"role": "assistant", "content": [
            {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s1"}}},
            {"toolUse": {"toolUseId": "t1", "name": "weather", "input": {"city": "Oslo"}}}]},
        {"role": "user", "content": [
            {"toolResult": {"toolUseId": "t1", "content": [{"text": "timeout"}],
                            "status": "error"}},
            {"text": "try again"}]}]
    assert out["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "weather", "description": "W", "inputSchema": {"json": WEATHER}}}]}
    choices = {"any": {"any": {}}, "tool": {"tool": {"name": "weather"}}}
    for kind, expected in choices.items():
        choice = {"type": kind, "name": "weather"} if kind == "tool" else {"type": kind}
        assert wire({**body, "tool_choice": choice})["toolConfig"]["toolChoice"] == expected
    # Converse has no "none": tools stay only because the history holds tool blocks
    none = wire({**body, "tool_choice": {"type": "none"}})["toolConfig"]
    assert "toolChoice" not in none
    fresh = {**body, "messages": body["messages"][:1], "tool_choice": {"type": "none"}}
    assert "toolConfig" not in wire(fresh)


def test_consecutive_turns_of_one_role_are_merged():
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "a"},
                                          {"role": "user", "content": "b"}]}
    assert wire(body)["messages"] == [{"role": "user", "content": [{"text": "a"},
                                                                   {"text": "b"}]}]


def test_server_tools_are_refused():
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "web_search_20250305", "name": "web_search"}]}
    with pytest.raises(InvalidRequest, match="web_search"):
        wire(body)


def test_a_converse_response_becomes_a_message_with_its_usage():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "plan", "signature": "sig"}}},
        {"text": "Let me check."},
        {"toolUse": {"toolUseId": "tu1", "name": "weather", "input": {"city": "Oslo"}}}]}},
        "stopReason": "tool_use", "usage": {"inputTokens": 1000}}
    body = json.loads(translator().response(Reply(orjson.dumps(data), USAGE, data)))
    assert body == {
        "id": "msg_req1", "type": "message", "role": "assistant", "model": CLAUDE,
        "content": [{"type": "thinking", "thinking": "plan", "signature": "sig"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "tu1", "name": "weather",
                     "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 400,
                  "cache_read_input_tokens": 2000,
                  "cache_creation": {"ephemeral_5m_input_tokens": 300,
                                     "ephemeral_1h_input_tokens": 100},
                  "output_tokens": 200}}


@pytest.mark.parametrize(("stop", "expected"), [
    ("end_turn", "end_turn"), ("max_tokens", "max_tokens"), ("stop_sequence", "stop_sequence"),
    ("guardrail_intervened", "refusal"), ("content_filtered", "refusal"),
    ("model_context_window_exceeded", "model_context_window_exceeded"), ("new", "end_turn")])
def test_stop_reasons(stop: str, expected: str):
    data = {"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": stop}
    assert json.loads(translator().response(Reply(b"", None, data)))["stop_reason"] == expected


def test_a_malformed_response_is_the_providers_fault():
    with pytest.raises(UpstreamServerError):
        translator().response(Reply(b"{}", None, {"output": {}}))


def _events(*pairs: tuple[str, dict[str, Any]]) -> list[Event]:
    return [Event.of(name, {**payload, "p": "pad"}) for name, payload in pairs]


def test_a_converse_stream_becomes_anthropic_events_with_usage_at_the_end():
    t = translator(stream=True)
    stream = _events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hel"}}),
        ("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "lo"}}),
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {
            "toolUseId": "tu1", "name": "weather"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"ci"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 1,
                               "delta": {"toolUse": {"input": "ty\":\"Oslo\"}"}}}),
        ("contentBlockStop", {"contentBlockIndex": 1}),
        ("messageStop", {"stopReason": "tool_use"}),
        ("metadata", {"usage": {"inputTokens": 1000}, "metrics": {"latencyMs": 5}}))
    out = [(e.name, e.json()) for event in stream for e in t.feed(event, USAGE)]
    assert out == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_req1", "type": "message", "role": "assistant", "model": CLAUDE,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hel"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "lo"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "tu1", "name": "weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1,
                                 "delta": {"type": "input_json_delta", "partial_json": "{\"ci"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": "ty\":\"Oslo\"}"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 1000, "cache_creation_input_tokens": 400,
                                     "cache_read_input_tokens": 2000, "output_tokens": 200}}),
        ("message_stop", {"type": "message_stop"})]


def test_streamed_reasoning_becomes_a_thinking_block():
    t = translator(stream=True)
    stream = _events(
        ("messageStart", {"role": "assistant"}),
        ("contentBlockDelta", {"contentBlockIndex": 0,
                               "delta": {"reasoningContent": {"text": "hmm"}}}),
        ("contentBlockDelta", {"contentBlockIndex": 0,
                               "delta": {"reasoningContent": {"signature": "sig"}}}),
        ("contentBlockStop", {"contentBlockIndex": 0}))
    out = [e.json() for event in stream for e in t.feed(event, None)]
    assert out[1]["content_block"] == {"type": "thinking", "thinking": "", "signature": ""}
    assert [o["delta"] for o in out[2:4]] == [{"type": "thinking_delta", "thinking": "hmm"},
                                             {"type": "signature_delta", "signature": "sig"}]


def test_a_malformed_stream_event_is_the_providers_fault():
    with pytest.raises(UpstreamServerError):
        translator().feed(Event(b"{}", "contentBlockDelta"), None)
