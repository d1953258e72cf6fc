"""Stage 3 — route, per target: breaker check, retries with backoff and Retry-After, the retry
budget, failover. The real OpenAI adapter and translator run; the network is a scripted
Transport (the one boundary doubled here), and time is a clock and a `sleep` the test owns.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.config import config_doc
from tollgate.gateway.config.models import GatewayConfig, StoreSettings
from tollgate.gateway.errors import (
    UpstreamCircuitOpen,
    UpstreamClientError,
    UpstreamError,
    UpstreamRateLimited,
)
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pipeline.resilience import Resilience
from tollgate.gateway.pipeline.route import dispatch
from tollgate.gateway.pricing import load_catalog
from tollgate.gateway.runtime import Snapshot, build_snapshot
from tollgate.gateway.store.base import Store
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import StreamingReply, Timeouts, TransportReply

MODEL = "chat-model"
T0 = 1_790_000_000.0


def ok_body(text: str = "hi") -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    })


def reply(status: int, retry_after: str | None = None) -> TransportReply:
    if status == 200:
        return TransportReply(200, {"content-type": "application/json"}, ok_body())
    headers = {"retry-after": retry_after} if retry_after else {}
    return TransportReply(status, headers, b'{"error": {"message": "scripted"}}')


class Scripted:
    """A Transport answering each host from its own script (default: 200)."""

    def __init__(self) -> None:
        self.scripts: dict[str, deque[TransportReply]] = {}
        self.calls: list[str] = []

    def script(self, host: str, *statuses: int | tuple[int, str]) -> None:
        self.scripts[host] = deque(
            reply(*s) if isinstance(s, tuple) else reply(s) for s in statuses)

    async def post(self, url: str, headers: dict[str, str], body: bytes,
                   timeouts: Timeouts) -> TransportReply:
        host = url.split("/")[2]
        self.calls.append(host)
        queue = self.scripts.get(host)
        return queue.popleft() if queue else reply(200)

    async def open_stream(self, url: str, headers: dict[str, str], body: bytes,
                          timeouts: Timeouts) -> StreamingReply:
        raise AssertionError("no streams in these tests")

    async def aclose(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = T0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def provider(name: str, **settings: Any) -> dict[str, Any]:
    return {"name": name, "type": "openai-compatible", "baseURL": f"http://{name}/v1",
            "models": [MODEL], **settings}


RETRY = {"maxAttempts": 3, "baseDelayMs": 100, "maxDelayMs": 2000, "budgetMinRetries": 10}
BREAKER = {"consecutiveFailures": 2, "openSeconds": 10}


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.transport = Scripted()
        self.clock = Clock()
        self.resilience = Resilience(clock=self.clock, sleep=self.clock.sleep,
                                     random=lambda: 0.0, background=False, on_state=None)
        self._store = EmbeddedStore(tmp_path / "state.db")
        self.snapshot: Snapshot | None = None

    def configure(self, *providers: dict[str, Any]) -> None:
        def stores(settings: StoreSettings) -> tuple[Store, Outbox]:
            return self._store, Outbox()

        config = GatewayConfig.model_validate(config_doc(list(providers), []))
        self.snapshot = build_snapshot(config, "test", self.transport, load_catalog(), stores)

    async def call(self, *targets: str) -> Call:
        assert self.snapshot is not None
        call = Call(request_id="req_route", endpoint="chat", snapshot=self.snapshot,
                    body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                    started=0.0, resilience=self.resilience)
        call.route = tuple(self.snapshot.model_index[MODEL][i] for i in range(len(targets)))
        assert [t.provider for t in call.route] == list(targets)
        await dispatch(call)
        return call

    async def failing(self, *targets: str) -> tuple[Call, UpstreamError]:
        assert self.snapshot is not None
        call = Call(request_id="req_route", endpoint="chat", snapshot=self.snapshot,
                    body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                    started=0.0, resilience=self.resilience)
        index = {t.provider: t for t in self.snapshot.model_index[MODEL]}
        call.route = tuple(index[name] for name in targets)
        with pytest.raises(UpstreamError) as caught:
            await dispatch(call)
        return call, caught.value

    async def flush(self) -> None:
        assert self.snapshot is not None
        await self.resilience.board(self.snapshot.store).flush()

    async def close(self) -> None:
        await self._store.close()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path)
    yield made
    await made.close()


def outcomes(call: Call) -> list[str]:
    return [f"{a.provider}:{a.outcome}" for a in call.attempts]


async def test_a_server_error_is_retried_on_the_same_target_after_the_backoff(
        harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", 503, 502)
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:upstream_server_error", "first:upstream_server_error",
                              "first:ok"]
    assert harness.clock.slept == [0.05, 0.1], "100 ms, then 200 ms, times the jitter (0.5)"
    assert call.served_by is not None and call.served_by.provider == "first"


async def test_a_429_waits_for_its_retry_after(harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", (429, "1.5"))
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:upstream_rate_limited", "first:ok"]
    assert harness.clock.slept == [1.5]


async def test_a_retry_after_beyond_the_cap_fails_over_at_once(harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", (429, "20"))
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:upstream_rate_limited", "second:ok"]
    assert harness.clock.slept == []


async def test_a_retry_after_beyond_the_cap_on_the_last_target_reaches_the_caller(
        harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY))
    harness.transport.script("first", (429, "20"))
    call, error = await harness.failing("first")
    assert isinstance(error, UpstreamRateLimited)
    assert error.headers["retry-after"] == "20"
    assert harness.transport.calls == ["first"]


async def test_a_client_error_is_never_retried_nor_failed_over(harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", 400)
    call, error = await harness.failing("first", "second")
    assert isinstance(error, UpstreamClientError)
    assert harness.transport.calls == ["first"]


async def test_rejected_credentials_fail_over_without_a_retry(harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", 401)
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:upstream_unavailable", "second:ok"]


async def test_with_retries_off_a_failure_moves_straight_to_the_next_target(
        harness: Harness) -> None:
    harness.configure(provider("first", retry=None), provider("second"))
    harness.transport.script("first", 500)
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:upstream_server_error", "second:ok"]


async def test_a_spent_retry_budget_stops_retries(harness: Harness) -> None:
    budget = {**RETRY, "budgetRatio": 0.0, "budgetMinRetries": 1}
    harness.configure(provider("first", retry=budget), provider("second"))
    harness.transport.script("first", 500, 200, 500)
    first = await harness.call("first", "second")
    assert outcomes(first) == ["first:upstream_server_error", "first:ok"]
    second = await harness.call("first", "second")
    assert outcomes(second) == ["first:upstream_server_error", "second:ok"], \
        "the one retry of this 10-second window is spent"
    harness.clock.now += 11
    harness.transport.script("first", 500)
    third = await harness.call("first", "second")
    assert outcomes(third) == ["first:upstream_server_error", "first:ok"]


async def test_an_open_breaker_skips_its_target_without_a_request(harness: Harness) -> None:
    harness.configure(provider("first", retry=None, circuitBreaker=BREAKER), provider("second"))
    harness.transport.script("first", 500, 500)
    await harness.call("first", "second")
    await harness.call("first", "second")
    await harness.flush()
    harness.transport.calls.clear()
    call = await harness.call("first", "second")
    assert outcomes(call) == ["first:circuit_open", "second:ok"]
    assert call.attempts[0].seconds == 0.0
    assert harness.transport.calls == ["second"]


async def test_when_every_breaker_is_open_the_caller_learns_when_to_come_back(
        harness: Harness) -> None:
    harness.configure(provider("first", retry=None, circuitBreaker=BREAKER))
    harness.transport.script("first", 500, 500)
    for _ in range(2):
        await harness.failing("first")
    await harness.flush()
    harness.clock.now += 2.5
    call, error = await harness.failing("first")
    assert isinstance(error, UpstreamCircuitOpen)
    assert (error.status, error.code) == (503, "circuit_open")
    assert error.headers["retry-after"] == "8", "10 s open, 2.5 s gone"
    assert outcomes(call) == ["first:circuit_open"]


async def test_a_probe_is_not_retried_and_its_success_closes_the_breaker(
        harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY, circuitBreaker=BREAKER),
                      provider("second"))
    harness.transport.script("first", 500, 500)
    opening = await harness.call("first", "second")
    assert outcomes(opening) == ["first:upstream_server_error", "first:upstream_server_error",
                                 "second:ok"], "the second failure opens it: no third try"
    await harness.flush()
    harness.clock.now += 11
    harness.transport.script("first", 503)
    probe = await harness.call("first", "second")
    assert outcomes(probe) == ["first:upstream_server_error", "second:ok"], \
        "a failed probe is not retried"
    await harness.flush()
    harness.clock.now += 11
    recovered = await harness.call("first", "second")
    assert outcomes(recovered) == ["first:ok"]
    await harness.flush()
    again = await harness.call("first", "second")
    assert outcomes(again) == ["first:ok"]


async def test_without_resilience_the_route_only_fails_over(harness: Harness) -> None:
    harness.configure(provider("first", retry=RETRY), provider("second"))
    harness.transport.script("first", 500)
    assert harness.snapshot is not None
    call = Call(request_id="req_route", endpoint="chat", snapshot=harness.snapshot,
                body={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                started=0.0, route=harness.snapshot.model_index[MODEL])
    await dispatch(call)
    assert outcomes(call) == ["first:upstream_server_error", "second:ok"]
