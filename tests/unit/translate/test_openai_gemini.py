"""OpenAI inbound → Gemini wire: exact request bodies, responses and stream chunks."""

from __future__ import annotations

import json
from typing import Any

from tollgate.gateway.pricing import Usage
from tollgate.gateway.translate.base import Context, Reply
from tollgate.gateway.translate.openai_gemini import OpenAIToGemini
from tollgate.gateway.translate.shapes.gemini import end_event
from tollgate.gateway.translate.shapes.openai import DONE
from tollgate.gateway.translate.sse import Event

SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}
USAGE = Usage(input_tokens=10_000, output_tokens=500, cached_input_tokens=4_000,
              reasoning_tokens=200)


def translator(**context: Any) -> OpenAIToGemini:
    return OpenAIToGemini(Context(**{"model": "gemini-2.5-flash", "request_id": "o1",
                                     **context}))


def test_openai_only_sampling_and_json_output_reach_generation_config():
    body = {"messages": [{"role": "developer", "content": "terse"},
                         {"role": "user", "content": "hi"}],
            "max_tokens": 30, "temperature": 1.8, "seed": 3, "presence_penalty": 0.5,
            "frequency_penalty": 0.1,
            "response_format": {"type": "json_schema",
                                "json_schema": {"name": "a", "schema": SCHEMA}}}
    assert translator().request(body).body == {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "systemInstruction": {"parts": [{"text": "terse"}]},
        "generationConfig": {"maxOutputTokens": 30, "temperature": 1.8, "seed": 3,
                             "presencePenalty": 0.5, "frequencyPenalty": 0.1,
                             "responseMimeType": "application/json",
                             "responseJsonSchema": SCHEMA}}


def test_a_response_becomes_a_chat_completion_with_reasoning_in_the_usage():
    data = {"candidates": [{"content": {"parts": [{"text": "Hello"}]},
                            "finishReason": "MAX_TOKENS"}]}
    body = json.loads(translator().response(Reply(b"", USAGE, data)))
    assert body["id"] == "chatcmpl-o1"
    assert body["choices"][0]["message"]["content"] == "Hello"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"] == {"prompt_tokens": 10_000, "completion_tokens": 500,
                             "total_tokens": 10_500,
                             "prompt_tokens_details": {"cached_tokens": 4_000},
                             "completion_tokens_details": {"reasoning_tokens": 200}}


def test_a_stream_becomes_chunks_and_ends_on_the_synthetic_end_event():
    t = translator(stream=True, include_usage=True)
    chunks = [Event.of(None, {"candidates": [{"content": {"parts": [{"text": "Hel"}]}}]}),
              Event.of(None, {"candidates": [{"content": {"parts": [{"text": "lo"}]},
                                              "finishReason": "SAFETY"}]})]
    out = [e for chunk in chunks for e in t.feed(chunk, USAGE)]
    assert [e.json()["choices"][0]["delta"] for e in out] == [
        {"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}]
    end = t.feed(end_event(), USAGE)
    assert end[-1] == DONE
    assert end[0].json()["choices"][0]["finish_reason"] == "content_filter"
    assert end[1].json()["usage"]["completion_tokens_details"] == {"reasoning_tokens": 200}
