"""Streamed chat completions (SSE) through the gateway: content, usage chunk, cost comment."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, slow_stream
from tests.integration.helpers import (
    async_client,
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
    wait_until,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-stream-tenant-77a0d2"
PROVIDER_KEY = "sk-fake-stream-3e8c40"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[provider("primary", openai_upstream_server, key_env="STREAM_KEY",
                            type="openai")],
        keys=[key_entry("stream-tenant", TOKEN)],
    )
    with running_gateway(tmp_path_factory.mktemp("stream"), config,
                         {"STREAM_KEY": PROVIDER_KEY}) as process:
        yield process


def _sse_lines(gateway: GatewayProcess, body: dict[str, object]) -> tuple[httpx.Headers, list[str]]:
    """The raw SSE body, line by line, as a non-SDK client sees it."""
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return response.headers, list(response.iter_lines())


def test_a_sync_stream_without_include_usage_has_no_usage_chunk(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=user("stream this please"), stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: stream this please"
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks), "a usage-only chunk reached a client that didn't ask"


def test_the_upstream_is_always_asked_for_stream_usage(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        list(client.chat.completions.create(
            model="gpt-4o-mini", messages=user("meter me"), stream=True))
    [received] = openai_upstream.requests
    assert received.body["stream"] is True
    assert received.body["stream_options"] == {"include_usage": True}
    assert received.bearer == PROVIDER_KEY
    assert received.headers["accept"] == "text/event-stream"


def test_a_sync_stream_with_include_usage_ends_with_the_usage_chunk(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=321, completion_tokens=45, cached_tokens=300,
                              reasoning_tokens=12)
    with sync_client(gateway, TOKEN) as client:
        chunks = list(client.chat.completions.create(
            model="gpt-4o-mini", messages=user("count me"), stream=True,
            stream_options={"include_usage": True}))
    *content_chunks, last = chunks
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (321, 45)
    assert last.usage.prompt_tokens_details is not None
    assert last.usage.prompt_tokens_details.cached_tokens == 300
    assert last.usage.completion_tokens_details is not None
    assert last.usage.completion_tokens_details.reasoning_tokens == 12
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == "Echo: count me"


async def test_an_async_stream_gets_content_and_usage(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=10, completion_tokens=4)
    async with async_client(gateway, TOKEN) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=user("async stream"), stream=True,
            stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: async stream"
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 14


def test_a_stream_carries_routing_headers(gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        with client.chat.completions.with_streaming_response.create(
                model="gpt-4o-mini", messages=user("headers"), stream=True) as response:
            assert response.headers["x-tollgate-provider"] == "primary"
            assert response.headers["x-tollgate-model"] == "gpt-4o-mini"
            assert response.headers["x-tollgate-attempts"] == "1"
            assert response.headers["x-request-id"]
            list(response.parse())


@pytest.mark.parametrize("include_usage", [True, False], ids=["usage-asked", "usage-not-asked"])
def test_the_streamed_cost_arrives_as_an_sse_comment_before_done(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, include_usage: bool):
    openai_upstream.set_usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=200)
    body: dict[str, object] = {"model": "gpt-4o-mini", "messages": user("bill me"),
                               "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    _, lines = _sse_lines(gateway, body)
    events = [line for line in lines if line]
    # (1234-200)*0.15 + 200*0.075 + 567*0.60 = 510.3 micro-USD → 510
    assert events[-2:] == [": tollgate-cost-usd 0.00051", "data: [DONE]"]
    assert any('"usage":{' in line for line in events) is include_usage


def test_stream_usage_is_read_when_the_upstream_writes_json_with_spaces(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    """JSON allows whitespace after `:`; self-hosted servers built on Python's json module
    write `"usage": {…}`. The gateway must still meter the stream and hide the chunk."""
    openai_upstream.use_spaced_json()
    openai_upstream.set_usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=200)
    _, lines = _sse_lines(gateway, {"model": "gpt-4o-mini", "messages": user("spaced"),
                                    "stream": True})
    events = [line for line in lines if line]
    assert not any('"choices": []' in line for line in events), "usage chunk leaked to client"
    assert events[-2:] == [": tollgate-cost-usd 0.00051", "data: [DONE]"]


def test_a_client_leaving_mid_stream_stops_the_upstream_stream(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail("gpt-4o-mini", slow_stream(0.1))
    long_prompt = " ".join(f"word{i}" for i in range(40))  # ~4 s of events if not stopped
    body = {"model": "gpt-4o-mini", "messages": user(long_prompt), "stream": True}
    with httpx.stream("POST", gateway.base_url + "/chat/completions", json=body, timeout=15,
                      headers={"authorization": f"Bearer {TOKEN}"}) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        assert next(lines).startswith("data: ")
    decision = wait_for_log(gateway, lambda e: e.get("event") == "request"
                            and e.get("request_id") == request_id)
    assert decision["outcome"] == "client_disconnected"
    wait_until(lambda: openai_upstream.abandoned_streams == 1, timeout=2,
               what="the upstream stream is dropped (else it keeps streaming to nobody)")
