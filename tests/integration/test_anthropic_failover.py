"""Failover across API shapes: a key whose chain is Claude (Anthropic) then GPT (OpenAI).

An Anthropic SDK request fails over to GPT and is answered in Anthropic's shape; an OpenAI SDK
request for GPT fails over to Claude. Streams fail over until their first content event — an
Anthropic overload reported as an `error` event right after message_start included — and
after it end with an error event in the inbound API's shape.
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import openai
import pytest

from tests.fakes import anthropic_upstream as fa
from tests.fakes import openai_upstream as fo
from tests.integration.helpers import (
    anthropic_client,
    anthropic_provider,
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-cross-shape-9e2c"
CLAUDE, GPT = "claude-sonnet-4-6", "gpt-4o-mini"
HELLO = [{"role": "user", "content": "are you there"}]
CHAIN = [{"provider": "claude", "model": CLAUDE}, {"provider": "gpt", "model": GPT}]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            anthropic_upstream_server: fa.FakeAnthropic,
            openai_upstream_server: fo.FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[anthropic_provider("claude", anthropic_upstream_server, key_env="XS_ANT"),
                   provider("gpt", openai_upstream_server, key_env="XS_OAI", type="openai")],
        models=[{"name": "chat-reverse", "targets": list(reversed(CHAIN))}],
        keys=[key_entry("cross-shape", TOKEN, fallbacks=CHAIN)],
    )
    with running_gateway(tmp_path_factory.mktemp("cross-shape"), config,
                         {"XS_ANT": "sk-ant-xs", "XS_OAI": "sk-oai-xs"}) as process:
        yield process


OUTAGES = {
    "overloaded-529": fa.error_status(529),
    "server-error": fa.error_status(500),
    "rate-limited": fa.error_status(429, retry_after="30"),
    "unreachable": fa.drop_connection(),
    "timeout": fa.slow_headers(3.0),
}


@pytest.mark.parametrize("fault", OUTAGES.values(), ids=OUTAGES.keys())
def test_an_anthropic_request_is_served_by_gpt_when_anthropic_is_down(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI, fault: fa.Fault):
    anthropic_upstream.fail(CLAUDE, fault)
    with anthropic_client(gateway, TOKEN) as client:
        raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=50,
                                                       messages=HELLO)
    message = raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "Echo: are you there"
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-model"]) == ("gpt", GPT)
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert len(anthropic_upstream.requests) == 1
    [sent] = openai_upstream.requests
    assert sent.body["max_completion_tokens"] == 50


def test_an_anthropic_stream_fails_over_on_an_overload_event_before_content(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI):
    anthropic_upstream.fail(CLAUDE, fa.error_event_after(3))  # start, block start, ping
    with anthropic_client(gateway, TOKEN) as client:
        with client.messages.stream(model=CLAUDE, max_tokens=50, messages=HELLO) as stream:
            text = "".join(stream.text_stream)
            headers = stream.response.headers
            message = stream.get_final_message()
    assert text == "Echo: are you there"
    assert headers["x-tollgate-provider"] == "gpt" and headers["x-tollgate-attempts"] == "2"
    assert message.stop_reason == "end_turn"


def test_an_anthropic_stream_broken_after_content_is_not_retried(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI):
    anthropic_upstream.fail(CLAUDE, fa.error_event_after(5))  # after two text deltas
    received: list[str] = []
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=CLAUDE, max_tokens=50,
                                        messages=HELLO) as stream:
                received.extend(stream.text_stream)
    assert "".join(received) == "Echo: are"
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert openai_upstream.requests == [], "a stream already started must not fail over"


def test_an_openai_request_is_served_by_claude_when_openai_is_down(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI):
    openai_upstream.fail(GPT, fo.error_status(503))
    anthropic_upstream.set_usage(input_tokens=10, output_tokens=5)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="chat-reverse", messages=user("hello from openai"))
        chunks = list(client.chat.completions.create(
            model="chat-reverse", messages=user("stream from openai"), stream=True,
            stream_options={"include_usage": True}))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello from openai"
    assert raw.headers["x-tollgate-provider"] == "claude"
    # claude-sonnet-4-6: 10*3 + 5*15 = 105 µUSD
    assert raw.headers["x-tollgate-cost-usd"] == "0.000105"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Echo: stream from openai"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 15


def test_when_every_shape_is_down_the_anthropic_client_gets_anthropics_error_shape(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI):
    anthropic_upstream.fail(CLAUDE, fa.error_status(529))
    openai_upstream.fail(GPT, fo.error_status(500))
    with anthropic_client(gateway, TOKEN) as client:
        with pytest.raises(anthropic.InternalServerError) as caught:
            client.messages.create(model=CLAUDE, max_tokens=5, messages=HELLO)
    assert caught.value.status_code == 502
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "error"
    assert caught.value.body["error"]["type"] == "api_error"
    message = caught.value.body["error"]["message"]
    assert f"claude/{CLAUDE} (upstream_overloaded)" in message
    assert f"gpt/{GPT} (upstream_server_error)" in message
    decision = wait_for_log(gateway, lambda e: e.get("event") == "request"
                            and e.get("error_code") == "upstream_server_error"
                            and len(e.get("attempts", [])) == 2)
    assert [a["outcome"] for a in decision["attempts"]] == ["upstream_overloaded",
                                                            "upstream_server_error"]


def test_an_openai_client_sees_an_openai_error_when_claude_alone_is_overloaded(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic):
    anthropic_upstream.fail(CLAUDE, fa.error_status(529))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=f"claude/{CLAUDE}", messages=user("x"))
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_overloaded"


def test_an_openai_stream_served_by_claude_fails_over_on_an_overload_before_content(
        gateway: GatewayProcess, anthropic_upstream: fa.FakeAnthropic,
        openai_upstream: fo.FakeOpenAI):
    anthropic_upstream.fail(CLAUDE, fa.error_event_after(2))  # message_start, block start
    with sync_client(gateway, TOKEN) as client:
        with client.chat.completions.with_streaming_response.create(
                model=CLAUDE, messages=user("held back"), stream=True) as response:
            headers = response.headers
            chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == \
        "Echo: held back"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert (headers["x-tollgate-provider"], headers["x-tollgate-attempts"]) == ("gpt", "2")
