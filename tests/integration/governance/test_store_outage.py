"""Redis killed under a running gateway, then brought back on the same port.

A key whose `onStoreUnavailable` is `allow` keeps being served and its spend reaches Redis
once the server is back, exactly once; a `deny` key is refused with 503 while Redis is away
and served again afterwards, with no restart of anything. An `allow` key's budget stays
enforced through the outage from the figures the gateway last saw plus its queued spend.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, slow_headers
from tests.integration.governance.support import (
    PROVIDER_ENV,
    chat,
    chat_body,
    error_code,
    export_usage,
    governed_config,
    governed_key,
    key_info,
    usd,
)
from tests.integration.helpers import running_gateway, wait_until
from tests.support.gateway import GatewayProcess
from tests.support.redis import RedisServer

ALLOW = "outage-allow"
DENY = "outage-deny"
LOCAL = "outage-local"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
            openai_upstream_server: FakeOpenAI) -> Iterator[GatewayProcess]:
    config = governed_config(
        openai_upstream_server,
        keys=[
            governed_key(ALLOW, budget={"maxUSD": "1.00", "period": "total"}),
            governed_key(DENY, budget={"maxUSD": "1.00", "period": "total"},
                         onStoreUnavailable="deny"),
            governed_key(LOCAL, budget={"maxUSD": "0.06", "period": "total"},
                         onStoreUnavailable="allow"),
        ],
        store={"url": redis_server.url},
    )
    with running_gateway(tmp_path_factory.mktemp("outage"), config, PROVIDER_ENV) as process:
        yield process


def _spent(gateway: GatewayProcess, key_id: str) -> tuple[Decimal, Decimal] | None:
    """(spent, reserved) as /v1/key/info reports them; None while the store is unreachable."""
    info = key_info(gateway, key_id)
    if info.get("storeUnavailable"):
        return None
    [budget] = info["budgets"]
    return usd(budget["spentUSD"]), usd(budget["reservedUSD"])


def test_allow_keys_are_served_through_an_outage_and_their_spend_is_written_back_once(
        gateway: GatewayProcess, redis_server: RedisServer, openai_upstream: FakeOpenAI):
    started = datetime.now(UTC) - timedelta(seconds=1)
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)  # $0.01 a request
    body = chat_body(max_tokens=10)
    before = chat(gateway, ALLOW, body)
    assert before.status_code == 200
    assert _spent(gateway, ALLOW) == (Decimal("0.01"), 0)

    # one request is upstream, holding budget in Redis, when Redis dies
    openai_upstream.script(slow_headers(1.0))
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(chat, gateway, ALLOW, body)
        wait_until(lambda: _spent(gateway, ALLOW) == (Decimal("0.01"), Decimal("0.01")),
                   what="the slow request's hold")
        redis_server.kill()
        during = [chat(gateway, ALLOW, body) for _ in range(3)]
        denied = chat(gateway, DENY, body)
        assert key_info(gateway, ALLOW).get("storeUnavailable") is True
        assert in_flight.result().status_code == 200
    assert [r.status_code for r in during] == [200, 200, 200]
    assert denied.status_code == 503
    assert error_code(denied) == "store_unavailable"
    assert "retry-after" in denied.headers

    redis_server.start()
    costs = [usd(r.headers["x-tollgate-cost-usd"]) for r in (before, in_flight.result(), *during)]
    assert sum(costs) == Decimal("0.05")
    wait_until(lambda: _spent(gateway, ALLOW) == (Decimal("0.05"), 0), timeout=5,
               what="the outage's spend written back to Redis")
    time.sleep(1.5)  # a second write-back would land within the outbox's 1 s period
    assert _spent(gateway, ALLOW) == (Decimal("0.05"), 0)
    assert chat(gateway, DENY, body).status_code == 200

    lines = export_usage(gateway.config_path, "--since", started.isoformat(), "--format", "jsonl")
    records = [json.loads(line) for line in lines.splitlines()]
    allowed = [r for r in records if r["key"] == ALLOW]
    assert sorted(r["request_id"] for r in allowed) == sorted(
        r.headers["x-request-id"] for r in (before, in_flight.result(), *during))
    assert sum(usd(r["cost_usd"]) for r in allowed) == Decimal("0.05")
    assert [r["outcome"] for r in records if r["key"] == DENY] == ["ok"]


def test_allow_keys_budget_is_enforced_from_last_known_figures_during_an_outage(
        gateway: GatewayProcess, redis_server: RedisServer, openai_upstream: FakeOpenAI):
    openai_upstream.set_usage(prompt_tokens=7, completion_tokens=10)  # $0.01 a request
    body = chat_body(max_tokens=10)  # holds exactly $0.01
    up = [chat(gateway, LOCAL, body) for _ in range(3)]
    assert [r.status_code for r in up] == [200, 200, 200]
    assert _spent(gateway, LOCAL) == (Decimal("0.03"), 0)

    redis_server.kill()
    try:
        # last seen: $0.02 spent + $0.01 held by the third request; each local request
        # queues $0.01, so three more fit the $0.06 budget and the fourth does not
        during = [chat(gateway, LOCAL, body) for _ in range(4)]
        assert key_info(gateway, LOCAL).get("storeUnavailable") is True
    finally:
        redis_server.start()
    assert [r.status_code for r in during] == [200, 200, 200, 429]
    refused = during[-1]
    assert error_code(refused) == "budget_exceeded"
    assert "budget exceeded for virtual key 'outage-local'" in refused.json()["error"]["message"]

    wait_until(lambda: _spent(gateway, LOCAL) == (Decimal("0.06"), 0), timeout=5,
               what="the outage's spend written back to Redis")
    time.sleep(1.5)  # a second write-back would land within the outbox's 1 s period
    assert _spent(gateway, LOCAL) == (Decimal("0.06"), 0)
    assert chat(gateway, LOCAL, body).status_code == 429  # the store agrees: budget used
