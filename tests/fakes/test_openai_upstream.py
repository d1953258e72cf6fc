"""The fake OpenAI server, checked with the official SDK talking to it directly: if the SDK
accepts it, the gateway's tests exercise the real wire format."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    Fault,
    break_stream_after,
    drop_connection,
    error_status,
    fail_stream_before_first_chunk,
    running_fake_openai,
    slow_headers,
)

HELLO = [{"role": "user", "content": "hello fake"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAI]:
    with running_fake_openai() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def client(fake: FakeOpenAI) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=fake.base_url, api_key="sk-test", max_retries=0,
                       timeout=5) as sdk:
        yield sdk


def test_the_fake_listens_on_loopback(fake: FakeOpenAI):
    assert fake.base_url.startswith("http://127.0.0.1:")
    assert fake.base_url.endswith("/v1")


def test_a_completion_echoes_the_last_user_message_with_set_usage(
        fake: FakeOpenAI, client: openai.OpenAI):
    fake.set_usage(prompt_tokens=9, completion_tokens=3, cached_tokens=4, reasoning_tokens=1)
    completion = client.chat.completions.create(model="any", messages=HELLO)
    assert completion.choices[0].message.content == "Echo: hello fake"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens_details is not None
    assert completion.usage.completion_tokens_details is not None
    assert (completion.usage.total_tokens, completion.usage.prompt_tokens_details.cached_tokens,
            completion.usage.completion_tokens_details.reasoning_tokens) == (12, 4, 1)


def test_a_stream_sends_the_usage_chunk_only_when_asked(client: openai.OpenAI):
    plain = list(client.chat.completions.create(model="any", messages=HELLO, stream=True))
    metered = list(client.chat.completions.create(
        model="any", messages=HELLO, stream=True, stream_options={"include_usage": True}))
    assert all(c.choices and c.usage is None for c in plain)
    assert metered[-1].choices == [] and metered[-1].usage is not None
    assert len(metered) == len(plain) + 1


def test_requests_are_recorded_with_headers_and_parsed_body(
        fake: FakeOpenAI, client: openai.OpenAI):
    client.chat.completions.create(model="recorded", messages=HELLO, temperature=0.5)
    [request] = fake.requests
    assert (request.method, request.path, request.model) == ("POST", "/v1/chat/completions",
                                                             "recorded")
    assert request.bearer == "sk-test"
    assert request.body["temperature"] == 0.5


def test_a_script_is_consumed_in_order_before_per_model_faults(
        fake: FakeOpenAI, client: openai.OpenAI):
    fake.fail("any", error_status(503))
    fake.script(error_status(400, "first"), None)
    with pytest.raises(openai.BadRequestError, match="first"):
        client.chat.completions.create(model="any", messages=HELLO)
    assert client.chat.completions.create(model="any", messages=HELLO).choices
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="any", messages=HELLO)


def test_a_429_carries_retry_after_and_an_openai_error_body(
        fake: FakeOpenAI, client: openai.OpenAI):
    fake.fail("any", error_status(429, retry_after="3"))
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="any", messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "3"
    assert caught.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize("fault", [drop_connection(), slow_headers(1.0)],
                         ids=["dropped", "slow-headers"])
def test_connection_faults_surface_as_sdk_connection_errors(fake: FakeOpenAI, fault: Fault):
    fake.fail("any", fault)
    with openai.OpenAI(base_url=fake.base_url, api_key="sk", max_retries=0,
                       timeout=0.3) as impatient:
        with pytest.raises(openai.APIConnectionError):
            impatient.chat.completions.create(model="any", messages=HELLO)


@pytest.mark.parametrize(("fault", "events"), [
    (fail_stream_before_first_chunk(), 0),
    (break_stream_after(2), 2),
], ids=["before-first-chunk", "after-two-chunks"])
def test_a_broken_stream_stops_after_the_given_events_without_done(
        fake: FakeOpenAI, fault: Fault, events: int):
    fake.fail("any", fault)
    body = {"model": "any", "messages": HELLO, "stream": True}
    seen: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", fake.base_url + "/chat/completions", json=body,
                          timeout=5) as response:
            assert response.status_code == 200
            seen.extend(line for line in response.iter_lines() if line)
    assert len(seen) == events
    assert "data: [DONE]" not in seen


def test_embeddings_and_models_answer(client: openai.OpenAI):
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [len(item.embedding) for item in result.data] == [8, 8]
    assert "gpt-4o-mini" in {m.id for m in client.models.list()}


def test_a_required_key_turns_away_other_keys_with_401(fake: FakeOpenAI, client: openai.OpenAI):
    fake.require_key("sk-the-right-one")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.chat.completions.create(model="any", messages=HELLO)
    assert caught.value.code == "invalid_api_key"


TOOLS = [{"type": "function", "function": {"name": "weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}]


def test_a_tool_call_reply_parses_in_the_sdk_streamed_or_not(
        fake: FakeOpenAI, client: openai.OpenAI):
    fake.reply_with_tool_call("weather", {"city": "Oslo"})
    completion = client.chat.completions.create(model="any", messages=HELLO, tools=TOOLS)
    [call] = completion.choices[0].message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("weather", '{"city": "Oslo"}')
    assert completion.choices[0].finish_reason == "tool_calls"
    chunks = list(client.chat.completions.create(model="any", messages=HELLO, tools=TOOLS,
                                                 stream=True))
    pieces = [tc.function.arguments for c in chunks for tc in (c.choices[0].delta.tool_calls
                                                                or []) if tc.function]
    assert "".join(p or "" for p in pieces) == '{"city": "Oslo"}'


def test_a_conversation_ending_in_a_tool_result_echoes_it(
        fake: FakeOpenAI, client: openai.OpenAI):
    fake.reply_with_tool_call("weather", {"city": "Oslo"})
    messages = [*HELLO,
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "weather", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "9C"}]
    completion = client.chat.completions.create(model="any", messages=messages, tools=TOOLS)
    assert completion.choices[0].message.content == "Echo: 9C"
