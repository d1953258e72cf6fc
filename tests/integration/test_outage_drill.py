"""Outage drill: the primary provider goes down for a long stretch and comes back, under two
real gateway processes that share one real Redis.

`primary` and `steady` (both fake A) retry once and have a circuit breaker that opens after 3
consecutive failures; `primary`'s stays open 2 s (the recovery tests wait that long),
`steady`'s a minute (tests that only need it open). `backup` (fake B) serves the same models.
Each test uses its own model name, so each has a breaker of its own. Timeouts are
FAST_TIMEOUTS: a hanging primary costs 0.5 s per try (the first-byte timeout) — until its
breaker opens; from then on the fallback answers with no timeout paid, which the tests check
against that timeout.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.fakes.openai_upstream import (
    FakeOpenAI,
    error_status,
    fail_stream_before_first_chunk,
    slow_headers,
)
from tests.integration.helpers import (
    FAST_TIMEOUTS,
    provider,
    sync_client,
    user,
    wait_for_log,
    wait_until,
)
from tests.support.config import config_doc, key_entry
from tests.support.gateway import GatewayProcess, start_gateway
from tests.support.redis import RedisServer

TOKEN = "tg-drill-tenant-77c1e0"
ENV = {"DRILL_PRIMARY_KEY": "sk-fake-primary-d1", "DRILL_BACKUP_KEY": "sk-fake-backup-d2"}
FIRST_BYTE = FAST_TIMEOUTS["firstByteSeconds"]
OPEN_SECONDS = 2.0
HANG, RATE, SHARED, FRESH, STREAM, ALONE = (
    "drill-hang", "drill-429", "drill-shared", "drill-fresh", "drill-stream", "drill-alone")
MODELS = (HANG, RATE, SHARED, FRESH, STREAM, ALONE)
RETRY = {"maxAttempts": 2, "baseDelayMs": 20, "maxDelayMs": 1500, "budgetMinRetries": 50}
BREAKER = {"consecutiveFailures": 3, "minimumRequests": 1000, "openSeconds": OPEN_SECONDS,
           "halfOpenProbes": 1}
STEADY = {**BREAKER, "openSeconds": 60}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@dataclass
class Pair:
    a: GatewayProcess
    b: GatewayProcess


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer,
             openai_upstream_server: FakeOpenAI,
             backup_upstream_server: FakeOpenAI) -> Iterator[Pair]:
    config = config_doc(
        providers=[
            provider("primary", openai_upstream_server, key_env="DRILL_PRIMARY_KEY",
                     models=(HANG, RATE, STREAM), retry=RETRY, breaker=BREAKER),
            provider("steady", openai_upstream_server, key_env="DRILL_PRIMARY_KEY",
                     models=(SHARED, FRESH, ALONE), retry=RETRY, breaker=STEADY),
            provider("backup", backup_upstream_server, key_env="DRILL_BACKUP_KEY",
                     models=MODELS),
        ],
        keys=[key_entry("drill-tenant", TOKEN)],
        store={"url": redis_server.url},
    )
    path = tmp_path_factory.mktemp("drill") / "tollgate.yaml"
    a = start_gateway(path, config=config, env=ENV)
    try:
        b = start_gateway(path, env=ENV)
    except BaseException:
        a.stop()
        raise
    try:
        yield Pair(a, b)
    finally:
        a.stop()
        b.stop()


@dataclass
class Served:
    provider: str
    request_id: str
    seconds: float
    gateway: GatewayProcess

    @property
    def attempts(self) -> list[dict[str, Any]]:
        """Every try, from the request's decision-log line."""
        decision = wait_for_log(self.gateway, lambda e: e.get("event") == "request"
                                and e.get("request_id") == self.request_id)
        return list(decision["attempts"])


def ask(gateway: GatewayProcess, model: str, *, stream: bool = False) -> Served:
    """One chat request through the openai SDK: what served it and the latency the client
    saw (the attempts are read from the decision log on demand)."""
    with sync_client(gateway, TOKEN) as client:
        started = time.perf_counter()
        if stream:
            with client.chat.completions.with_streaming_response.create(
                    model=model, messages=user("drill"), stream=True) as response:
                text = "".join(c.choices[0].delta.content or ""
                               for c in response.parse() if c.choices)
                headers = response.headers
        else:
            raw = client.chat.completions.with_raw_response.create(
                model=model, messages=user("drill"))
            text = raw.parse().choices[0].message.content or ""
            headers = raw.headers
        seconds = time.perf_counter() - started
    assert text == "Echo: drill"
    return Served(headers["x-tollgate-provider"], headers["x-request-id"], seconds, gateway)


def outcomes(served: Served) -> list[str]:
    return [f"{a['provider']}:{a['outcome']}" for a in served.attempts]


