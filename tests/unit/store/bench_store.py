"""Per-call latency of each store (a measurement, not a test).

    .venv/bin/python -m tests.unit.store.bench_store [--calls 1000]

Each round: N sequential requests, each a reserve then a settle (with a ledger record), with
the shape of a real request: key + customer budgets, key + customer rate limits (RPM, TPM and
a concurrency limit on the key). Limits are large, so every reserve is admitted and writes.
Prints mean / p50 / p99 in microseconds per call, for the Redis store, the embedded store on
the event loop, and the embedded store offloaded to its thread.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.redis import RedisServer
from tollgate.gateway.store.base import (
    BudgetCheck,
    LedgerRecord,
    RateCheck,
    ReserveRequest,
    Settlement,
    Store,
)
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.redis import RedisStore

END = datetime(2026, 12, 1, tzinfo=UTC)
BUDGETS = (
    BudgetCheck("key:bench", "2026-11", 10**12, END),
    BudgetCheck("customer:bench", "2026-11", 10**12, END),
)
RATES = (
    RateCheck("key:bench", 10**9, 10**12, 10_000),
    RateCheck("customer:bench", 10**9, 10**12, None),
)


def _summary(samples: list[float]) -> str:
    ordered = sorted(samples)
    mean = statistics.fmean(ordered) * 1e6
    p50 = ordered[len(ordered) // 2] * 1e6
    p99 = ordered[int(len(ordered) * 0.99) - 1] * 1e6
    return f"mean {mean:6.0f} us  p50 {p50:6.0f} us  p99 {p99:6.0f} us"


async def _round(store: Store, calls: int, tag: str) -> tuple[list[float], list[float]]:
    reserves: list[float] = []
    settles: list[float] = []
    clock = time.perf_counter
    start = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    for i in range(calls):
        now = start + timedelta(milliseconds=i)
        rid = f"{tag}-{i}"
        t0 = clock()
        admission = await store.reserve(ReserveRequest(rid, now, BUDGETS, RATES, 1234, 900))
        t1 = clock()
        assert admission.admitted
        record = LedgerRecord(now, rid, "bench", "bench", {"billingCode": "B-1"}, {}, "openai",
                              "gpt-4o", 700, 150, 0, 0, 1000, 12, "ok", 1)
        await store.settle(Settlement(rid, now, BUDGETS, RATES, 1000, 850, record))
        t2 = clock()
        reserves.append(t1 - t0)
        settles.append(t2 - t1)
    return reserves, settles


async def _measure(name: str, factory: Callable[[], Store], calls: int, rounds: int) -> None:
    store = factory()
    try:
        await _round(store, 200, f"{name}-warm")
        reserves: list[float] = []
        settles: list[float] = []
        for r in range(rounds):
            got = await _round(store, calls, f"{name}-{r}")
            reserves += got[0]
            settles += got[1]
    finally:
        await store.close()
    print(f"{name:<22} reserve: {_summary(reserves)}")
    print(f"{'':<22} settle:  {_summary(settles)}")


async def main(calls: int, rounds: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    with RedisServer(tmp / "redis") as server:
        await _measure("redis", lambda: RedisStore(server.url), calls, rounds)
    await _measure("embedded (loop)", lambda: EmbeddedStore(tmp / "loop.db"), calls, rounds)
    await _measure("embedded (thread)", lambda: EmbeddedStore(tmp / "thread.db", offload=True),
                   calls, rounds)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.calls, args.rounds))
