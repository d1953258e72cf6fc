"""The Anthropic API served by an Anthropic provider: the pass-through path, with the official
anthropic SDK as the client and the fake Anthropic server checking what the gateway sends."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import pytest

from tests.fakes.anthropic_upstream import (
    FakeAnthropic,
    break_stream_after,
    error_event_after,
    error_status,
)
from tests.integration.helpers import (
    anthropic_async_client,
    anthropic_client,
    anthropic_provider,
    running_gateway,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-anthropic-tenant-51c0"
CAPPED_TOKEN = "tg-anthropic-capped-0d2f"
PROVIDER_KEY = "sk-ant-fake-9d1e77"
MODEL = "claude-sonnet-4-6"
HELLO = [{"role": "user", "content": "hello claude"}]
TOOLS = [{"name": "weather", "description": "Weather by city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}]

# claude-sonnet-4-6 on Anthropic: $3 input, $0.30 cache read, $3.75 5-minute write,
# $6 one-hour write, $15 output per million tokens.
# 100 plain + 2000 read + 400 five-minute + 100 one-hour writes + 50 out:
# 100*3 + 2000*0.30 + 400*3.75 + 100*6 + 50*15 = 300 + 600 + 1500 + 600 + 750 = 3750 µUSD
CACHED = {"input_tokens": 100, "output_tokens": 50, "cache_read": 2000,
          "cache_creation": 500, "cache_creation_1h": 100}
CACHED_COST = "0.00375"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            anthropic_upstream_server: FakeAnthropic) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[anthropic_provider("claude", anthropic_upstream_server,
                                      key_env="PASSTHROUGH_ANTHROPIC_KEY")],
        keys=[key_entry("claude-tenant", TOKEN),
              key_entry("claude-capped", CAPPED_TOKEN, budget={
                  "maxUSD": "0.0015", "period": "total", "onExceededInStream": "stop"})],
    )
    with running_gateway(tmp_path_factory.mktemp("anthropic-pass"), config,
                         {"PASSTHROUGH_ANTHROPIC_KEY": PROVIDER_KEY}) as process:
        yield process


@pytest.fixture
def upstream(anthropic_upstream: FakeAnthropic) -> FakeAnthropic:
    anthropic_upstream.require_key(PROVIDER_KEY)
    return anthropic_upstream


def decision(gateway: GatewayProcess, request_id: str) -> dict[str, object]:
    return wait_for_log(gateway, lambda e: e.get("event") == "request"
                        and e.get("request_id") == request_id)


def test_a_message_passes_through_with_the_gateways_key_and_version(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    with anthropic_client(gateway, TOKEN) as client:
        raw = client.messages.with_raw_response.create(
            model=MODEL, max_tokens=100, system="be brief", messages=HELLO,
            stop_sequences=["END"], metadata={"user_id": "u-7"},
            extra_headers={"anthropic-beta": "context-management-2025-06-27"})
    message = raw.parse()
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello claude"
    assert raw.headers["x-tollgate-provider"] == "claude"
    assert raw.headers["request-id"] == raw.headers["x-request-id"]
    [sent] = upstream.requests
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == PROVIDER_KEY
    assert "authorization" not in sent.headers, "the virtual key never reaches the provider"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.headers["anthropic-beta"] == "context-management-2025-06-27"
    assert sent.body == {"model": MODEL, "max_tokens": 100, "system": "be brief",
                         "messages": HELLO, "stop_sequences": ["END"],
                         "metadata": {"user_id": "u-7"}}


def test_cache_reads_and_writes_are_priced_in_their_own_classes(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    with anthropic_client(gateway, TOKEN) as client:
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100,
                                                       messages=HELLO)
    usage = raw.parse().usage
    assert (usage.input_tokens, usage.cache_read_input_tokens,
            usage.cache_creation_input_tokens, usage.output_tokens) == (100, 2000, 500, 50)
    assert raw.headers["x-tollgate-cost-usd"] == CACHED_COST
    logged = decision(gateway, raw.headers["x-request-id"])
    assert (logged["input_tokens"], logged["output_tokens"]) == (2600, 50)


async def test_an_async_message(gateway: GatewayProcess, upstream: FakeAnthropic):
    async with anthropic_async_client(gateway, TOKEN) as client:
        message = await client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: hello claude"


def test_a_stream_costs_what_the_same_request_costs_unstreamed(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    upstream.reply_with_tool_use("weather", {"city": "Oslo"})
    with anthropic_client(gateway, TOKEN) as client:
        with client.messages.stream(model=MODEL, max_tokens=100, messages=HELLO,
                                    tools=TOOLS) as stream:
            events = [event.type for event in stream]
            message = stream.get_final_message()
            request_id = stream.response.headers["x-request-id"]
    assert events[0] == "message_start" and events[-1] == "message_stop"
    assert [b.type for b in message.content] == ["text", "tool_use"]
    assert message.content[1].type == "tool_use"
    assert message.content[1].input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.output_tokens) == (100, 2000, 50)
    logged = decision(gateway, request_id)
    assert logged["cost_usd"] == CACHED_COST
    assert upstream.requests[0].body["stream"] is True


async def test_an_async_stream(gateway: GatewayProcess, upstream: FakeAnthropic):
    async with anthropic_async_client(gateway, TOKEN) as client:
        async with client.messages.stream(model=MODEL, max_tokens=10,
                                          messages=HELLO) as stream:
            text = "".join([piece async for piece in stream.text_stream])
    assert text == "Echo: hello claude"


def test_the_raw_stream_is_anthropics_events_with_the_cost_comment_before_message_stop(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_usage(**CACHED)
    body = {"model": MODEL, "max_tokens": 10, "messages": HELLO, "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/messages", json=body, timeout=15,
                      headers={"x-api-key": TOKEN}) as response:
        lines = [line for line in response.iter_lines() if line]
    assert lines[0] == "event: message_start"
    assert lines[-3:] == [f": tollgate-cost-usd {CACHED_COST}", "event: message_stop",
                          'data: {"type": "message_stop"}']


def test_count_tokens_is_asked_of_anthropic(gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_count(321)
    with anthropic_client(gateway, TOKEN) as client:
        counted = client.messages.count_tokens(model=MODEL, messages=HELLO, system="sys",
                                               tools=TOOLS)
    assert counted.input_tokens == 321
    [sent] = upstream.requests
    assert sent.path == "/v1/messages/count_tokens"
    assert sent.body == {"model": MODEL, "messages": HELLO, "system": "sys", "tools": TOOLS}


def test_count_tokens_falls_back_to_the_estimate_when_anthropic_is_down(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.fail(MODEL, error_status(529))
    with anthropic_client(gateway, TOKEN) as client:
        counted = client.messages.count_tokens(model=MODEL, messages=HELLO)
    assert 0 < counted.input_tokens < 50


ERRORS = {
    "unknown-key": ({"api_key": "tg-nobody"}, {}, anthropic.AuthenticationError,
                    "authentication_error"),
    "missing-max-tokens": ({}, {"max_tokens": None}, anthropic.BadRequestError,
                           "invalid_request_error"),
    "unknown-model": ({}, {"model": "claude-nonexistent"}, anthropic.NotFoundError,
                      "not_found_error"),
}


@pytest.mark.parametrize(("client_options", "override", "error", "kind"), ERRORS.values(),
                         ids=ERRORS.keys())
def test_gateway_errors_come_in_anthropics_shape(
        gateway: GatewayProcess, upstream: FakeAnthropic, client_options: dict[str, str],
        override: dict[str, object], error: type[anthropic.APIStatusError], kind: str):
    body: dict[str, object] = {"model": MODEL, "max_tokens": 10, "messages": HELLO}
    body.update(override)
    body = {k: v for k, v in body.items() if v is not None}
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(error) as caught:
            client.with_options(**client_options).post(  # type: ignore[arg-type]
                "/v1/messages", body=body, cast_to=anthropic.types.Message)
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == kind
    assert upstream.requests == []


def test_an_anthropic_refusal_is_passed_through_in_its_own_words(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.fail(MODEL, error_status(400, "messages.0.content: too many images"))
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.BadRequestError) as caught:
            client.messages.create(model=MODEL, max_tokens=10, messages=HELLO)
    assert caught.value.body == {"type": "error", "error": {
        "type": "invalid_request_error", "message": "messages.0.content: too many images"}}


def test_overload_before_any_content_is_an_http_error_not_a_broken_stream(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.fail(MODEL, error_event_after(2))  # message_start, content_block_start, error
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
                list(stream)
    assert caught.value.status_code == 503
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"


def test_a_stream_broken_after_content_ends_with_an_error_event_and_partial_usage(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    upstream.set_usage(input_tokens=1000, output_tokens=40)
    upstream.fail(MODEL, break_stream_after(5))  # start, block start, ping, two deltas
    received: list[str] = []
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=MODEL, max_tokens=10, messages=HELLO) as stream:
                request_id = stream.response.headers["x-request-id"]
                received.extend(stream.text_stream)
    assert "".join(received) == "Echo: hello"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "api_error"
    logged = decision(gateway, request_id)
    assert logged["outcome"] == "stream_broken"
    # message_start's input side and placeholder output: 1000*3 + 1*15 = 3015 µUSD
    assert (logged["input_tokens"], logged["output_tokens"]) == (1000, 1)
    assert logged["cost_usd"] == "0.003015"


def test_a_budget_stop_ends_an_anthropic_stream_like_max_tokens_would(
        gateway: GatewayProcess, upstream: FakeAnthropic):
    """claude-haiku-4-5: 1 µUSD an input token, 5 an output token. The prompt is estimated at
    607 tokens; with max_tokens 100 the hold (1107 µUSD) fits the $0.0015 budget, and the
    meter stops the stream after about (1500 - 607) / 5 ≈ 178 deltas of the 301-word echo."""
    words = " ".join(f"w{i}" for i in range(300))
    with anthropic_client(gateway, CAPPED_TOKEN) as client:
        with client.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                    messages=[{"role": "user", "content": words}]) as stream:
            names = [event.type for event in stream]
            message = stream.get_final_message()
            request_id = stream.response.headers["x-request-id"]
    assert message.stop_reason == "max_tokens"
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    text = message.content[0].text if message.content[0].type == "text" else ""
    assert f"Echo: {words}".startswith(text) and 170 < len(text.split()) < 190
    assert decision(gateway, request_id)["outcome"] == "budget_stopped"
