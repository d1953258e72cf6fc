"""Anthropic inbound → OpenAI wire: exact request bodies, responses, stream events and usage."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.anthropic_openai import AnthropicToOpenAI
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event, SSEDecoder, encode

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}}


def translator(**context: Any) -> AnthropicToOpenAI:
    return AnthropicToOpenAI(Context(**{"model": "gpt-4o-mini", "request_id": "req1",
                                        **context}))


def wire(body: dict[str, Any], **context: Any) -> dict[str, Any]:
    request = translator(**context).request(body)
    assert request.usage_event is False, "the translator renders usage; no usage chunk needed"
    return request.body


def test_a_plain_message_becomes_a_chat_completion_request():
    body = {"model": "m", "max_tokens": 100, "system": "be brief",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.3, "top_p": 0.8, "top_k": 5, "stop_sequences": ["END"],
            "metadata": {"user_id": "u-1"}, "stream": True}
    assert wire(body, stream=True) == {
        "messages": [{"role": "system", "content": "be brief"},
                     {"role": "user", "content": "hi"}],
        "max_completion_tokens": 100, "temperature": 0.3, "top_p": 0.8, "stop": ["END"],
        "user": "u-1", "stream": True}


def test_system_blocks_join_and_images_and_documents_become_parts():
    body = {"max_tokens": 5, "system": [{"type": "text", "text": "a",
                                         "cache_control": {"type": "ephemeral"}},
                                        {"type": "text", "text": "b"}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                             "data": "AAA="}},
                {"type": "image", "source": {"type": "url", "url": "https://x.test/i.png"}},
                {"type": "document", "source": {"type": "base64",
                                                "media_type": "application/pdf",
                                                "data": "JVB="}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                "data": "plain words"}},
            ]}]}
    assert wire(body)["messages"] == [
        {"role": "system", "content": "a\n\nb"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAA="}},
            {"type": "image_url", "image_url": {"url": "https://x.test/i.png"}},
            {"type": "file", "file": {"filename": "document.pdf",
                                      "file_data": "data:application/pdf;base64,JVB="}},
            {"type": "text", "text": "plain words"}]},
    ]


def test_tool_use_and_tool_results_become_tool_calls_and_tool_messages():
    body = {
        "max_tokens": 300,
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "…", "signature": "sig"},
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "18C"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                 "data": "PNG="}}]},
                {"type": "text", "text": "and tomorrow?"}]},
        ],
        "tools": [{"name": "weather", "description": "Weather", "input_schema": WEATHER}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }
    assert wire(body) == {
        "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "toolu_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,PNG="}},
                {"type": "text", "text": "and tomorrow?"}]},
        ],
        "max_completion_tokens": 300,
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "Weather", "parameters": WEATHER}}],
        "tool_choice": "required", "parallel_tool_calls": False,
    }


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, None),
    ({"type": "none"}, "none"),
    ({"type": "any"}, "required"),
    ({"type": "tool", "name": "weather"}, {"type": "function", "function": {"name": "weather"}}),
], ids=["auto", "none", "any", "tool"])
def test_tool_choice(choice: dict[str, Any], expected: Any):
    body = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "weather", "input_schema": WEATHER}], "tool_choice": choice}
    assert wire(body).get("tool_choice") == expected


@pytest.mark.parametrize("body", [
    {"tools": [{"type": "web_search_20250305", "name": "web_search"}]},
    {"messages": [{"role": "user", "content": [{"type": "search_result", "source": "x"}]}]},
    {"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "file", "file_id": "f"}}]}]},
], ids=["server-tool", "unknown-block", "file-image"])
def test_what_openai_cannot_express_is_refused(body: dict[str, Any]):
    full = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}], **body}
    with pytest.raises(InvalidRequest):
        wire(full)


# --- responses ------------------------------------------------------------------------------

def test_a_completion_with_tool_calls_becomes_a_message_with_anthropic_usage():
    completion = {
        "id": "chatcmpl-abc", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_9", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}]}}],
    }
    usage = Usage(input_tokens=1200, output_tokens=40, cached_input_tokens=1000)
    body = orjson.loads(translator().response(
        Reply(orjson.dumps(completion), usage, completion)))
    assert body == {
        "id": "msg_chatcmpl-abc", "type": "message", "role": "assistant",
        "model": "gpt-4o-mini",
        "content": [{"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "call_9", "name": "weather",
                     "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 200, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 1000,
                  "cache_creation": {"ephemeral_5m_input_tokens": 0,
                                     "ephemeral_1h_input_tokens": 0},
                  "output_tokens": 40},
    }


@pytest.mark.parametrize(("finish", "stop"), [
    ("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"),
    ("content_filter", "refusal"),
])
def test_finish_reasons(finish: str, stop: str):
    completion = {"id": "c", "choices": [{"finish_reason": finish,
                                          "message": {"content": "x"}}]}
    body = orjson.loads(translator().response(Reply(orjson.dumps(completion), None)))
    assert body["stop_reason"] == stop
    assert body["usage"] == {"input_tokens": 0, "output_tokens": 0}


@pytest.mark.parametrize("arguments", ["not json", "[1, 2]"])
def test_tool_arguments_that_are_not_an_object_are_an_upstream_failure(arguments: str):
    completion = {"id": "c", "choices": [{"finish_reason": "tool_calls", "message": {
        "content": None, "tool_calls": [{"id": "x", "type": "function",
                                         "function": {"name": "f", "arguments": arguments}}]}}]}
    with pytest.raises(UpstreamServerError):
        translator().response(Reply(orjson.dumps(completion), None))


# --- streams --------------------------------------------------------------------------------

def openai_chunk(delta: dict[str, Any], finish: str | None = None) -> Event:
    return Event(orjson.dumps({
        "id": "chatcmpl-7", "object": "chat.completion.chunk", "created": 1,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}))


def test_a_stream_becomes_named_anthropic_events_with_the_usage_at_the_end():
    t = translator(stream=True)
    wire_events = [
        openai_chunk({"role": "assistant", "content": ""}),
        openai_chunk({"content": "Sure"}),
        openai_chunk({"content": "."}),
        openai_chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                      "function": {"name": "weather", "arguments": ""}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        openai_chunk({}, "tool_calls"),
        DONE,
    ]
    usage = Usage(input_tokens=500, output_tokens=21, cached_input_tokens=100)
    wire_bytes = b"".join(encode(e) for w in wire_events for e in t.feed(w, usage))
    events = [(e.name, json.loads(e.data)) for e in SSEDecoder().feed(wire_bytes)]
    assert events == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_chatcmpl-7", "type": "message", "role": "assistant",
            "model": "gpt-4o-mini", "content": [], "stop_reason": None,
            "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Sure"}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": {
            "type": "tool_use", "id": "call_1", "name": "weather", "input": {}}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": '{"city":'}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": '"Oslo"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"input_tokens": 400, "cache_creation_input_tokens": 0,
                                     "cache_read_input_tokens": 100, "output_tokens": 21}}),
        ("message_stop", {"type": "message_stop"}),
    ]


def test_an_empty_stream_still_has_a_start_a_delta_and_a_stop():
    names = [e.name for e in translator().feed(DONE, None)]
    assert names == ["message_start", "message_delta", "message_stop"]


def test_an_error_object_mid_stream_is_an_upstream_failure():
    with pytest.raises(UpstreamServerError):
        translator().feed(Event(b'{"error": {"message": "boom"}}'), None)
