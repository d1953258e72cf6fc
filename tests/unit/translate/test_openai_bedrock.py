"""OpenAI inbound → Bedrock Converse wire: exact request bodies, responses, stream chunks and
usage (the pair composes openai_anthropic and anthropic_bedrock)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tollgate.gateway.errors import InvalidRequest
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.openai_bedrock import OpenAIToBedrock
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event

CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}
USAGE = Usage(input_tokens=3400, output_tokens=200, cached_input_tokens=2000,
              cache_write_tokens=400)


def translator(model: str = CLAUDE, **context: Any) -> OpenAIToBedrock:
    return OpenAIToBedrock(Context(**{"model": model, "request_id": "r9", **context}))


def wire(body: dict[str, Any], model: str = CLAUDE, **context: Any) -> dict[str, Any]:
    return translator(model, **context).request(body).body


def test_a_chat_with_tools_and_tool_results_becomes_a_converse_request():
    body = {"model": "x", "max_completion_tokens": 64, "temperature": 0.5, "stop": "END",
            "tools": [{"type": "function", "function": {"name": "weather",
                                                        "parameters": WEATHER}}],
            "tool_choice": {"type": "function", "function": {"name": "weather"}},
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA="}}]},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function",
                     "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "9C"}]}
    assert wire(body) == {
        "messages": [
            {"role": "user", "content": [
                {"text": "what is this?"},
                {"image": {"format": "png", "source": {"bytes": "AAA="}}}]},
            {"role": "assistant", "content": [
                {"toolUse": {"toolUseId": "call_1", "name": "weather",
                             "input": {"city": "Oslo"}}}]},
            {"role": "user", "content": [
                {"toolResult": {"toolUseId": "call_1", "content": [{"text": "9C"}]}}]}],
        "system": [{"text": "be brief"}],
        "inferenceConfig": {"maxTokens": 64, "temperature": 0.5, "stopSequences": ["END"]},
        "toolConfig": {"tools": [{"toolSpec": {"name": "weather",
                                               "inputSchema": {"json": WEATHER}}}],
                       "toolChoice": {"tool": {"name": "weather"}}}}


def test_max_tokens_defaults_to_the_catalog_limit_and_temperature_is_clamped_for_claude_only():
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 1.5}
    assert wire(body, max_output_tokens=64000)["inferenceConfig"] == {
        "maxTokens": 64000, "temperature": 1}
    assert wire(body, model="amazon.nova-pro-v1:0")["inferenceConfig"]["temperature"] == 1.5


def test_remote_image_urls_and_n_above_one_are_refused():
    url = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}}]}]}
    with pytest.raises(InvalidRequest):
        wire(url)
    with pytest.raises(InvalidRequest):
        wire({"messages": [{"role": "user", "content": "hi"}], "n": 2})


def test_a_converse_response_becomes_a_chat_completion_with_tool_calls_and_usage():
    data = {"output": {"message": {"role": "assistant", "content": [
        {"text": "Checking."},
        {"toolUse": {"toolUseId": "tu1", "name": "weather", "input": {"city": "Oslo"}}}]}},
        "stopReason": "tool_use"}
    body = json.loads(translator().response(Reply(b"", USAGE, data)))
    assert body["id"] == "chatcmpl-r9" and body["model"] == CLAUDE
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "tool_calls",
                                "message": {"role": "assistant", "content": "Checking.",
                                            "refusal": None, "tool_calls": [{
                                                "id": "tu1", "type": "function", "function": {
                                                    "name": "weather",
                                                    "arguments": "{\"city\":\"Oslo\"}"}}]}}]
    assert body["usage"] == {"prompt_tokens": 3400, "completion_tokens": 200,
                             "total_tokens": 3600, "prompt_tokens_details": {"cached_tokens": 2000},
                             "completion_tokens_details": {"reasoning_tokens": 0}}


def test_a_converse_stream_becomes_chunks_ending_with_usage_and_done():
    t = translator(stream=True, include_usage=True)
    stream = [Event.of("messageStart", {"role": "assistant"}),
              Event.of("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}}),
              Event.of("contentBlockStop", {"contentBlockIndex": 0}),
              Event.of("messageStop", {"stopReason": "max_tokens"}),
              Event.of("metadata", {"usage": {}})]
    out = [e for event in stream for e in t.feed(event, USAGE)]
    assert out[-1] == DONE
    chunks = [e.json() for e in out[:-1]]
    assert [c["choices"][0]["delta"] for c in chunks[:-1]] == [
        {"role": "assistant", "content": ""}, {"content": "Hi"}, {}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 3400
    assert {c["id"] for c in chunks} == {"chatcmpl-r9"}