def circuit_state(gateway: GatewayProcess, model: str,
                  provider: str = "primary") -> float | None:
    text = httpx.get(gateway.url + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("tollgate_circuit_state{") and f'model="{model}"' in line \
                and f'provider="{provider}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def open_the_breaker(gateway: GatewayProcess, model: str, limit: int = 4) -> list[Served]:
    """Send requests until one skips the failing target; the ones before it paid for the
    outage."""
    paid: list[Served] = []
    for _ in range(limit):
        served = ask(gateway, model)
        assert served.provider == "backup"
        if outcomes(served)[0].endswith(":circuit_open"):
            return paid
        paid.append(served)
    raise AssertionError(f"the breaker did not open within {limit} requests: "
                         f"{[outcomes(s) for s in paid]}")


def test_a_hanging_primary_is_skipped_without_a_timeout_once_its_breaker_is_open_and_probed_back(
        gateways: Pair, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI) -> None:
    openai_upstream.fail(HANG, slow_headers(3.0))  # hangs past the first-byte timeout
    paid = open_the_breaker(gateways.a, HANG)
    assert outcomes(paid[0]) == ["primary:upstream_timeout", "primary:upstream_timeout",
                                 "backup:ok"], "a hang is retried once, then the backup serves"
    assert paid[0].seconds >= 2 * FIRST_BYTE
    assert len(paid) == 2, "3 consecutive timeouts open it: during the second request"
    assert outcomes(paid[1]) == ["primary:upstream_timeout", "backup:ok"], \
        "the timeout that opened the breaker is not retried"
    tried = len(openai_upstream.requests)

    skipped = [ask(gateways.a, HANG) for _ in range(5)]  # well within the 2 s it stays open
    for served in skipped:
        assert outcomes(served) == ["primary:circuit_open", "backup:ok"]
        assert served.attempts[0]["ms"] == 0
        assert served.seconds < FIRST_BYTE / 5, \
            f"{served.seconds:.3f} s: the fallback must not pay the {FIRST_BYTE} s timeout"
    assert len(openai_upstream.requests) == tried, "no request reaches an open primary"
    assert circuit_state(gateways.a, HANG) == 2

    openai_upstream.reset()  # the primary recovers
    time.sleep(OPEN_SECONDS + 0.1)
    probe = ask(gateways.a, HANG)
    assert (probe.provider, outcomes(probe)) == ("primary", ["primary:ok"]), \
        "after openSeconds one probe goes to the primary, and it answers"
    wait_until(lambda: circuit_state(gateways.a, HANG) == 0, what="the breaker closes")
    after = [ask(gateways.a, HANG) for _ in range(3)]
    assert [s.provider for s in after] == ["primary"] * 3
    assert all(len(s.attempts) == 1 for s in after)


def test_a_failed_probe_keeps_the_primary_skipped_for_another_cool_down(
        gateways: Pair, openai_upstream: FakeOpenAI) -> None:
    model = STREAM  # its own breaker; streamed requests, which skip an open breaker too
    openai_upstream.fail(model, fail_stream_before_first_chunk())
    for _ in range(2):  # 2 requests × 2 tries: opened during the second
        assert ask(gateways.a, model, stream=True).provider == "backup"
    skipped = ask(gateways.a, model, stream=True)
    assert outcomes(skipped) == ["primary:circuit_open", "backup:ok"]
    time.sleep(OPEN_SECONDS + 0.1)
    probe = ask(gateways.a, model, stream=True)
    assert outcomes(probe) == ["primary:upstream_unreachable", "backup:ok"], \
        "the probe fails, and a probe is never retried"
    again = ask(gateways.a, model, stream=True)
    assert outcomes(again) == ["primary:circuit_open", "backup:ok"]


def test_a_429_is_retried_after_its_retry_after_and_a_longer_one_fails_over(
        gateways: Pair, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI) -> None:
    openai_upstream.script(error_status(429, retry_after="1"))
    served = ask(gateways.a, RATE)
    assert (served.provider, outcomes(served)) == (
        "primary", ["primary:upstream_rate_limited", "primary:ok"])
    assert 1.0 <= served.seconds < 1.0 + FIRST_BYTE, "waited for Retry-After, not the backoff"
    assert served.attempts[1]["ms"] >= 1000, "the retry's time includes its wait"
    assert len(openai_upstream.requests) == 2

    openai_upstream.script(error_status(429, retry_after="30"))  # beyond maxDelayMs (1.5 s)
    served = ask(gateways.a, RATE)
    assert outcomes(served) == ["primary:upstream_rate_limited", "backup:ok"]
    assert served.seconds < 1.0


def test_a_breaker_opened_through_one_gateway_is_open_for_the_other(
        gateways: Pair, openai_upstream: FakeOpenAI) -> None:
    assert ask(gateways.b, SHARED).provider == "steady"  # B has seen it closed
    time.sleep(0.2)  # B reports that success within 50 ms; it must not land mid-outage
    openai_upstream.fail(SHARED, error_status(503))
    openai_upstream.fail(FRESH, error_status(503))
    open_the_breaker(gateways.a, SHARED)
    open_the_breaker(gateways.a, FRESH)
    tried = len(openai_upstream.requests)

    fresh = ask(gateways.b, FRESH)
    assert outcomes(fresh) == ["steady:circuit_open", "backup:ok"], \
        "a gateway that never saw the key reads it from the store first"
    wait_until(lambda: circuit_state(gateways.b, SHARED, "steady") == 2, timeout=2.0,
               what="B's cache (refreshed every 0.5 s) shows the breaker A opened")
    shared = ask(gateways.b, SHARED)
    assert outcomes(shared) == ["steady:circuit_open", "backup:ok"]
    assert len(openai_upstream.requests) == tried, "B sent nothing to the open primary"


def test_without_redis_each_gateway_still_runs_its_own_breakers(
        gateways: Pair, redis_server: RedisServer, openai_upstream: FakeOpenAI) -> None:
    """Last in the module: it takes the shared store away (and brings it back, empty)."""
    openai_upstream.fail(ALONE, error_status(503))
    redis_server.kill()
    try:
        paid = open_the_breaker(gateways.a, ALONE)
        assert len(paid) == 2, "3 consecutive failures, counted in process"
        assert circuit_state(gateways.a, ALONE, "steady") == 2
        assert circuit_state(gateways.b, ALONE, "steady") is None, "B never heard of it"
    finally:
        redis_server.start()
    wait_for_log(gateways.a, lambda e: e.get("event") == "breaker_store_back", timeout=5)
