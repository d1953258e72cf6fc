"""Budgets and rate limits shared by several gateway processes through one real Redis.

Three gateway processes serve every test here: gateway A runs two uvicorn workers, gateway B
one, and all three share the module's redis-server. Bursts of concurrent requests are spread
over both addresses, so a limit that were counted per process would admit too many.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import FakeOpenAI, slow_headers, slow_stream
from tests.integration.governance.support import (
    PROVIDER_ENV,
    budget_for,
    chat,
    chat_body,
    error_code,
    governed_config,
    governed_key,
    key_info,
    token_for,
    usd,
    wait_for_a_fresh_rate_window,
)
from tests.integration.helpers import wait_until
from tests.support.gateway import GatewayProcess, start_gateway
from tests.support.redis import RedisServer

EXACT = "exact-budget"
PER_MINUTE = "per-minute"
CONCURRENT = "concurrent"
TOKENS = "tokens"
ACME_A, ACME_B = "acme-a", "acme-b"
ROOM = "room"
DURABLE = "durable"
HANG_UP = "hang-up"


@dataclass
class Cluster:
    config_path: Path
    gateways: list[GatewayProcess]

    def restart(self, index: int) -> GatewayProcess:
        """Stop one gateway and start a new process from the same config in its place."""
        self.gateways[index].stop()
        self.gateways[index] = start_gateway(self.config_path, env=PROVIDER_ENV)
        return self.gateways[index]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
            openai_upstream_server: FakeOpenAI) -> Iterator[Cluster]:
    config = governed_config(
        openai_upstream_server,
        keys=[
            governed_key(EXACT, budget={"maxUSD": budget_for(10, max_tokens=10),
                                        "period": "total"}),
            governed_key(PER_MINUTE, rateLimit={"requestsPerMinute": 5}),
            governed_key(CONCURRENT, rateLimit={"maxConcurrent": 2}),
            governed_key(TOKENS, rateLimit={"tokensPerMinute": 1000}),
            governed_key(ACME_A, customerId="acme"),
            governed_key(ACME_B, customerId="acme"),
            governed_key(ROOM, budget={"maxUSD": "0.10", "period": "total"}),
            governed_key(DURABLE, budget={"maxUSD": "1.00", "period": "total"}),
            governed_key(HANG_UP, budget={"maxUSD": "1.00", "period": "total"},
                         rateLimit={"maxConcurrent": 1}),
        ],
        customers=[{"id": "acme",
                    "budget": {"maxUSD": budget_for(3, max_tokens=10), "period": "monthly"}}],
        store={"url": redis_server.url},
    )
    path = tmp_path_factory.mktemp("shared-limits") / "tollgate.yaml"
    first = start_gateway(path, config=config, env=PROVIDER_ENV, workers=2)
    cluster = Cluster(path, [first])
    try:
        cluster.gateways.append(start_gateway(path, env=PROVIDER_ENV))
        yield cluster
    finally:
        for gateway in cluster.gateways:
            gateway.stop()


async def _burst(cluster: Cluster, requests: list[tuple[int, str]],
                 body: dict[str, Any]) -> list[httpx.Response]:
    """Send every (gateway index, key id) request at once; the responses, in order."""
    limits = httpx.Limits(max_connections=len(requests))
    async with httpx.AsyncClient(timeout=15, limits=limits) as client:
        return await asyncio.gather(*(
            client.post(cluster.gateways[index].base_url + "/chat/completions", json=body,
                        headers={"authorization": f"Bearer {token_for(key_id)}"})
            for index, key_id in requests
        ))


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(response.status_code for response in responses)


def _seconds_to_next_utc_month() -> float:
    now = datetime.now(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return (datetime(year, month, 1, tzinfo=UTC) - now).total_seconds()


async def test_a_budget_for_exactly_ten_requests_admits_ten_of_sixty_sent_at_once(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    # each request holds max_tokens x $0.001 = $0.01 and really costs the same
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)
    responses = await _burst(cluster, [(i % 2, EXACT) for i in range(60)],
                             chat_body(max_tokens=10))

    assert _statuses(responses) == {200: 10, 429: 50}
    assert {error_code(r) for r in responses if r.status_code == 429} == {"budget_exceeded"}
    assert len(openai_upstream.requests) == 10
    costs = [usd(r.headers["x-tollgate-cost-usd"]) for r in responses if r.status_code == 200]
    assert sum(costs) == Decimal("0.10")
    [budget] = key_info(cluster.gateways[1], EXACT)["budgets"]
    assert usd(budget["spentUSD"]) == sum(costs) <= usd(budget["limitUSD"])
    assert (budget["reservedUSD"], budget["remainingUSD"]) == ("0.00", "0.00")


async def test_five_requests_per_minute_admit_five_of_twenty_sent_at_once(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    wait_for_a_fresh_rate_window()
    responses = await _burst(cluster, [(i % 2, PER_MINUTE) for i in range(20)], chat_body())

    assert _statuses(responses) == {200: 5, 429: 15}
    admitted = [r for r in responses if r.status_code == 200]
    rejected = [r for r in responses if r.status_code == 429]
    assert sorted(r.headers["x-ratelimit-remaining-requests"] for r in admitted) == \
        ["0", "1", "2", "3", "4"]
    seconds_left = 60 - datetime.now(UTC).timestamp() % 60
    for response in rejected:
        assert error_code(response) == "rate_limit_exceeded"
        assert response.headers["x-ratelimit-limit-requests"] == "5"
        assert response.headers["x-ratelimit-remaining-requests"] == "0"
        assert response.headers["x-ratelimit-reset-requests"].endswith("s")
        assert abs(int(response.headers["retry-after"]) - seconds_left) <= 2
    [window] = key_info(cluster.gateways[0], PER_MINUTE)["rateLimits"]
    assert (window["requestsPerMinute"], window["requestsRemaining"]) == (5, 0)


def test_tokens_per_minute_count_the_real_usage_once_it_is_known(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    a, b = cluster.gateways
    wait_for_a_fresh_rate_window()
    too_big = chat(a, TOKENS, chat_body(max_tokens=2000))  # its allowance alone is > 1000
    assert error_code(too_big) == "rate_limit_exceeded"
    assert "tokens per minute" in too_big.json()["error"]["message"]
    assert too_big.headers["x-ratelimit-limit-tokens"] == "1000"

    openai_upstream.set_usage(prompt_tokens=4, completion_tokens=6)
    assert chat(a, TOKENS, chat_body(max_tokens=500)).status_code == 200
    [window] = key_info(b, TOKENS)["rateLimits"]
    assert window["tokensRemaining"] == 990  # the hold of 500+ was corrected to the 10 used
    # counted at its allowance, this one would not have fitted beside the first
    assert chat(b, TOKENS, chat_body(max_tokens=900)).status_code == 200


async def test_a_key_with_max_concurrent_two_runs_two_requests_at_a_time(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    openai_upstream.fail("flat-model", slow_headers(1.0))
    responses = await _burst(cluster, [(i % 2, CONCURRENT) for i in range(6)], chat_body())

    assert _statuses(responses) == {200: 2, 429: 4}
    for response in responses:
        if response.status_code == 429:
            assert error_code(response) == "rate_limit_exceeded"
            assert response.headers["retry-after"] == "1"
    openai_upstream.reset()
    assert chat(cluster.gateways[1], CONCURRENT, chat_body()).status_code == 200
    [window] = key_info(cluster.gateways[0], CONCURRENT)["rateLimits"]
    assert (window["maxConcurrent"], window["inFlight"]) == (2, 0)


async def test_two_keys_of_one_customer_draw_on_the_customer_budget_together(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)
    requests = [((i // 2) % 2, ACME_A if i % 2 else ACME_B) for i in range(12)]
    responses = await _burst(cluster, requests, chat_body(max_tokens=10))

    assert _statuses(responses) == {200: 3, 429: 9}
    for response in responses:
        if response.status_code == 429:
            assert error_code(response) == "budget_exceeded"
            assert "customer 'acme'" in response.json()["error"]["message"]
            assert abs(int(response.headers["retry-after"]) - _seconds_to_next_utc_month()) <= 2
    seen = [key_info(cluster.gateways[i], key)["budgets"] for i, key in enumerate((ACME_A, ACME_B))]
    assert seen[0] == seen[1]
    [budget] = seen[0]
    assert budget["scope"] == "customer:acme"
    assert budget["period"] == datetime.now(UTC).strftime("%Y-%m")
    assert (budget["spentUSD"], budget["limitUSD"]) == ("0.03", "0.03")


async def test_a_request_that_fits_beside_the_spend_and_the_open_holds_is_admitted(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    a, b = cluster.gateways
    openai_upstream.set_usage(prompt_tokens=5, completion_tokens=2)  # settles at $0.002
    first = chat(a, ROOM, chat_body(max_tokens=50))  # held $0.05 while it ran
    assert first.headers["x-tollgate-cost-usd"] == "0.002"
    [budget] = key_info(b, ROOM)["budgets"]
    assert (budget["spentUSD"], budget["reservedUSD"], budget["remainingUSD"]) == \
        ("0.002", "0.00", "0.098")

    openai_upstream.fail("flat-model", slow_headers(1.5))
    auth = {"authorization": f"Bearer {token_for(ROOM)}"}
    async with httpx.AsyncClient(timeout=15, headers=auth) as client:
        held = asyncio.create_task(client.post(a.base_url + "/chat/completions",
                                               json=chat_body(max_tokens=50)))
        for _ in range(200):
            info = (await client.get(b.base_url + "/key/info")).json()
            if info["budgets"][0]["reservedUSD"] == "0.05":
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the slow request's hold never showed in /v1/key/info")
        # $0.002 spent + $0.05 held leaves $0.048: a $0.049 hold is refused, $0.048 fits
        too_big = await client.post(b.base_url + "/chat/completions",
                                    json=chat_body(max_tokens=49))
        fits = await client.post(b.base_url + "/chat/completions", json=chat_body(max_tokens=48))
        assert (await held).status_code == 200

    assert error_code(too_big) == "budget_exceeded"
    assert "0.002 spent and 0.05 reserved of 0.10" in too_big.json()["error"]["message"]
    assert fits.status_code == 200
    [budget] = key_info(a, ROOM)["budgets"]
    assert (budget["spentUSD"], budget["reservedUSD"], budget["remainingUSD"]) == \
        ("0.006", "0.00", "0.094")


def test_a_client_hanging_up_mid_stream_leaves_no_hold_and_no_busy_slot_behind(
        cluster: Cluster, openai_upstream: FakeOpenAI):
    gateway = cluster.gateways[1]
    openai_upstream.fail("flat-model", slow_stream(0.2))
    body = chat_body(text="one two three four five six seven eight", max_tokens=10,
                     stream=True)
    with httpx.Client(timeout=15) as client, client.stream(
            "POST", gateway.base_url + "/chat/completions", json=body,
            headers={"authorization": f"Bearer {token_for(HANG_UP)}"}) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                break  # the first chunk arrived: hang up in the middle of the stream

    def idle() -> bool:
        info = key_info(gateway, HANG_UP)
        return (info["budgets"][0]["reservedUSD"], info["rateLimits"][0]["inFlight"]) == \
            ("0.00", 0)

    wait_until(idle, timeout=3, what="the hung-up stream's hold released")
    openai_upstream.reset()
    assert chat(cluster.gateways[0], HANG_UP, chat_body(max_tokens=10)).status_code == 200


def test_spend_survives_a_gateway_restart_and_a_redis_crash(
        cluster: Cluster, redis_server: RedisServer, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)  # $0.01 a request
    for gateway in cluster.gateways:
        assert chat(gateway, DURABLE, chat_body(max_tokens=10)).status_code == 200
    assert key_info(cluster.gateways[0], DURABLE)["budgets"][0]["spentUSD"] == "0.02"

    restarted = cluster.restart(1)
    assert key_info(restarted, DURABLE)["budgets"][0]["spentUSD"] == "0.02"

    redis_server.kill()
    redis_server.start()
    for gateway in cluster.gateways:
        assert key_info(gateway, DURABLE)["budgets"][0]["spentUSD"] == "0.02"
    assert chat(restarted, DURABLE, chat_body(max_tokens=10)).status_code == 200
    assert key_info(cluster.gateways[0], DURABLE)["budgets"][0]["spentUSD"] == "0.03"


def test_the_admin_api_answers_404_when_no_admin_token_is_configured(cluster: Cluster):
    response = httpx.get(cluster.gateways[0].url + "/admin/keys", timeout=5,
                         headers={"authorization": f"Bearer {token_for(DURABLE)}"})
    assert response.status_code == 404
    assert error_code(response) == "unknown_url"
