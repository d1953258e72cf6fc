"""The fake Anthropic server, checked with the official SDK talking to it directly: if the SDK
accepts its replies and streams, the gateway's tests exercise the real wire format."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from tests.fakes.anthropic_upstream import (
    FakeAnthropic,
    error_event_after,
    error_status,
    running_fake_anthropic,
)

HELLO = [{"role": "user", "content": "hello fake"}]
TOOLS = [{"name": "weather", "description": "Weather by city",
          "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropic]:
    with running_fake_anthropic() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropic) -> Iterator[FakeAnthropic]:
    server.reset()
    server.require_key("sk-ant-test")
    yield server
    server.reset()


@pytest.fixture
def client(fake: FakeAnthropic) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=fake.base_url, api_key="sk-ant-test", max_retries=0,
                             timeout=5) as sdk:
        yield sdk


def test_a_message_echoes_with_cache_usage(fake: FakeAnthropic, client: anthropic.Anthropic):
    fake.set_usage(input_tokens=10, output_tokens=3, cache_read=200, cache_creation=50,
                   cache_creation_1h=20)
    message = client.messages.create(model="claude-x", max_tokens=10, messages=HELLO)
    assert message.content[0].type == "text" and message.content[0].text == "Echo: hello fake"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens,
            message.usage.cache_creation_input_tokens) == (10, 200, 50)
    assert message.usage.cache_creation is not None
    assert message.usage.cache_creation.ephemeral_1h_input_tokens == 20
    [request] = fake.requests
    assert request.headers["anthropic-version"]


def test_a_stream_accumulates_into_the_same_message(fake: FakeAnthropic,
                                                    client: anthropic.Anthropic):
    fake.reply_with_tool_use("weather", {"city": "Oslo"}, thinking=True)
    fake.set_usage(input_tokens=10, output_tokens=7, thinking_tokens=2)
    with client.messages.stream(model="claude-x", max_tokens=50, messages=HELLO,
                                tools=TOOLS) as stream:
        names = [event.type for event in stream]
        message = stream.get_final_message()
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use"]
    tool = message.content[2]
    assert tool.type == "tool_use" and tool.input == {"city": "Oslo"}
    assert message.stop_reason == "tool_use"
    assert message.usage.output_tokens == 7


def test_count_tokens(fake: FakeAnthropic, client: anthropic.Anthropic):
    fake.set_count(42)
    assert client.messages.count_tokens(model="claude-x", messages=HELLO).input_tokens == 42


@pytest.mark.parametrize(("body", "problem"), [
    ({"max_tokens": 5, "messages": HELLO, "n": 2}, "n: Extra inputs are not permitted"),
    ({"messages": HELLO}, "max_tokens: Field required"),
    ({"max_tokens": 5, "messages": HELLO * 2}, "roles must alternate"),
    ({"max_tokens": 5, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x",
                                      "content": "1"}]}]}, "no matching tool_use"),
], ids=["extra-field", "no-max-tokens", "not-alternating", "orphan-tool-result"])
def test_a_malformed_body_is_refused_like_the_real_api(fake: FakeAnthropic,
                                                       client: anthropic.Anthropic,
                                                       body: dict[str, object], problem: str):
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body={"model": "claude-x", **body},
                    cast_to=anthropic.types.Message)
    assert problem in str(caught.value)
    assert fake.rejections and problem in fake.rejections[0]


def test_the_wrong_key_is_refused(fake: FakeAnthropic, client: anthropic.Anthropic):
    with pytest.raises(anthropic.AuthenticationError):
        client.with_options(api_key="sk-wrong").messages.create(
            model="claude-x", max_tokens=5, messages=HELLO)


def test_faults_overloaded_status_and_error_event(fake: FakeAnthropic,
                                                  client: anthropic.Anthropic):
    fake.script(error_status(529), error_event_after(2))
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model="claude-x", max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 529
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        list(client.messages.create(model="claude-x", max_tokens=5, messages=HELLO,
                                    stream=True))
