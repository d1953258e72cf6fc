"""Embeddings through the fake upstream and through the built-in mock provider; the operational
endpoints (/healthz, /readyz, /metrics)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from decimal import Decimal

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, error_status
from tests.integration.helpers import async_client, provider, running_gateway, sync_client
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess

TOKEN = "tg-embed-tenant-2b6d"
PROVIDER_KEY = "sk-fake-embed-c0ffee"
REVISION = "ops-rev-2026-11-27"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = config_doc(
        providers=[
            provider("openai", openai_upstream_server, key_env="EMBED_KEY", type="openai"),
            {"name": "demo", "type": "mock", "models": ["mock-embed", "mock-chat"]},
        ],
        models=[{"name": "embedder", "targets": [
            {"provider": "openai", "model": "text-embedding-3-small"},
            {"provider": "demo", "model": "mock-embed"}]}],
        keys=[key_entry("embed-tenant", TOKEN, customerId="umbrella")],
        revision=REVISION,
    )
    with running_gateway(tmp_path_factory.mktemp("embed"), config,
                         {"EMBED_KEY": PROVIDER_KEY}) as process:
        yield process


def test_embeddings_come_from_the_upstream_with_a_catalog_cost(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=1500)
    with sync_client(gateway, TOKEN) as client:
        raw = client.embeddings.with_raw_response.create(
            model="text-embedding-3-small", input=["first text", "second text"], dimensions=4)
    result = raw.parse()
    assert [item.index for item in result.data] == [0, 1]
    assert all(len(item.embedding) == 4 for item in result.data)
    assert result.usage.prompt_tokens == 1500
    # 1500 * 0.02 USD per million = 30 micro-USD
    assert raw.headers["x-tollgate-cost-usd"] == "0.00003"
    assert raw.headers["x-tollgate-provider"] == "openai"
    [received] = openai_upstream.requests
    assert received.path == "/v1/embeddings"
    assert received.bearer == PROVIDER_KEY
    assert received.body["input"] == ["first text", "second text"]
    assert received.body["dimensions"] == 4


async def test_embeddings_from_the_mock_provider_are_deterministic_and_priced(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    async with async_client(gateway, TOKEN) as client:
        first = await client.embeddings.with_raw_response.create(
            model="mock-embed", input="the same words " * 20)
        second = await client.embeddings.create(model="mock-embed", input="the same words " * 20)
    result = first.parse()
    assert result.data[0].embedding == second.data[0].embedding
    assert len(result.data[0].embedding) == 8
    assert first.headers["x-tollgate-provider"] == "demo"
    # mock-embed costs 0.10 USD per million input tokens; rounded half up to micro-USD
    expected = (Decimal(result.usage.prompt_tokens) * Decimal("0.10")).quantize(Decimal("1"),
                                                                               "ROUND_HALF_UP")
    assert Decimal(first.headers["x-tollgate-cost-usd"]) * 1_000_000 == expected
    assert openai_upstream.requests == []


def test_an_embeddings_alias_fails_over_to_the_mock(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    openai_upstream.fail("text-embedding-3-small", error_status(503))
    with sync_client(gateway, TOKEN) as client:
        raw = client.embeddings.with_raw_response.create(model="embedder", input="hello")
    assert raw.headers["x-tollgate-provider"] == "demo"
    assert raw.headers["x-tollgate-attempts"] == "2"
    assert len(raw.parse().data) == 1


def test_healthz_answers_ok(gateway: GatewayProcess):
    response = httpx.get(gateway.url + "/healthz", timeout=15)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_loaded_config_revision(gateway: GatewayProcess):
    response = httpx.get(gateway.url + "/readyz", timeout=15)
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "configRevision": REVISION}


def test_metrics_count_requests_by_key_provider_and_outcome(
        gateway: GatewayProcess, openai_upstream: FakeOpenAI):
    def served() -> float:
        text = httpx.get(gateway.url + "/metrics", timeout=15).text
        line = ('tollgate_requests_total{customer="umbrella",key="embed-tenant",'
                'model="mock-embed",outcome="ok",provider="demo"} ')
        for row in text.splitlines():
            if row.startswith(line):
                return float(row.removeprefix(line))
        return 0.0

    before = served()
    with sync_client(gateway, TOKEN) as client:
        for _ in range(3):
            client.embeddings.create(model="mock-embed", input="count me")
    assert served() == before + 3


def test_a_gateway_without_a_valid_config_is_alive_but_not_ready(
        gateway_factory: Callable[..., GatewayProcess]):
    broken = gateway_factory("apiVersion: tollgate.dev/v1alpha1\nkind: GatewayConfig\n"
                             "providers: [{name: x, type: carrier-pigeon}]\n")
    assert httpx.get(broken.url + "/healthz", timeout=15).status_code == 200
    ready = httpx.get(broken.url + "/readyz", timeout=15)
    assert ready.status_code == 503
    assert ready.json()["status"] == "not ready"
    assert "providers[0]" in ready.json()["reason"]
    refused = httpx.post(broken.base_url + "/chat/completions", timeout=15,
                         headers={"authorization": f"Bearer {TOKEN}"},
                         json={"model": "mock-chat", "messages": [{"role": "user",
                                                                   "content": "hi"}]})
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "config_not_loaded"
    assert refused.headers["x-request-id"]
