"""The Anthropic API served by an OpenAI provider: Anthropic SDK requests translated to chat
completions and back, tools and streams included; the SDK's models must parse everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import (
    anthropic_async_client,
    anthropic_client,
    provider,
    running_gateway,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-anthropic-on-gpt-3f1a"
PROVIDER_KEY = "sk-fake-translated-77"
MODEL = "gpt-4o-mini"
HELLO = [{"role": "user", "content": "hello gpt"}]
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"name": "weather", "description": "Weather by city", "input_schema": WEATHER}]

# gpt-4o-mini: $0.15 input, $0.075 cached, $0.60 output per million tokens.
# (1234-200)*0.15 + 200*0.075 + 56*0.60 = 155.1 + 15 + 33.6 = 203.7 → 204 µUSD
USAGE = {"prompt_tokens": 1234, "completion_tokens": 56, "cached_tokens": 200}
COST = "0.000204"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[provider("gpt", openai_upstream_server, key_env="TRANSLATED_OPENAI_KEY",
                            type="openai")],
        keys=[key_entry("anthropic-on-gpt", TOKEN)],
    )
    with running_gateway(tmp_path_factory.mktemp("anthropic-translated"), config,
                         {"TRANSLATED_OPENAI_KEY": PROVIDER_KEY}) as process:
        yield process


def decision(gateway: GatewayProcess, request_id: str) -> dict[str, Any]:
    return wait_for_log(gateway, lambda e: e.get("event") == "request"
                        and e.get("request_id") == request_id)


def test_a_message_is_served_as_a_chat_completion(gateway: GatewayProcess,
                                                  openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(**USAGE)
    with anthropic_client(gateway, TOKEN) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=200, system="be brief", messages=HELLO,
            stop_sequences=["END"], metadata={"user_id": "u-9"})
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello gpt"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens, message.usage.output_tokens) == (
        1034, 200, 0, 56)
    assert raw.headers["x-tollgate-provider"] == "gpt"
    assert raw.headers["x-tollgate-cost-usd"] == COST
    [sent] = openai_upstream.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.bearer == PROVIDER_KEY
    assert sent.body == {"messages": [{"role": "system", "content": "be brief"},
                                      {"role": "user", "content": "hello gpt"}],
                         "max_completion_tokens": 200, "stop": ["END"], "user": "u-9",
                         "model": MODEL}


async def test_an_async_message(gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    async with anthropic_async_client(gateway, TOKEN) as client:
        message = await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello gpt"


def test_a_tool_round_trip_in_both_directions(gateway: GatewayProcess,
                                              openai_upstream: FakeOpenAI):
    openai_upstream.reply_with_tool_call("weather", {"city": "Oslo"})
    with anthropic_client(gateway, TOKEN) as client:
        first = client.messages.create(model=MODEL, max_tokens=100, messages=HELLO,
                                       tools=TOOLS, tool_choice={"type": "any"})
        [call] = [b for b in first.content if b.type == "tool_use"]
        assert (call.name, call.input) == ("weather", {"city": "Oslo"})
        assert first.stop_reason == "tool_use"
        second = client.messages.create(
            model=MODEL, max_tokens=100, tools=TOOLS,
            messages=[*HELLO, {"role": "assistant", "content": first.content},
                      {"role": "user", "content": [
                          {"type": "tool_result", "tool_use_id": call.id, "content": "9C"}]}])
    assert second.content[0].type == "text" and second.content[0].text == "Echo: 9C"
    sent = openai_upstream.requests
    assert sent[0].body["tools"] == [{"type": "function", "function": {
        "name": "weather", "description": "Weather by city", "parameters": WEATHER}}]
    assert sent[0].body["tool_choice"] == "required"
    assert sent[1].body["messages"][1:] == [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call.id, "type": "function",
             "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "9C"}]


def test_a_stream_is_translated_event_by_event_and_costs_the_same(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(**USAGE)
    with anthropic_client(gateway, TOKEN) as client:
        with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO) as stream:
            events = [event.type for event in stream]
            message = stream.get_final_message()
            request_id = stream.response.headers["x-request-id"]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello gpt"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (1034, 200, 56)
    assert decision(gateway, request_id)["cost_usd"] == COST
    [sent] = openai_upstream.requests
    assert sent.body["stream"] is True
    assert sent.body["stream_options"] == {"include_usage": True}


async def test_an_async_stream_with_a_tool_call(gateway: GatewayProcess,
                                                openai_upstream: FakeOpenAI):
    openai_upstream.reply_with_tool_call("weather", {"city": "Paris"})
    async with anthropic_async_client(gateway, TOKEN) as client:
        async with client.messages.stream(model=MODEL, max_tokens=50, messages=HELLO,
                                          tools=TOOLS) as stream:
            names = [event.type async for event in stream]
            message = await stream.get_final_message()
    assert "content_block_delta" in names
    [call] = [b for b in message.content if b.type == "tool_use"]
    assert (call.name, call.input) == ("weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"


def test_count_tokens_is_estimated_when_the_route_leads_to_openai(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    words = " ".join(f"word{i}" for i in range(30))
    with anthropic_client(gateway, TOKEN) as client:
        counted = client.messages.count_tokens(
            model=MODEL, system="a system prompt", messages=[{"role": "user", "content": words}])
    assert counted.input_tokens >= 30
    assert openai_upstream.requests == [], "counting never calls an OpenAI provider"


def test_a_server_tool_that_openai_cannot_run_is_refused_in_anthropics_shape(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(
                model=MODEL, max_tokens=10, messages=HELLO,
                tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "invalid_request_error"
    assert "web_search" in json.dumps(caught.value.body)
    assert openai_upstream.requests == []
