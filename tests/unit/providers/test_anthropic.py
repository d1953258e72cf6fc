"""The Anthropic adapter's own jobs: usage into OpenAI accounting, errors into the one tree, and
stream usage taken from the last cumulative figure. The network boundary (Transport) is a
scripted stand-in here; tests/integration/ runs the adapter against the fake Anthropic server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from tollgate.gateway.config.models import AnthropicProvider
from tollgate.gateway.errors import (
    UpstreamClientError,
    UpstreamOverloaded,
    UpstreamRateLimited,
    UpstreamServerError,
    UpstreamUnavailable,
)
from tollgate.gateway.pricing import Usage
from tollgate.gateway.providers.anthropic import AnthropicAdapter, parse_anthropic_usage
from tollgate.gateway.providers.base import WireRequest
from tollgate.gateway.transport import Timeouts, TransportReply


def test_input_tokens_exclude_both_cache_classes_so_they_are_added_back():
    usage = parse_anthropic_usage({
        "input_tokens": 100, "cache_read_input_tokens": 2000,
        "cache_creation_input_tokens": 500, "output_tokens": 50,
        "cache_creation": {"ephemeral_5m_input_tokens": 400, "ephemeral_1h_input_tokens": 100},
        "output_tokens_details": {"thinking_tokens": 20},
    })
    assert usage == Usage(input_tokens=2600, output_tokens=50, cached_input_tokens=2000,
                          reasoning_tokens=20, cache_write_tokens=500, cache_write_1h_tokens=100)


def test_missing_cache_fields_count_as_zero_and_bad_figures_are_a_broken_reply():
    assert parse_anthropic_usage({"input_tokens": 7, "output_tokens": 2}) == Usage(
        input_tokens=7, output_tokens=2)
    assert parse_anthropic_usage(None) is None
    with pytest.raises(UpstreamServerError):
        parse_anthropic_usage({"input_tokens": -1, "output_tokens": 2})


class _Lines:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.headers: dict[str, str] = {}
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def lines(self) -> AsyncIterator[bytes]:
        for line in self._body.splitlines(True):
            yield line

    def close(self) -> None:
        return None


class ScriptedTransport:
    """Answers every request with one canned reply and remembers what was sent."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.sent: list[tuple[str, dict[str, str], Any]] = []

    async def post(self, url: str, headers: dict[str, str], body: bytes,
                   timeouts: Timeouts) -> TransportReply:
        self.sent.append((url, headers, orjson.loads(body)))
        return TransportReply(self.status, self.headers, self.body)

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes,
                          timeouts: Timeouts) -> _Lines:
        self.sent.append((url, headers, orjson.loads(body)))
        return _Lines(self.status, self.body)

    async def aclose(self) -> None:
        return None


def adapter(transport: ScriptedTransport) -> AnthropicAdapter:
    config = AnthropicProvider.model_validate({
        "name": "claude", "type": "anthropic", "baseURL": "http://127.0.0.1:9/"})
    return AnthropicAdapter(config, transport, ())


def error_body(kind: str, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


@pytest.mark.parametrize(("status", "kind", "error"), [
    (529, "overloaded_error", UpstreamOverloaded),
    (500, "api_error", UpstreamServerError),
    (429, "rate_limit_error", UpstreamRateLimited),
    (401, "authentication_error", UpstreamUnavailable),
    (400, "invalid_request_error", UpstreamClientError),
])
async def test_error_statuses_map_through_the_one_table(status: int, kind: str,
                                                        error: type[Exception]):
    transport = ScriptedTransport(status, error_body(kind, "messages: Field required"))
    with pytest.raises(error) as caught:
        await adapter(transport).chat(WireRequest({"messages": []}), "claude-haiku-4-5")
    if status == 400:
        assert caught.value.message == "messages: Field required"
        assert caught.value.code == "invalid_request_error"
        assert not caught.value.retryable
    else:
        assert caught.value.retryable


async def test_the_request_carries_the_version_header_and_the_model_and_no_stream_flag():
    reply = {"id": "msg_1", "content": [], "usage": {"input_tokens": 3, "output_tokens": 1}}
    transport = ScriptedTransport(200, orjson.dumps(reply))
    got = await adapter(transport).chat(
        WireRequest({"messages": [], "max_tokens": 5, "stream": True},
                    headers={"anthropic-beta": "b1"}), "claude-haiku-4-5")
    assert got.usage == Usage(input_tokens=3, output_tokens=1)
    [(url, headers, body)] = transport.sent
    assert url == "http://127.0.0.1:9/v1/messages"
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "b1"
    assert "x-api-key" not in headers, "no apiKey configured: no key header"
    assert body == {"messages": [], "max_tokens": 5, "model": "claude-haiku-4-5"}


def sse(*events: tuple[str, dict[str, Any]]) -> bytes:
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"
                    for name, data in events)


START = ("message_start", {"type": "message_start", "message": {
    "id": "msg_1", "model": "c", "content": [], "usage": {
        "input_tokens": 10, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 0,
        "output_tokens": 1}}})


async def test_stream_usage_is_the_last_cumulative_figure_never_the_placeholder_added():
    body = sse(START,
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": None},
                                  "usage": {"output_tokens": 5}}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                  "usage": {"output_tokens": 12, "input_tokens": 10}}),
               ("message_stop", {"type": "message_stop"}))
    stream = await adapter(ScriptedTransport(200, body)).chat_stream(
        WireRequest({"messages": []}), "c")
    names = [event.name async for event in stream]
    assert names == ["message_start", "message_delta", "message_delta", "message_stop"]
    assert stream.usage == Usage(input_tokens=100, output_tokens=12, cached_input_tokens=90)


async def test_an_error_event_mid_stream_raises_the_mapped_error_after_partial_usage():
    body = sse(START, ("error", {"type": "error", "error": {"type": "overloaded_error",
                                                            "message": "Overloaded"}}))
    stream = await adapter(ScriptedTransport(200, body)).chat_stream(
        WireRequest({"messages": []}), "c")
    with pytest.raises(UpstreamOverloaded):
        async for _ in stream:
            pass
    assert stream.usage == Usage(input_tokens=100, output_tokens=1, cached_input_tokens=90)


async def test_a_stream_without_message_stop_is_broken():
    stream = await adapter(ScriptedTransport(200, sse(START))).chat_stream(
        WireRequest({"messages": []}), "c")
    with pytest.raises(UpstreamServerError, match="without message_stop"):
        async for _ in stream:
            pass


async def test_embeddings_are_refused_without_a_request():
    transport = ScriptedTransport(200, b"{}")
    with pytest.raises(UpstreamClientError):
        await adapter(transport).embeddings({"input": "x"}, "c")
    assert transport.sent == []
