"""Failover between targets on two separate fake upstreams, streaming included.

`first` and `second` both serve `chat-model`, in that order; `keyless` points at the first fake
but its API-key variable is never set. Timeouts are short so a timeout costs half a second.
"""

from __future__ import annotations

import os
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
    malformed_body,
    slow_first_chunk,
    slow_headers,
    stream_without_done,
)
from tests.integration.helpers import provider, running_gateway, sync_client, user
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-failover-tenant-5a19c3"
FIRST_KEY = "sk-fake-first-aa01"
SECOND_KEY = "sk-fake-second-bb02"
MODEL = "chat-model"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, openai_upstream_server: FakeOpenAI,
            backup_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[
            provider("first", openai_upstream_server, key_env="FAILOVER_FIRST_KEY",
                     models=(MODEL, "solo-model")),
            provider("second", backup_upstream_server, key_env="FAILOVER_SECOND_KEY",
                     models=(MODEL,)),
            provider("keyless", openai_upstream_server, key_env="FAILOVER_NEVER_SET_KEY"),
        ],
        models=[
            {"name": "keyless-first", "targets": [{"provider": "keyless", "model": MODEL},
                                                  {"provider": "second", "model": MODEL}]},
            {"name": "keyless-last", "targets": [{"provider": "first", "model": MODEL},
                                                 {"provider": "keyless", "model": MODEL}]},
        ],
        keys=[key_entry("failover-tenant", TOKEN)],
        pricing=[{"provider": name, "model": MODEL, "inputPerMillionUSD": "1",
                  "outputPerMillionUSD": "2"} for name in ("first", "second")],
    )
    assert "FAILOVER_NEVER_SET_KEY" not in os.environ
    env = {"FAILOVER_FIRST_KEY": FIRST_KEY, "FAILOVER_SECOND_KEY": SECOND_KEY}
    with running_gateway(tmp_path_factory.mktemp("failover"), config, env) as process:
        yield process


RETRYABLE = {
    "http-500": error_status(500),
    "http-503": error_status(503),
    "http-429": error_status(429, retry_after="20"),
    "provider-rejects-credentials-401": error_status(401, "Incorrect API key provided."),
    "timeout-before-headers": slow_headers(3.0),
    "dropped-connection": drop_connection(),
    "200-with-a-body-that-is-not-json": malformed_body(),
}


@pytest.mark.parametrize("fault", RETRYABLE.values(), ids=RETRYABLE.keys())
def test_a_failing_first_target_is_replaced_by_the_second(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        fault: Fault):
    openai_upstream.fail(MODEL, fault)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user("survive this"))
    assert raw.parse().choices[0].message.content == "Echo: survive this"
    assert raw.headers["x-tollgate-provider"] == "second"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert [r.bearer for r in openai_upstream.requests] == [FIRST_KEY]
    assert [r.bearer for r in backup_upstream.requests] == [SECOND_KEY]


MALFORMED_USAGE = {
    "non-numeric-tokens": {"prompt_tokens": "many", "completion_tokens": 1, "total_tokens": 1},
    "negative-tokens": {"prompt_tokens": -5, "completion_tokens": 3, "total_tokens": -2},
}


@pytest.mark.parametrize("usage", MALFORMED_USAGE.values(), ids=MALFORMED_USAGE.keys())
def test_a_reply_with_malformed_usage_counts_as_a_failed_attempt(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        usage: dict[str, object]):
    """Like a body that is not JSON: the reply cannot be metered, so the next target serves
    it — never an internal error."""
    openai_upstream.set_raw_usage(usage)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=MODEL, messages=user("meter me"))
    assert raw.headers["x-tollgate-provider"] == "second"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert len(backup_upstream.requests) == 1


@pytest.mark.parametrize("usage", MALFORMED_USAGE.values(), ids=MALFORMED_USAGE.keys())
def test_malformed_usage_at_the_end_of_a_stream_ends_it_with_an_error_event(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, usage: dict[str, object]):
    openai_upstream.set_raw_usage(usage)
    with sync_client(gateway, TOKEN) as client:
        stream = client.chat.completions.create(model=MODEL, messages=user("x"), stream=True)
        with pytest.raises(openai.APIError) as caught:
            list(stream)
    assert isinstance(caught.value.body, dict), "the gateway's error event, not a torn socket"
    assert caught.value.body["type"] == "api_error"


CLIENT_ERRORS = {
    "http-400": (400, "This model's maximum context length is 8192 tokens.",
                 "context_length_exceeded", "messages"),
    "http-404": (404, "The model `chat-model` does not exist or you do not have access to it.",
                 "model_not_found", None),
}


@pytest.mark.parametrize(("status", "message", "code", "param"), CLIENT_ERRORS.values(),
                         ids=CLIENT_ERRORS.keys())
def test_an_upstream_client_error_is_returned_as_is_without_failover(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        status: int, message: str, code: str, param: str | None):
    openai_upstream.fail(MODEL, error_status(status, message, code=code, param=param))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=user("too long"))
    error = caught.value
    assert error.status_code == status
    assert error.body == {"message": message, "type": "invalid_request_error", "param": param,
                          "code": code}
    assert error.response.headers["x-request-id"]
    assert backup_upstream.requests == []


