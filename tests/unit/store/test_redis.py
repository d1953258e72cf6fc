"""What only the Redis store promises: an outage surfaces as StoreUnavailable and heals by
itself, scripts are loaded once, and counters expire when their period or window is over."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis.asyncio as aioredis

from tests.support.net import free_port
from tests.support.redis import RedisServer
from tests.unit.store.support import NOW, PERIOD_END, budget
from tollgate.gateway.store.base import (
    LedgerRecord,
    RateCheck,
    Release,
    ReserveRequest,
    Settlement,
    StoreOptions,
    StoreUnavailable,
)
from tollgate.gateway.store.redis import RedisStore

KEY = budget("key:acme-prod", 1_000)
RATES = (RateCheck("key:acme-prod", requests_per_minute=10, tokens_per_minute=1_000,
                   max_concurrent=5),)


async def test_an_unreachable_redis_raises_store_unavailable_quickly() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", connect_timeout=0.5)
    try:
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="redis store unavailable"):
            await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 100))
        with pytest.raises(StoreUnavailable):
            await store.settle(Settlement("a", NOW, (KEY,), RATES, 100, 0))
        with pytest.raises(StoreUnavailable):
            await store.release(Release("a", NOW, (KEY,), RATES))
        with pytest.raises(StoreUnavailable):
            await store.ping()
        with pytest.raises(StoreUnavailable):
            [r async for r in store.ledger(NOW, NOW + timedelta(seconds=1))]
        assert time.perf_counter() - started < 2.0
    finally:
        await store.close()


async def test_the_store_recovers_by_itself_after_redis_restarts(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory()
    store = RedisStore(server.url)
    try:
        assert (await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 100))).admitted
        server.kill()
        with pytest.raises(StoreUnavailable):
            await store.reserve(ReserveRequest("b", NOW, (KEY,), RATES, 100))
        with pytest.raises(StoreUnavailable):
            await store.settle(Settlement("a", NOW, (KEY,), RATES, 100, 0))
        server.start()  # same port, empty memory: scripts must be loaded again (NOSCRIPT)
        await store.ping()
        # The spend of a request served during the outage is written back exactly once.
        written_back = Settlement("a", NOW, (KEY,), RATES, 100, 0,
                                  LedgerRecord(NOW, "a", "acme-prod", cost_micros=100))
        assert await store.settle(written_back)
        assert not await store.settle(written_back)
        (spend,) = await store.spend((KEY,), NOW)
        assert (spend.spent_micros, spend.reserved_micros) == (100, 0)
        assert (await store.reserve(ReserveRequest("b", NOW, (KEY,), RATES, 100))).admitted
    finally:
        await store.close()


async def test_scripts_are_loaded_once_and_survive_a_script_flush(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:")
    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await store.reserve(ReserveRequest("a", NOW, (KEY,), (), 1))
        before = (await raw.info("commandstats")).get("cmdstat_script|load", {}).get("calls", 0)
        for i in range(5):
            await store.reserve(ReserveRequest(f"b{i}", NOW, (KEY,), (), 1))
        after = (await raw.info("commandstats")).get("cmdstat_script|load", {}).get("calls", 0)
        assert after == before, "no SCRIPT LOAD per call: EVALSHA only"
        await raw.script_flush()
        assert (await store.reserve(ReserveRequest("c", NOW, (KEY,), (), 1))).admitted
    finally:
        await raw.aclose()
        await store.close()


async def test_counters_expire_after_their_period_and_window(redis_server: RedisServer) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}:"
    grace = 3600
    store = RedisStore(redis_server.url, prefix=prefix,
                       options=StoreOptions(period_grace_seconds=grace))
    raw = aioredis.Redis.from_url(redis_server.url)
    total = budget("key:acme-prod", 1_000, "total")
    try:
        await store.reserve(ReserveRequest("a", NOW, (KEY, total), RATES, 10, 5))
        await store.settle(Settlement("a", NOW, (KEY, total), RATES, 10, 5))
        period_ttl = await raw.ttl(f"{prefix}b:key:acme-prod:2026-11")
        expected = (PERIOD_END - NOW).total_seconds() + grace
        assert expected - 5 <= period_ttl <= expected
        assert await raw.ttl(f"{prefix}b:key:acme-prod:total") == -1, "total never expires"
        window = int(NOW.timestamp()) // 60 * 60
        assert 0 < await raw.ttl(f"{prefix}w:key:acme-prod:{window}") <= 120
        assert 0 < await raw.ttl(f"{prefix}r:a") <= StoreOptions().dedupe_seconds
    finally:
        await raw.aclose()
        await store.close()


async def test_many_abandoned_holds_are_purged_in_bounded_steps(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, prefix=f"t-{uuid.uuid4().hex[:8]}:",
                       options=StoreOptions(lease_seconds=1))
    big = budget("key:acme-prod", 10**9)
    try:
        for i in range(1_500):
            await store.reserve(ReserveRequest(f"r{i}", NOW, (big,), (), 1))
        later = NOW + timedelta(seconds=2)
        # At most 1,000 lapsed holds are purged per call; a second call finishes the job.
        await store.spend((big,), later)
        (spend,) = await store.spend((big,), later)
        assert spend.reserved_micros == 0
    finally:
        await store.close()


async def test_a_redis_that_stops_answering_times_out_as_store_unavailable(
    redis_factory: Callable[..., RedisServer],
) -> None:
    server = redis_factory()
    store = RedisStore(server.url, timeout=0.2)
    raw = aioredis.Redis.from_url(server.url)
    try:
        await store.ping()
        await raw.client_pause(700, all=True)  # a hung server
        started = time.perf_counter()
        with pytest.raises(StoreUnavailable, match="Timeout"):
            await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 100))
        held = time.perf_counter() - started
        assert held < 0.6, "the caller is not held for long"
        await asyncio.sleep(0.75 - held)  # the pause ends
        # The timed-out reserve may still have run when the pause ended; retrying is safe.
        again = await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 100))
        assert again.admitted
        (spend,) = await store.spend((KEY,), NOW)
        assert spend.reserved_micros == 100
    finally:
        await raw.aclose()
        await store.close()
