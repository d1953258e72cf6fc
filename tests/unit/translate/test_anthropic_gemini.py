"""Anthropic inbound → Gemini wire: exact request bodies, responses, stream events and usage."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollgate.gateway.errors import InvalidRequest
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.anthropic_gemini import AnthropicToGemini
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.shapes.gemini import end_event
from tollgate.gateway.translate.sse import Event

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
USAGE = Usage(input_tokens=10_000, output_tokens=500, cached_input_tokens=4_000,
              reasoning_tokens=200)


def translator(**context: Any) -> AnthropicToGemini:
    return AnthropicToGemini(Context(**{"model": "gemini-2.5-pro", "request_id": "g1",
                                        **context}))


def wire(body: dict[str, Any]) -> dict[str, Any]:
    return translator().request(body).body


def test_system_roles_and_generation_config():
    body = {"max_tokens": 100, "system": [{"type": "text", "text": "a"},
                                          {"type": "text", "text": "b"}],
            "temperature": 0.2, "top_p": 0.9, "top_k": 40, "stop_sequences": ["END"],
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "again"}]}
    assert wire(body) == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]},
                     {"role": "model", "parts": [{"text": "hello"}]},
                     {"role": "user", "parts": [{"text": "again"}]}],
        "systemInstruction": {"parts": [{"text": "a"}, {"text": "b"}]},
        "generationConfig": {"maxOutputTokens": 100, "temperature": 0.2, "topP": 0.9,
                             "topK": 40, "stopSequences": ["END"],
                             "thinkingConfig": {"thinkingBudget": 1024}}}


def test_media_becomes_inline_or_file_data():
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "AAA="}},
        {"type": "image", "source": {"type": "url", "url": "https://x.test/cat.webp?s=1"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVB="}}]}]}
    assert wire(body)["contents"][0]["parts"] == [
        {"inlineData": {"mimeType": "image/png", "data": "AAA="}},
        {"fileData": {"mimeType": "image/webp", "fileUri": "https://x.test/cat.webp?s=1"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVB="}}]


def test_tool_results_are_matched_to_their_function_by_name():
    body = {"max_tokens": 5, "tools": [{"name": "weather", "description": "W",
                                        "input_schema": WEATHER}],
            "tool_choice": {"type": "tool", "name": "weather"},
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "x", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "weather",
                     "input": {"city": "Oslo"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": "9C"}]}]}
    out = wire(body)
    assert out["contents"][1:] == [
        {"role": "model", "parts": [{"functionCall": {"name": "weather",
                                                      "args": {"city": "Oslo"}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather",
                                                         "response": {"content": "9C"}}}]}]
    assert out["tools"] == [{"functionDeclarations": [
        {"name": "weather", "description": "W", "parametersJsonSchema": WEATHER}]}]
    assert out["toolConfig"] == {"functionCallingConfig": {
        "mode": "ANY", "allowedFunctionNames": ["weather"]}}
    assert wire({**body, "tool_choice": {"type": "none"}})["toolConfig"] == {
        "functionCallingConfig": {"mode": "NONE"}}
    assert "toolConfig" not in wire({**body, "tool_choice": {"type": "auto"}})


def test_a_tool_result_for_an_unknown_call_is_refused():
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "nope", "content": "x"}]}]}
    with pytest.raises(InvalidRequest, match="function name"):
        wire(body)


def test_a_response_becomes_a_message_with_tool_use_and_usage():
    data = {"candidates": [{"content": {"role": "model", "parts": [
        {"text": "thinking...", "thought": True}, {"text": "Let me "}, {"text": "check."},
        {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}}]},
        "finishReason": "STOP"}], "usageMetadata": {"promptTokenCount": 10000}}
    body = json.loads(translator().response(Reply(b"", USAGE, data)))
    assert body["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_g1_0", "name": "weather", "input": {"city": "Oslo"}}]
    assert body["stop_reason"] == "tool_use"
    assert body["usage"]["input_tokens"] == 6000
    assert body["usage"]["cache_read_input_tokens"] == 4000
    assert body["usage"]["output_tokens"] == 500


@pytest.mark.parametrize(("finish", "expected"), [
    ("STOP", "end_turn"), ("MAX_TOKENS", "max_tokens"), ("SAFETY", "refusal"),
    ("RECITATION", "refusal"), ("MALFORMED_FUNCTION_CALL", "end_turn")])
def test_finish_reasons(finish: str, expected: str):
    data = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": finish}]}
    assert json.loads(translator().response(Reply(b"", None, data)))["stop_reason"] == expected


def test_a_blocked_prompt_is_an_empty_refusal():
    data = {"promptFeedback": {"blockReason": "SAFETY"}}
    body = json.loads(translator().response(Reply(b"", None, data)))
    assert (body["content"], body["stop_reason"]) == ([], "refusal")


def test_a_stream_becomes_anthropic_events_with_the_final_usage():
    t = translator(stream=True)
    chunks = [
        Event.of(None, {"candidates": [{"content": {"parts": [{"text": "Hi"}]}}]}),
        Event.of(None, {"candidates": [{"content": {"parts": [
            {"functionCall": {"name": "weather", "args": {"city": "Rome"}}}]},
            "finishReason": "STOP"}]}),
        end_event()]
    out = [(e.name, e.json()) for chunk in chunks for e in t.feed(chunk, USAGE)]
    names = [name for name, _ in out]
    assert names == ["message_start", "content_block_start", "content_block_delta",
                     "content_block_stop", "content_block_start", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    assert out[4][1]["content_block"] == {"type": "tool_use", "id": "toolu_g1_0",
                                          "name": "weather", "input": {}}
    assert out[5][1]["delta"] == {"type": "input_json_delta",
                                  "partial_json": "{\"city\":\"Rome\"}"}
    assert out[7][1] == {"type": "message_delta",
                         "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                         "usage": {"input_tokens": 6000, "cache_creation_input_tokens": 0,
                                   "cache_read_input_tokens": 4000, "output_tokens": 500}}
