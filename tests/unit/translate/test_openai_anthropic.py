"""OpenAI inbound → Anthropic wire: exact request bodies, responses, stream events and usage."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from tollgate.gateway.errors import InvalidRequest, UpstreamServerError
from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.openai_anthropic import OpenAIToAnthropic
from tollgate.gateway.translate.sse import Event, encode

PNG = "iVBORw0KGgo="
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}},
           "required": ["city"]}


def translator(**context: Any) -> OpenAIToAnthropic:
    return OpenAIToAnthropic(Context(**{"model": "claude-sonnet-4-6", "request_id": "r1",
                                        **context}))


def wire(body: dict[str, Any], **context: Any) -> dict[str, Any]:
    return translator(**context).request(body).body


def test_a_plain_chat_becomes_a_messages_request_with_the_catalog_output_limit():
    body = {"model": "claude", "messages": [{"role": "user", "content": "hi"}]}
    assert wire(body, max_output_tokens=64000) == {
        "max_tokens": 64000, "messages": [{"role": "user", "content": "hi"}]}


def test_without_a_catalog_limit_max_tokens_defaults_to_4096_and_the_request_wins():
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert wire(body)["max_tokens"] == 4096
    assert wire({**body, "max_tokens": 50}, max_output_tokens=64000)["max_tokens"] == 50
    assert wire({**body, "max_completion_tokens": 70})["max_tokens"] == 70


def test_system_and_developer_messages_become_the_top_level_system():
    one = wire({"messages": [{"role": "system", "content": "be brief"},
                             {"role": "user", "content": "hi"}]})
    assert one["system"] == "be brief"
    two = wire({"messages": [{"role": "system", "content": "be brief"},
                             {"role": "developer", "content": [{"type": "text", "text": "x"}]},
                             {"role": "user", "content": "hi"}]})
    assert two["system"] == [{"type": "text", "text": "be brief"}, {"type": "text", "text": "x"}]
    assert two["messages"] == [{"role": "user", "content": "hi"}]


def test_sampling_and_stop_parameters_are_mapped_and_temperature_is_clamped():
    body = {"messages": [{"role": "user", "content": "hi"}], "temperature": 1.7,
            "top_p": 0.9, "stop": "END", "user": "u-42", "seed": 3,
            "frequency_penalty": 0.5, "stream": True}
    assert wire(body, stream=True) == {
        "max_tokens": 4096, "messages": [{"role": "user", "content": "hi"}],
        "temperature": 1, "top_p": 0.9, "stop_sequences": ["END"],
        "metadata": {"user_id": "u-42"}, "stream": True}
    assert wire({**body, "stop": ["a", "b"], "temperature": 0.2})["stop_sequences"] == ["a", "b"]


def test_images_become_base64_or_url_sources_and_pdf_files_documents():
    body = {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg",
                                            "detail": "high"}},
        {"type": "file", "file": {"filename": "a.pdf",
                                  "file_data": "data:application/pdf;base64,JVBERi0="}},
    ]}]}
    assert wire(body)["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?", "cache_control": {"type": "ephemeral"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": "JVBERi0="}},
    ]}]


def test_a_tool_round_trip_becomes_tool_use_and_tool_result_blocks():
    body = {
        "messages": [
            {"role": "user", "content": "weather in Paris and Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"Paris"}'}},
                {"id": "call_2", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
            {"role": "tool", "tool_call_id": "call_2",
             "content": [{"type": "text", "text": "9C"}]},
            {"role": "user", "content": "thanks"},
        ],
        "tools": [{"type": "function", "function": {
            "name": "weather", "description": "Weather by city", "parameters": WEATHER}}],
        "tool_choice": "required", "parallel_tool_calls": False,
    }
    assert wire(body) == {
        "max_tokens": 4096,
        "messages": [
            {"role": "user", "content": "weather in Paris and Oslo?"},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "weather",
                 "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "weather",
                 "input": {"city": "Oslo"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
                {"type": "tool_result", "tool_use_id": "call_2",
                 "content": [{"type": "text", "text": "9C"}]},
                {"type": "text", "text": "thanks"}]},
        ],
        "tools": [{"name": "weather", "description": "Weather by city",
                   "input_schema": WEATHER}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": True},
    }


@pytest.mark.parametrize(("choice", "expected"), [
    ("auto", None),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "weather"}}, {"type": "tool", "name": "weather"}),
], ids=["auto", "none", "required", "named"])
def test_tool_choice(choice: Any, expected: dict[str, Any] | None):
    body = {"messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
            "tools": [{"type": "function", "function": {"name": "weather"}}]}
    translated = wire(body)
    assert translated.get("tool_choice") == expected
    assert translated["tools"] == [{"name": "weather", "input_schema": {
        "type": "object", "properties": {}}}]


@pytest.mark.parametrize("body", [
    {"messages": [{"role": "user", "content": "x"}], "n": 2},
    {"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]},
    {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f1"}}]}]},
    {"messages": [{"role": "function", "name": "f", "content": "x"}]},
    {"messages": [{"role": "user", "content": "x"}],
     "tools": [{"type": "custom", "custom": {"name": "grammar"}}]},
    {"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]},
], ids=["n-2", "audio", "file-id", "function-role", "custom-tool", "non-object-arguments"])
def test_what_anthropic_cannot_express_is_refused_not_dropped(body: dict[str, Any]):
    with pytest.raises(InvalidRequest):
        wire(body)


def test_the_translated_request_is_the_same_on_every_attempt():
    body = {"messages": [{"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": "again"}]}
    before = json.dumps(body)
    assert wire(body) == wire(body)
    assert json.dumps(body) == before, "the inbound body must not be modified"


# --- responses ------------------------------------------------------------------------------

USAGE = Usage(input_tokens=2600, output_tokens=50, cached_input_tokens=2000,
              cache_write_tokens=500, reasoning_tokens=0)


def test_a_message_with_text_and_tool_use_becomes_a_completion_with_usage():
    message = {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"},
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "toolu_1", "name": "weather",
                     "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "stop_sequence": None,
        "usage": {"input_tokens": 100, "cache_read_input_tokens": 2000,
                  "cache_creation_input_tokens": 500, "output_tokens": 50},
    }
    t = translator()
    body = orjson.loads(t.response(Reply(orjson.dumps(message), USAGE, message)))
    assert body == {
        "id": "msg_01", "object": "chat.completion", "created": body["created"],
        "model": "claude-sonnet-4-6",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": "Let me check.", "refusal": None,
            "tool_calls": [{"id": "toolu_1", "type": "function", "function": {
                "name": "weather", "arguments": '{"city":"Paris"}'}}]}}],
        "usage": {"prompt_tokens": 2600, "completion_tokens": 50, "total_tokens": 2650,
                  "prompt_tokens_details": {"cached_tokens": 2000},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
    }


@pytest.mark.parametrize(("stop", "finish"), [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_stop_reasons(stop: str, finish: str):
    message = {"id": "m", "model": "c", "content": [{"type": "text", "text": "x"}],
               "stop_reason": stop}
    body = orjson.loads(translator().response(Reply(orjson.dumps(message), None)))
    assert body["choices"][0]["finish_reason"] == finish
    assert "usage" not in body


def test_a_malformed_message_is_an_upstream_failure():
    with pytest.raises(UpstreamServerError):
        translator().response(Reply(b'{"id": "m"}', None))


# --- streams --------------------------------------------------------------------------------

def anthropic_events() -> list[Event]:
    def ev(name: str, payload: dict[str, Any]) -> Event:
        return Event(orjson.dumps({"type": name, **payload}), name)

    return [
        ev("message_start", {"message": {"id": "msg_9", "model": "claude-sonnet-4-6",
                                          "usage": {"input_tokens": 10, "output_tokens": 1}}}),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ev("ping", {}),
        ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ev("content_block_stop", {"index": 0}),
        ev("content_block_start", {"index": 1, "content_block": {
            "type": "tool_use", "id": "toolu_7", "name": "weather", "input": {}}}),
        ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                         "partial_json": '{"city":'}}),
        ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta",
                                                         "partial_json": '"Oslo"}'}}),
        ev("content_block_stop", {"index": 1}),
        ev("message_delta", {"delta": {"stop_reason": "tool_use"},
                             "usage": {"output_tokens": 30}}),
        ev("message_stop", {}),
    ]


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {"id": "msg_9", "object": "chat.completion.chunk", "created": 0,
            "model": "claude-sonnet-4-6",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}]}


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-asked", "not-asked"])
def test_a_stream_becomes_openai_chunks_with_tool_call_argument_deltas(include_usage: bool):
    t = translator(stream=True, include_usage=include_usage)
    usage = Usage(input_tokens=10, output_tokens=30)
    out = [e for event in anthropic_events() for e in t.feed(event, usage)]
    frames = [encode(e) for e in out]
    assert frames[-1] == b"data: [DONE]\n\n"
    chunks = [{**json.loads(f[6:]), "created": 0} for f in frames[:-1]]
    expected = [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hi"}),
        chunk({"tool_calls": [{"index": 0, "id": "toolu_7", "type": "function",
                               "function": {"name": "weather", "arguments": ""}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
        chunk({}, "tool_calls"),
    ]
    if include_usage:
        expected.append({"id": "msg_9", "object": "chat.completion.chunk", "created": 0,
                         "model": "claude-sonnet-4-6", "choices": [], "usage": {
                             "prompt_tokens": 10, "completion_tokens": 30, "total_tokens": 40,
                             "prompt_tokens_details": {"cached_tokens": 0},
                             "completion_tokens_details": {"reasoning_tokens": 0}}})
    assert chunks == expected


def test_a_malformed_stream_event_is_an_upstream_failure():
    with pytest.raises(UpstreamServerError):
        translator().feed(Event(b"not json", "content_block_delta"), None)
