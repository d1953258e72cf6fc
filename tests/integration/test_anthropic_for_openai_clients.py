"""Chat completions served by an Anthropic provider: OpenAI SDK requests translated to the
Messages API (the fake Anthropic server refuses any malformed body) and back, tool calls in
both directions and streams included; the SDK's models must parse everything."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.fakes.anthropic_upstream import FakeAnthropic, error_status
from tests.integration.helpers import (
    anthropic_provider,
    async_client,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-openai-on-claude-0b7e"
PROVIDER_KEY = "sk-ant-fake-translated-2c"
MODEL = "claude-haiku-4-5"
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "weather", "description": "Weather by city", "parameters": WEATHER}}]

# claude-haiku-4-5: $1 input, $0.10 cache read, $1.25 5-minute write, $2 one-hour write,
# $5 output per million tokens. 300 plain + 1000 read + 200 five-minute writes + 80 out:
# 300*1 + 1000*0.10 + 200*1.25 + 80*5 = 300 + 100 + 250 + 400 = 1050 µUSD
CACHED = {"input_tokens": 300, "output_tokens": 80, "cache_read": 1000, "cache_creation": 200}
CACHED_COST = "0.00105"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            anthropic_upstream_server: FakeAnthropic) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[anthropic_provider("claude", anthropic_upstream_server,
                                      key_env="OPENAI_ON_CLAUDE_KEY")],
        keys=[key_entry("openai-on-claude", TOKEN)],
    )
    with running_gateway(tmp_path_factory.mktemp("openai-on-claude"), config,
                         {"OPENAI_ON_CLAUDE_KEY": PROVIDER_KEY}) as process:
        yield process


@pytest.fixture
def upstream(anthropic_upstream: FakeAnthropic) -> FakeAnthropic:
    anthropic_upstream.require_key(PROVIDER_KEY)
    return anthropic_upstream


def test_a_chat_completion_is_served_by_the_messages_api(gateway: GatewayProcess,
                                                         upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=[{"role": "system", "content": "be brief"},
                                   *user("hello claude")],
            temperature=1.5, stop=["END"], user="u-3")
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello claude"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (1500, 80)
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.prompt_tokens_details.cached_tokens == 1000
    assert raw.headers["x-tollgate-cost-usd"] == CACHED_COST
    [sent] = upstream.requests
    assert upstream.rejections == []
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {"model": MODEL, "max_tokens": 64000, "system": "be brief",
                         "messages": [{"role": "user", "content": "hello claude"}],
                         "temperature": 1, "stop_sequences": ["END"],
                         "metadata": {"user_id": "u-3"}}


async def test_an_async_chat_completion(gateway: GatewayProcess, upstream: FakeAnthropic):
    async with async_client(gateway, TOKEN) as client:
        completion = await client.chat.completions.create(model=MODEL, messages=user("hey"),
                                                          max_tokens=20)
    assert completion.choices[0].message.content == "Echo: hey"
    assert upstream.requests[0].body["max_tokens"] == 20


def test_tool_calls_in_both_directions(gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.reply_with_tool_use("weather", {"city": "Oslo"}, thinking=True)
    with sync_client(gateway, TOKEN) as client:
        first = client.chat.completions.create(model=MODEL, messages=user("weather?"),
                                               tools=TOOLS, tool_choice="required",
                                               parallel_tool_calls=False)
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content == "Let me check."
        [call] = choice.message.tool_calls or []
        assert call.type == "function"
        assert json.loads(call.function.arguments) == {"city": "Oslo"}
        second = client.chat.completions.create(
            model=MODEL, tools=TOOLS,
            messages=[*user("weather?"), choice.message.model_dump(exclude_none=True),
                      {"role": "tool", "tool_call_id": call.id, "content": "9C"}])
    assert second.choices[0].message.content == "Echo: 9C"
    assert upstream.rejections == [], "the fake accepted both translated bodies"
    sent = upstream.requests
    assert sent[0].body["tools"] == [{"name": "weather", "description": "Weather by city",
                                      "input_schema": WEATHER}]
    assert sent[0].body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert sent[1].body["messages"][1:] == [
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me check."},
            {"type": "tool_use", "id": call.id, "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "9C"}]}]


def test_an_image_reaches_anthropic_as_a_base64_source(gateway: GatewayProcess,
                                                       upstream: FakeAnthropic):
    with sync_client(gateway, TOKEN) as client:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    assert upstream.requests[0].body["messages"][0]["content"][1] == {
        "type": "image", "source": {"type": "base64", "media_type": "image/png",
                                    "data": "iVBORw0KGgo="}}


def test_a_stream_with_usage_costs_the_same_as_unstreamed(gateway: GatewayProcess,
                                                          upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    with sync_client(gateway, TOKEN) as client:
        chunks = list(client.chat.completions.create(
            model=MODEL, messages=user("stream it"), stream=True,
            stream_options={"include_usage": True}))
    *content, last = chunks
    assert "".join(c.choices[0].delta.content or "" for c in content) == "Echo: stream it"
    assert content[-1].choices[0].finish_reason == "stop"
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (1500, 80)
    body = {"model": MODEL, "messages": user("stream it"), "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[-2:] == [f": tollgate-cost-usd {CACHED_COST}", "data: [DONE]"]
    assert not any('"usage"' in line for line in lines), "usage chunk only when asked"


async def test_an_async_stream_of_tool_call_argument_deltas(gateway: GatewayProcess,
                                                            upstream: FakeAnthropic):
    upstream.reply_with_tool_use("weather", {"city": "Paris"})
    async with async_client(gateway, TOKEN) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=user("w?"),
                                                      tools=TOOLS, stream=True)
        chunks = [chunk async for chunk in stream]
    calls = [tc for c in chunks for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].id and calls[0].function and calls[0].function.name == "weather"
    arguments = "".join((tc.function.arguments or "") for tc in calls if tc.function)
    assert json.loads(arguments) == {"city": "Paris"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    assert upstream.requests[0].body["stream"] is True


def test_a_streamed_request_gets_a_usage_decision_log_like_an_unstreamed_one(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    with sync_client(gateway, TOKEN) as client:
        with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=user("log me"), stream=True) as response:
            request_id = response.headers["x-request-id"]
            list(response.parse())
    logged = wait_for_log(gateway, lambda e: e.get("event") == "request"
                          and e.get("request_id") == request_id)
    assert (logged["input_tokens"], logged["output_tokens"], logged["cost_usd"]) == (
        1500, 80, CACHED_COST)


def test_an_anthropic_refusal_reaches_the_openai_client_in_openai_shape(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.fail(MODEL, error_status(400, "prompt is too long: 250000 tokens > 200000"))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=user("long"))
    assert caught.value.body == {"message": "prompt is too long: 250000 tokens > 200000",
                                 "type": "invalid_request_error", "param": None,
                                 "code": "invalid_request_error"}


def test_what_anthropic_cannot_express_is_refused_before_calling_it(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=MODEL, messages=user("x"), n=2)
    assert caught.value.code == "unsupported_for_provider"
    assert upstream.requests == []