def test_a_429_from_the_only_target_reaches_the_client_with_its_retry_after(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail("solo-model", error_status(429, retry_after="7"))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="solo-model", messages=user("slow down"))
    assert caught.value.status_code == 429
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "upstream_rate_limited"


def test_a_provider_whose_key_variable_is_unset_is_skipped_without_a_request(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="keyless-first", messages=user("skip the keyless one"))
    assert raw.parse().choices[0].message.content == "Echo: skip the keyless one"
    assert raw.headers["x-tollgate-provider"] == "second"
    assert openai_upstream.requests == [], "a provider with no key must not be called"
    assert [r.bearer for r in backup_upstream.requests] == [SECOND_KEY]


STREAM_RETRYABLE = {
    "fails-before-first-chunk": fail_stream_before_first_chunk(),
    "http-500": error_status(500),
    "http-429": error_status(429),
    "slow-first-chunk": slow_first_chunk(3.0),
    "dropped-connection": drop_connection(),
}


@pytest.mark.parametrize("fault", STREAM_RETRYABLE.values(), ids=STREAM_RETRYABLE.keys())
def test_a_stream_fails_over_while_no_byte_has_reached_the_client(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        fault: Fault):
    openai_upstream.fail(MODEL, fault)
    with sync_client(gateway, TOKEN) as client:
        with client.chat.completions.with_streaming_response.create(
                model=MODEL, messages=user("stream elsewhere"), stream=True) as response:
            headers = response.headers
            chunks = list(response.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) \
        == "Echo: stream elsewhere"
    assert headers["x-tollgate-provider"] == "second"
    assert headers["x-tollgate-attempts"] == "2"
    assert len(backup_upstream.requests) == 1


BROKEN_STREAMS = {
    # role chunk, "Echo:", " one" — then the socket closes
    "connection-closed-mid-stream": (break_stream_after(3), "Echo: one"),
    "ended-without-done": (stream_without_done(), "Echo: one two three four five"),
}


@pytest.mark.parametrize(("fault", "text_before_error"), BROKEN_STREAMS.values(),
                         ids=BROKEN_STREAMS.keys())
def test_a_stream_broken_after_its_first_bytes_raises_in_the_sdk_and_is_not_retried(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        fault: Fault, text_before_error: str):
    openai_upstream.fail(MODEL, fault)
    received: list[str] = []
    with sync_client(gateway, TOKEN) as client:
        stream = client.chat.completions.create(
            model=MODEL, messages=user("one two three four five"), stream=True)
        with pytest.raises(openai.APIError) as caught:
            for chunk in stream:
                received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == text_before_error
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["type"] == "api_error"
    assert caught.value.body["code"] in {"upstream_unreachable", "upstream_server_error"}
    assert backup_upstream.requests == [], "a stream already started must not fail over"


def test_a_broken_stream_ends_with_an_error_data_event_and_no_done(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail(MODEL, break_stream_after(2))
    body = {"model": MODEL, "messages": user("break me"), "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        events = [line for line in response.iter_lines() if line]
    assert response.status_code == 200
    assert len(events) == 3, "two relayed events, then the error event"
    assert events[-1].startswith('data: {"error":')
    assert "data: [DONE]" not in events


ALL_DOWN = {
    "server-error-then-unreachable": (error_status(500), drop_connection(), 502,
                                      "upstream_server_error", "upstream_unreachable"),
    "server-error-then-timeout": (error_status(503), slow_headers(3.0), 504,
                                  "upstream_server_error", "upstream_timeout"),
}


@pytest.mark.parametrize(("first_fault", "second_fault", "status", "first_code", "second_code"),
                         ALL_DOWN.values(), ids=ALL_DOWN.keys())
def test_when_every_target_fails_the_error_names_each_attempt(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI,
        first_fault: Fault, second_fault: Fault, status: int, first_code: str,
        second_code: str):
    openai_upstream.fail(MODEL, first_fault)
    backup_upstream.fail(MODEL, second_fault)
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=user("anyone there?"))
    error = caught.value
    assert error.status_code == status
    assert error.code == second_code
    assert isinstance(error.body, dict) and error.body["type"] == "api_error"
    assert f"first/{MODEL} ({first_code})" in error.message
    assert f"second/{MODEL} ({second_code})" in error.message
    assert len(openai_upstream.requests) == len(backup_upstream.requests) == 1


def test_when_the_last_target_has_no_key_the_answer_is_503(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail(MODEL, error_status(500))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="keyless-last", messages=user("hello?"))
    assert caught.value.status_code == 503
    assert caught.value.code == "upstream_unavailable"
    assert f"keyless/{MODEL} (upstream_unavailable)" in caught.value.message


def test_a_stream_whose_targets_all_fail_gets_a_plain_http_error(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    openai_upstream.fail(MODEL, fail_stream_before_first_chunk())
    backup_upstream.fail(MODEL, error_status(500))
    with sync_client(gateway, TOKEN) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model=MODEL, messages=user("x"), stream=True)
    assert caught.value.status_code == 502
    assert "first/chat-model (upstream_unreachable)" in caught.value.message
