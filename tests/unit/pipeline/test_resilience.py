"""pipeline/resilience.py: backoff math, Retry-After, the retry budget, and the breaker board
(cache, background reports, probes, the in-process fallback) — all on a clock the test moves.

The board runs with `background=False`: the tests call `flush()` and `refresh()` where the
background tasks would, so nothing sleeps and nothing races. The store is the real embedded
store; `Switchable` wraps it to take it away and bring it back, and counts the calls made.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tollgate.gateway.pipeline.resilience import (
    BreakerBoard,
    Permit,
    RetryBudget,
    RetryPolicy,
    backoff,
    parse_retry_after,
    retry_delay,
)
from tollgate.gateway.store.base import StoreUnavailable
from tollgate.gateway.store.breaker import CLOSED, HALF_OPEN, OPEN, BreakerPolicy
from tollgate.gateway.store.embedded import EmbeddedStore

T0 = 1_790_000_000.0  # 2026-09-21, a plain epoch second


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- backoff and Retry-After -----------------------------------------------------------------

POLICY = RetryPolicy(max_attempts=5, base_delay=0.25, max_delay=2.0)


@pytest.mark.parametrize(("retry", "ceiling"), [(1, 0.25), (2, 0.5), (3, 1.0), (4, 2.0),
                                                (5, 2.0), (80, 2.0)])
def test_backoff_doubles_per_retry_up_to_the_cap_with_jitter_in_the_upper_half(
        retry: int, ceiling: float) -> None:
    assert backoff(retry, POLICY, lambda: 0.0) == pytest.approx(ceiling / 2)
    assert backoff(retry, POLICY, lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)


def test_a_retry_after_longer_than_the_backoff_is_waited_for() -> None:
    assert retry_delay(1, POLICY, 1.5, lambda: 0.0) == 1.5
    assert retry_delay(1, POLICY, 0.01, lambda: 0.0) == 0.125, "never sooner than the backoff"


def test_a_retry_after_beyond_the_cap_means_no_retry() -> None:
    assert retry_delay(1, POLICY, 2.5, lambda: 0.0) is None
    assert retry_delay(1, POLICY, None, lambda: 0.0) == 0.125


@pytest.mark.parametrize(("header", "seconds"), [
    ("7", 7.0), (" 1.5 ", 1.5), ("0", 0.0), ("-3", 0.0),
    ("Mon, 21 Sep 2026 14:13:30 GMT", 10.0),  # T0 is 14:13:20 UTC
    ("Mon, 21 Sep 2026 14:13:00 GMT", 0.0),
    (None, None), ("", None), ("soon", None), ("nan", None),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(header: str | None,
                                                         seconds: float | None) -> None:
    assert parse_retry_after(header, T0) == seconds


def test_no_retry_settings_mean_one_attempt() -> None:
    assert RetryPolicy.from_settings(None).max_attempts == 1


# --- the retry budget ------------------------------------------------------------------------

def test_the_budget_allows_its_floor_even_with_no_requests() -> None:
    budget = RetryBudget(Clock())
    policy = RetryPolicy(budget_ratio=0.2, budget_min_retries=2)
    assert [budget.try_retry(policy) for _ in range(3)] == [True, True, False]


def test_the_budget_grows_with_requests_by_its_ratio() -> None:
    clock = Clock()
    budget = RetryBudget(clock)
    policy = RetryPolicy(budget_ratio=0.2, budget_min_retries=0)
    for _ in range(10):
        budget.record_request()
    assert [budget.try_retry(policy) for _ in range(3)] == [True, True, False]
    assert budget.totals() == (10, 2)


def test_retries_and_requests_leave_the_budget_window_after_ten_seconds() -> None:
    clock = Clock()
    budget = RetryBudget(clock)
    policy = RetryPolicy(budget_ratio=0.0, budget_min_retries=1)
    assert budget.try_retry(policy)
    clock.advance(9.5)
    assert not budget.try_retry(policy), "still within the window"
    clock.advance(1.0)
    assert budget.try_retry(policy)
    clock.advance(100)
    assert budget.totals() == (0, 0)


# --- the breaker board -----------------------------------------------------------------------

BREAKER = BreakerPolicy(consecutive_failures=3, open_seconds=5, half_open_probes=1)


class Switchable:
    """A real store behind a switch (down: every call raises StoreUnavailable), counting the
    calls that reach it."""

    def __init__(self, store: EmbeddedStore) -> None:
        self.store = store
        self.up = True
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.store, name)
        if not name.startswith("breaker_"):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if not self.up:
                raise StoreUnavailable("switched off by the test")
            return await target(*args, **kwargs)

        return call


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Switchable]:
    embedded = EmbeddedStore(tmp_path / "state.db")
    yield Switchable(embedded)
    await embedded.close()


class Gauge:
    def __init__(self) -> None:
        self.values: dict[tuple[str, str], int] = {}

    def __call__(self, provider: str, model: str, code: int) -> None:
        self.values[(provider, model)] = code


def board_on(store: Switchable, clock: Clock, gauge: Gauge | None = None,
             **options: Any) -> BreakerBoard:
    return BreakerBoard(store, clock=clock, background=False, on_state=gauge,  # type: ignore[arg-type]
                        **options)


async def fail(board: BreakerBoard, times: int, permit: Permit = Permit.ALLOW) -> None:
    for _ in range(times):
        board.report("openai", "gpt-4o", BREAKER, False, permit)
    await board.flush()


async def test_a_closed_breaker_costs_one_read_then_no_store_calls(store: Switchable) -> None:
    board = board_on(store, Clock())
    assert [await board.check("openai", "gpt-4o", BREAKER) for _ in range(50)] \
        == [Permit.ALLOW] * 50
    assert store.calls == ["breaker_state"], "the first sight of a key reads it, once"


async def test_failures_are_reported_in_one_batch_and_open_the_breaker(
        store: Switchable) -> None:
    gauge = Gauge()
    clock = Clock()
    board = board_on(store, clock, gauge)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW
    await fail(board, 3)
    assert store.calls == ["breaker_state", "breaker_report"]
    assert gauge.values[("openai", "gpt-4o")] == OPEN
    store.calls.clear()
    clock.advance(4.9)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE
    assert store.calls == [], "an open breaker refuses from the cache"


async def test_after_the_cool_down_one_probe_goes_through_and_its_success_closes_it(
        store: Switchable) -> None:
    gauge = Gauge()
    clock = Clock()
    board = board_on(store, clock, gauge)
    await board.check("openai", "gpt-4o", BREAKER)
    await fail(board, 3)
    clock.advance(5)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.PROBE
    assert gauge.values[("openai", "gpt-4o")] == HALF_OPEN
    store.calls.clear()
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE
    assert store.calls == [], "the only probe slot is taken: refused from the cache"
    board.report("openai", "gpt-4o", BREAKER, True, Permit.PROBE)
    await board.flush()
    assert gauge.values[("openai", "gpt-4o")] == CLOSED
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW


async def test_a_failed_probe_opens_it_for_another_cool_down(store: Switchable) -> None:
    clock = Clock()
    board = board_on(store, clock)
    await board.check("openai", "gpt-4o", BREAKER)
    await fail(board, 3)
    clock.advance(5)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.PROBE
    await fail(board, 1, Permit.PROBE)
    clock.advance(4.9)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE
    clock.advance(0.1)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.PROBE


async def test_a_breaker_opened_by_another_replica_is_seen_at_the_next_refresh(
        store: Switchable) -> None:
    clock = Clock()
    here, there = board_on(store, clock), board_on(store, clock)
    assert await here.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW  # cached: closed
    await there.check("openai", "gpt-4o", BREAKER)
    await fail(there, 3)
    assert await here.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW, \
        "stale until the cache is refreshed (every cache_seconds in production)"
    assert await here.refresh()
    assert await here.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE
    fresh = board_on(store, clock)
    assert await fresh.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE, \
        "a replica that never saw the key reads it before deciding"


async def test_without_the_store_the_process_keeps_its_own_breakers(store: Switchable) -> None:
    clock = Clock()
    board = board_on(store, clock)
    await board.check("openai", "gpt-4o", BREAKER)
    store.up = False
    board.report("openai", "gpt-4o", BREAKER, False, Permit.ALLOW)
    await board.flush()  # the store call fails: the in-process copy takes over
    assert not board.store_ok
    await fail(board, 2)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.REFUSE
    clock.advance(5)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.PROBE
    store.up = True
    assert await board.refresh()
    assert board.store_ok
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW, \
        "the shared state (closed: it never saw the outage's failures) decides again"


async def test_a_first_read_that_fails_falls_back_to_the_process_state(
        store: Switchable) -> None:
    store.up = False
    board = board_on(store, Clock())
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.ALLOW
    assert not board.store_ok


async def test_reports_beyond_the_queue_bound_are_dropped_and_counted(
        store: Switchable) -> None:
    board = board_on(store, Clock(), max_pending=5)
    await board.check("openai", "gpt-4o", BREAKER)
    for _ in range(8):
        board.report("openai", "gpt-4o", BREAKER, True, Permit.ALLOW)
    assert board.dropped == 3
    await board.flush()
    assert store.calls.count("breaker_report") == 1


async def test_idle_breakers_are_forgotten_and_read_again_on_next_use(
        store: Switchable) -> None:
    clock = Clock()
    board = board_on(store, clock, idle_seconds=60)
    await board.check("openai", "gpt-4o", BREAKER)
    clock.advance(61)
    assert not await board.refresh(), "nothing left to watch"
    assert board.state("openai", "gpt-4o") is None
    await board.check("openai", "gpt-4o", BREAKER)
    assert store.calls == ["breaker_state", "breaker_state"]


async def test_a_retry_knows_at_once_that_its_own_failures_opened_the_breaker(
        store: Switchable) -> None:
    clock = Clock()
    board = board_on(store, clock)
    await board.check("openai", "gpt-4o", BREAKER)
    for _ in range(3):
        board.report("openai", "gpt-4o", BREAKER, False, Permit.ALLOW)
    assert board.opened("openai", "gpt-4o", BREAKER), "before the report reached the store"
    clock.advance(5)
    assert not board.opened("openai", "gpt-4o", BREAKER)


async def test_once_the_shared_breaker_closes_the_process_copy_counts_again(
        store: Switchable) -> None:
    clock = Clock()
    board = board_on(store, clock)
    await board.check("openai", "gpt-4o", BREAKER)
    await fail(board, 3)
    clock.advance(5)
    assert await board.check("openai", "gpt-4o", BREAKER) is Permit.PROBE
    board.report("openai", "gpt-4o", BREAKER, True, Permit.PROBE)
    await board.flush()
    for _ in range(3):
        board.report("openai", "gpt-4o", BREAKER, False, Permit.ALLOW)
    assert board.opened("openai", "gpt-4o", BREAKER)
