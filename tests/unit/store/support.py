"""Helpers for the store tests: a picklable recipe that opens the same store in any process,
and the worker that other OS processes run to hammer it."""

from __future__ import annotations

import asyncio
import multiprocessing
import queue as queue_module
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from tollgate.gateway.store.base import (
    BudgetCheck,
    RateCheck,
    ReserveRequest,
    Settlement,
    Store,
    StoreOptions,
)
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.redis import RedisStore

__all__ = ["NOW", "PERIOD_END", "StoreSpec", "budget", "run_in_processes"]

NOW = datetime(2026, 11, 27, 10, 0, 5, tzinfo=UTC)
"""A fixed clock, 5 s into a rate window, in period 2026-11."""
PERIOD_END = datetime(2026, 12, 1, tzinfo=UTC)


def budget(scope: str, limit: int, period: str = "2026-11") -> BudgetCheck:
    return BudgetCheck(scope, period, limit, PERIOD_END if period != "total" else None)


@dataclass(frozen=True)
class StoreSpec:
    """How to open one store; pickled into child processes so each opens its own client."""

    kind: Literal["embedded", "redis"]
    target: str  # a redis URL or a SQLite file path
    prefix: str = "tollgate:"
    options: StoreOptions = field(default_factory=StoreOptions)

    def with_options(self, **changes: Any) -> StoreSpec:
        return replace(self, options=replace(self.options, **changes))

    def open(self, **kwargs: Any) -> Store:
        if self.kind == "redis":
            return RedisStore(self.target, options=self.options, prefix=self.prefix, **kwargs)
        return EmbeddedStore(self.target, options=self.options, **kwargs)


async def _hammer(
    spec: StoreSpec, requests: list[ReserveRequest], settle_micros: int | None, barrier: Any
) -> list[str]:
    store = spec.open()
    try:
        await store.ping()
        # Everyone starts together: the point is contention, not a polite queue.
        await asyncio.get_running_loop().run_in_executor(None, barrier.wait, 30)
        admissions = await asyncio.gather(*(store.reserve(r) for r in requests))
        admitted = [r for r, a in zip(requests, admissions, strict=True) if a.admitted]
        if settle_micros is not None:
            await asyncio.gather(*(
                store.settle(Settlement(r.request_id, r.now, r.budgets, r.rates,
                                        settle_micros, r.tokens))
                for r in admitted
            ))
        return [r.request_id for r in admitted]
    finally:
        await store.close()


def _worker(
    spec: StoreSpec,
    requests: list[ReserveRequest],
    settle_micros: int | None,
    barrier: Any,
    results: Any,
) -> None:
    try:
        results.put(("ok", asyncio.run(_hammer(spec, requests, settle_micros, barrier))))
    except BaseException as exc:  # report, don't hang the parent
        results.put(("error", repr(exc)))


def run_in_processes(
    spec: StoreSpec,
    batches: list[list[ReserveRequest]],
    *,
    settle_micros: int | None = None,
    timeout: float = 45.0,
) -> list[list[str]]:
    """Each batch is reserved concurrently by its own OS process (own client, own event loop),
    all processes released at once by a barrier. Returns the admitted request ids per process."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(len(batches))
    results = ctx.Queue()
    processes = [
        ctx.Process(target=_worker, args=(spec, batch, settle_micros, barrier, results),
                    daemon=True)
        for batch in batches
    ]
    for process in processes:
        process.start()
    collected: list[list[str]] = []
    try:
        for _ in processes:
            try:
                status, value = results.get(timeout=timeout)
            except queue_module.Empty:
                raise TimeoutError("a store worker process did not report in time") from None
            if status != "ok":
                raise AssertionError(f"a store worker process failed: {value}")
            collected.append(value)
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
                process.join()
    return collected


def requests(
    tag: str,
    count: int,
    *,
    budgets: tuple[BudgetCheck, ...] = (),
    rates: tuple[RateCheck, ...] = (),
    amount: int = 0,
    tokens: int = 0,
    now: datetime = NOW,
) -> list[ReserveRequest]:
    """`count` distinct requests with the same shape; ids are `<tag>-<n>`."""
    return [
        ReserveRequest(f"{tag}-{n}", now + timedelta(microseconds=n), budgets, rates, amount,
                       tokens)
        for n in range(count)
    ]
