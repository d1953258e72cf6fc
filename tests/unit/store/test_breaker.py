"""Circuit-breaker records in the store, run unchanged against Redis (lua/breaker.lua) and the
embedded store (SQLite + store/breaker.py); `MemoryBreakers` is the reference both must match."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from tests.unit.store.support import NOW
from tollgate.gateway.store.base import Store
from tollgate.gateway.store.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerPolicy,
    BreakerState,
    MemoryBreakers,
)

KEY = "openai/gpt-4o"
OTHER = "anthropic/claude-sonnet-4-6"
POLICY = BreakerPolicy(consecutive_failures=3, failure_ratio=0.5, minimum_requests=10,
                       window_seconds=10, open_seconds=5, half_open_probes=1)
OK, FAIL = True, False


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


async def state_of(store: Store, key: str = KEY) -> BreakerState:
    (state,) = await store.breaker_state((key,))
    return state


async def open_breaker(store: Store, now: datetime = NOW,
                       policy: BreakerPolicy = POLICY) -> BreakerState:
    state = await store.breaker_report(KEY, (FAIL,) * policy.consecutive_failures, now, policy)
    assert state.state == OPEN
    return state


async def test_a_breaker_never_written_reads_closed_and_admits(store: Store) -> None:
    assert await store.breaker_state((KEY, OTHER)) == (BreakerState(), BreakerState())
    admitted, state = await store.breaker_acquire(KEY, NOW, POLICY)
    assert admitted and state.state == CLOSED
    assert await store.breaker_state(()) == ()


async def test_consecutive_failures_open_it_and_a_success_resets_the_count(store: Store) -> None:
    state = await store.breaker_report(KEY, (FAIL, FAIL, OK, FAIL, FAIL), NOW, POLICY)
    assert state.state == CLOSED, "the success in between starts the count again"
    state = await store.breaker_report(KEY, (FAIL,), at(1), POLICY)
    assert state.state == OPEN
    assert state.open_until_ms == int(at(1).timestamp() * 1000) + 5000
    assert await state_of(store) == state


async def test_a_failure_ratio_over_the_minimum_volume_opens_it(store: Store) -> None:
    policy = BreakerPolicy(consecutive_failures=100, failure_ratio=0.5, minimum_requests=10,
                           window_seconds=10)
    state = await store.breaker_report(KEY, (OK, FAIL) * 4 + (OK,), NOW, policy)
    assert state.state == CLOSED, "9 requests: under the minimum volume"
    state = await store.breaker_report(KEY, (FAIL,), NOW, policy)
    assert state.state == OPEN, "5 of 10 failed"


async def test_a_low_failure_ratio_never_opens_it(store: Store) -> None:
    policy = BreakerPolicy(consecutive_failures=100, failure_ratio=0.5, minimum_requests=10,
                           window_seconds=10)
    state = await store.breaker_report(KEY, (OK, OK, FAIL) * 20, NOW, policy)
    assert state.state == CLOSED


async def test_failures_age_out_of_the_sliding_window(store: Store) -> None:
    policy = BreakerPolicy(consecutive_failures=100, failure_ratio=0.5, minimum_requests=4,
                           window_seconds=10)
    start = NOW.replace(second=0, microsecond=0)  # a window boundary (10 s windows)
    await store.breaker_report(KEY, (FAIL, OK, FAIL), start, policy)
    # Half-way through the next window the previous one weighs half: 1.5 + 1 < 4 requests.
    state = await store.breaker_report(KEY, (FAIL,), start + timedelta(seconds=15), policy)
    assert state.state == CLOSED
    # Two windows later nothing old counts any more.
    state = await store.breaker_report(KEY, (FAIL, FAIL), start + timedelta(seconds=31), policy)
    assert state.state == CLOSED
    state = await store.breaker_report(KEY, (FAIL, FAIL), start + timedelta(seconds=32), policy)
    assert state.state == OPEN, "4 failures in the current window"


async def test_an_open_breaker_refuses_until_its_cool_down_then_admits_one_probe(
        store: Store) -> None:
    await open_breaker(store)
    admitted, state = await store.breaker_acquire(KEY, at(4.9), POLICY)
    assert not admitted and state.state == OPEN
    admitted, state = await store.breaker_acquire(KEY, at(5), POLICY)
    assert admitted and state.state == HALF_OPEN and state.probes == 1
    admitted, state = await store.breaker_acquire(KEY, at(5.1), POLICY)
    assert not admitted, "one probe at a time"
    assert state.refuses(int(at(5.1).timestamp() * 1000), POLICY)
    assert await state_of(store) == state


async def test_a_successful_probe_closes_it_with_counters_from_zero(store: Store) -> None:
    await open_breaker(store)
    assert (await store.breaker_acquire(KEY, at(5), POLICY))[0]
    state = await store.breaker_report(KEY, (OK,), at(5.5), POLICY, probe=True)
    assert state == BreakerState(CLOSED)
    state = await store.breaker_report(KEY, (FAIL, FAIL), at(6), POLICY)
    assert state.state == CLOSED, "failures before the opening no longer count"


async def test_a_failed_probe_opens_it_again_for_another_cool_down(store: Store) -> None:
    await open_breaker(store)
    assert (await store.breaker_acquire(KEY, at(5), POLICY))[0]
    state = await store.breaker_report(KEY, (FAIL,), at(6), POLICY, probe=True)
    assert state.state == OPEN
    assert state.open_until_ms == int(at(11).timestamp() * 1000)
    assert not (await store.breaker_acquire(KEY, at(10.9), POLICY))[0]
    assert (await store.breaker_acquire(KEY, at(11), POLICY))[0]


async def test_outcomes_of_requests_that_are_not_probes_do_not_move_it(store: Store) -> None:
    await open_breaker(store)
    state = await store.breaker_report(KEY, (OK, OK), at(1), POLICY)
    assert state.state == OPEN, "requests in flight when it opened say nothing"
    assert (await store.breaker_acquire(KEY, at(5), POLICY))[0]
    state = await store.breaker_report(KEY, (OK,), at(5.2), POLICY)
    assert state.state == HALF_OPEN, "a late non-probe success does not close it"
    state = await store.breaker_report(KEY, (FAIL,), at(5.3), POLICY)
    assert state.state == HALF_OPEN, "nor does a late failure reopen it"


async def test_probe_slots_of_a_round_whose_outcome_never_came_lapse(store: Store) -> None:
    policy = BreakerPolicy(consecutive_failures=1, open_seconds=5, half_open_probes=2)
    await open_breaker(store, policy=policy)
    assert (await store.breaker_acquire(KEY, at(5), policy))[0]
    assert (await store.breaker_acquire(KEY, at(6), policy))[0]
    assert not (await store.breaker_acquire(KEY, at(9.9), policy))[0]
    admitted, state = await store.breaker_acquire(KEY, at(10), policy)
    assert admitted and state.probes == 1, "a new round of probes"


async def test_breakers_are_independent_per_key(store: Store) -> None:
    await open_breaker(store)
    states = await store.breaker_state((KEY, OTHER))
    assert [s.state for s in states] == [OPEN, CLOSED]
    assert (await store.breaker_acquire(OTHER, NOW, POLICY))[0]


async def test_a_breaker_opened_through_one_client_is_open_for_another(
        store_factory: Callable[..., Store]) -> None:
    first, second = store_factory(), store_factory()
    await open_breaker(first)
    assert (await state_of(second)).state == OPEN
    assert not (await second.breaker_acquire(KEY, at(1), POLICY))[0]


async def test_concurrent_probe_requests_from_two_clients_get_exactly_the_probe_slots(
        store_factory: Callable[..., Store]) -> None:
    policy = BreakerPolicy(consecutive_failures=1, open_seconds=5, half_open_probes=2)
    first, second = store_factory(), store_factory()
    await open_breaker(first, policy=policy)
    results = await asyncio.gather(*(
        client.breaker_acquire(KEY, at(5 + i / 1000), policy)
        for i in range(10) for client in (first, second)
    ))
    assert sum(admitted for admitted, _ in results) == 2


async def test_the_store_agrees_with_the_reference_state_machine_step_by_step(
        store: Store) -> None:
    """A seeded random walk of reports and acquires: every answer and state matches
    MemoryBreakers (for Redis: the Lua script mirrors the Python module exactly)."""
    rng = random.Random(20261127)
    reference = MemoryBreakers()
    policy = BreakerPolicy(consecutive_failures=4, failure_ratio=0.4, minimum_requests=6,
                           window_seconds=3, open_seconds=1.5, half_open_probes=2)
    moment = NOW
    for step in range(300):
        moment += timedelta(milliseconds=rng.choice((0, 7, 50, 400, 1300)))
        if rng.random() < 0.3:
            expected = reference.acquire(KEY, moment, policy)
            got = await store.breaker_acquire(KEY, moment, policy)
        else:
            outcomes = tuple(rng.random() < 0.45 for _ in range(rng.randint(1, 4)))
            probe = rng.random() < 0.3
            expected = reference.report(KEY, outcomes, moment, policy, probe=probe)
            got = await store.breaker_report(KEY, outcomes, moment, policy, probe=probe)
        assert got == expected, f"step {step}"
