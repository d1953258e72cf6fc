"""Non-streaming chat completions through the gateway, with the official openai SDK as client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI
from tests.integration.helpers import (
    async_client,
    provider,
    running_gateway,
    sync_client,
    user,
    wait_for_log,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-chat-tenant-0c4f1e"
PRIMARY_KEY = "sk-fake-primary-51d2a7"
LOCAL_KEY = "sk-fake-local-9b03ee"
ENV = {"CHAT_PRIMARY_KEY": PRIMARY_KEY, "CHAT_LOCAL_KEY": LOCAL_KEY}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    fake = openai_upstream_server
    config = config_doc(
        providers=[
            # type `openai` pointed at the fake: catalog prices apply (gpt-4o, gpt-4o-mini …)
            provider("primary", fake, key_env="CHAT_PRIMARY_KEY", type="openai"),
            provider("local", fake, key_env="CHAT_LOCAL_KEY",
                     models=("llama-3.1-8b", "qwen-priced")),
        ],
        keys=[key_entry("chat-tenant", TOKEN, customerId="acme")],
        pricing=[{"provider": "local", "model": "qwen-priced", "inputPerMillionUSD": "3",
                  "outputPerMillionUSD": "15", "cachedInputPerMillionUSD": "0.30"}],
    )
    with running_gateway(tmp_path_factory.mktemp("chat"), config, ENV) as process:
        yield process


def test_the_sync_sdk_gets_the_upstream_answer_and_routing_headers(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=user("hello gateway"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello gateway"
    assert completion.choices[0].finish_reason == "stop"
    assert raw.headers["x-tollgate-provider"] == "primary"
    assert raw.headers["x-tollgate-model"] == "gpt-4o-mini"
    assert raw.headers["x-tollgate-attempts"] == "1"
    assert raw.headers["x-request-id"]


def test_the_upstream_gets_the_provider_key_and_never_the_virtual_key(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        client.chat.completions.create(model="gpt-4o-mini", messages=user("who am I"))
    [received] = openai_upstream.requests
    assert received.path == "/v1/chat/completions"
    assert received.bearer == PRIMARY_KEY
    assert all(TOKEN not in value for value in received.headers.values())


def test_request_fields_reach_the_upstream_unchanged_apart_from_the_model(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    messages = [{"role": "system", "content": "be brief"}, *user("hi")]
    with sync_client(gateway, TOKEN) as client:
        client.chat.completions.create(
            model="primary/gpt-4o-mini", messages=messages, temperature=0.25, max_tokens=17,
            seed=7, stop=["\n\n"], user="end-user-42")
    [received] = openai_upstream.requests
    assert received.body == {"model": "gpt-4o-mini", "messages": messages, "temperature": 0.25,
                             "max_tokens": 17, "seed": 7, "stop": ["\n\n"],
                             "user": "end-user-42"}


@pytest.mark.parametrize(
    ("model", "prompt", "cached", "completion", "reasoning", "cost"),
    [
        # (1234-200)*0.15 + 200*0.075 + 567*0.60 = 510.3 micro-USD → 510
        ("gpt-4o-mini", 1234, 200, 567, 100, "0.00051"),
        # 400*2.50 + 600*1.25 + 50*10.00 = 2250 micro-USD
        ("gpt-4o", 1000, 600, 50, 20, "0.00225"),
        # 3*2.50 = 7.5 micro-USD, rounded half up once
        ("gpt-4o", 3, 0, 0, 0, "0.000008"),
    ],
    ids=["cached-input-discounted", "reasoning-inside-completion", "rounded-half-up"],
)
def test_the_cost_header_is_the_catalog_price_of_the_reported_usage(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI, model: str, prompt: int,
        cached: int, completion: int, reasoning: int, cost: str):
    openai_upstream.set_usage(prompt_tokens=prompt, completion_tokens=completion,
                              cached_tokens=cached, reasoning_tokens=reasoning)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=user("price me"))
    assert raw.headers["x-tollgate-cost-usd"] == cost


def test_usage_details_reach_the_client_untouched(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=200,
                              reasoning_tokens=100)
    with sync_client(gateway, TOKEN) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=user("x"))
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (1234, 567, 1801)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 200
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 100


async def test_the_async_sdk_gets_the_answer_usage_and_cost(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=1234, completion_tokens=567, cached_tokens=200)
    async with async_client(gateway, TOKEN) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=user("hello from asyncio"))
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: hello from asyncio"
    assert completion.usage is not None and completion.usage.total_tokens == 1801
    assert raw.headers["x-tollgate-provider"] == "primary"
    assert raw.headers["x-tollgate-cost-usd"] == "0.00051"


def test_a_pricing_override_prices_an_openai_compatible_model(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=2000, completion_tokens=100, cached_tokens=1000)
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="qwen-priced", messages=user("override"))
    # 1000*3 + 1000*0.30 + 100*15 = 4800 micro-USD
    assert raw.headers["x-tollgate-cost-usd"] == "0.0048"
    assert raw.headers["x-tollgate-provider"] == "local"
    assert openai_upstream.requests[0].bearer == LOCAL_KEY


def test_an_unpriced_model_is_served_and_flagged_rather_than_billed_at_zero(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    with sync_client(gateway, TOKEN) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="llama-3.1-8b", messages=user("no price for me"))
    assert raw.parse().choices[0].message.content == "Echo: no price for me"
    assert raw.headers["x-tollgate-cost-usd"] == "unknown"
    request_id = raw.headers["x-request-id"]
    event = wait_for_log(gateway, lambda e: e.get("event") == "unpriced_model"
                         and e.get("request_id") == request_id)
    assert (event["provider"], event["model"]) == ("local", "llama-3.1-8b")
    metrics = httpx.get(gateway.url + "/metrics").text
    assert 'tollgate_unpriced_requests_total{model="llama-3.1-8b",provider="local"}' in metrics


async def test_concurrent_requests_each_get_their_own_answer(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    async with async_client(gateway, TOKEN) as client:
        completions = await asyncio.gather(*(
            client.chat.completions.create(model="gpt-4o-mini", messages=user(f"caller {n}"))
            for n in range(20)))
    assert [c.choices[0].message.content for c in completions] \
        == [f"Echo: caller {n}" for n in range(20)]
    assert len(openai_upstream.requests) == 20
