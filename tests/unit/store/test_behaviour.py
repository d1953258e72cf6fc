"""The Store contract, run unchanged against the Redis and the embedded implementation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.store.support import (
    NOW,
    PERIOD_END,
    StoreSpec,
    budget,
    requests,
    run_in_processes,
)
from tollgate.gateway.store.base import (
    BudgetCheck,
    LedgerRecord,
    RateCheck,
    Release,
    ReserveRequest,
    Settlement,
    Store,
)

KEY = budget("key:acme-prod", 1_000)
CUSTOMER = budget("customer:acme", 10_000)


def reserve(
    rid: str,
    *,
    budgets: tuple[BudgetCheck, ...] = (KEY,),
    rates: tuple[RateCheck, ...] = (),
    amount: int = 0,
    tokens: int = 0,
    now: datetime = NOW,
) -> ReserveRequest:
    return ReserveRequest(rid, now, budgets, rates, amount, tokens)


def settlement(
    rid: str,
    actual: int,
    *,
    budgets: tuple[BudgetCheck, ...] = (KEY,),
    rates: tuple[RateCheck, ...] = (),
    tokens: int = 0,
    now: datetime = NOW,
    ledger: LedgerRecord | None = None,
) -> Settlement:
    return Settlement(rid, now, budgets, rates, actual, tokens, ledger)


def record(rid: str, time: datetime = NOW, cost: int = 0, **fields: object) -> LedgerRecord:
    return LedgerRecord(time, rid, "acme-prod", "acme", cost_micros=cost, **fields)  # type: ignore[arg-type]


async def figures(store: Store, check: BudgetCheck = KEY, now: datetime = NOW) -> tuple[int, int]:
    (got,) = await store.spend((check,), now)
    return got.spent_micros, got.reserved_micros


# --- arithmetic ------------------------------------------------------------------------------


async def test_reserve_holds_the_estimate_and_settle_charges_the_actual_cost(store: Store) -> None:
    admission = await store.reserve(reserve("r1", budgets=(KEY, CUSTOMER), amount=300))
    assert admission.admitted and admission.reason is None and not admission.replayed
    assert [(b.spent_micros, b.reserved_micros, b.remaining_micros) for b in admission.budgets] \
        == [(0, 300, 700), (0, 300, 9_700)]
    assert await figures(store) == (0, 300)

    assert await store.settle(settlement("r1", 120, budgets=(KEY, CUSTOMER)))
    assert await figures(store) == (120, 0)
    assert await figures(store, CUSTOMER) == (120, 0)


async def test_release_gives_the_whole_hold_back(store: Store) -> None:
    await store.reserve(reserve("r1", amount=400))
    assert await store.release(Release("r1", NOW, (KEY,), ()))
    assert await figures(store) == (0, 0)


async def test_a_budget_admits_up_to_exactly_its_limit(store: Store) -> None:
    assert (await store.reserve(reserve("a", amount=600))).admitted
    refused = await store.reserve(reserve("b", amount=401))
    assert not refused.admitted
    assert refused.reason == "budget_exceeded"
    assert refused.failed_scope == "key:acme-prod" and refused.failed_limit == "budget"
    # Retry-After points at the period's end, when the budget resets.
    assert refused.retry_after_seconds == int((PERIOD_END - NOW).total_seconds())
    assert (await store.reserve(reserve("c", amount=400))).admitted  # 600 + 400 == limit
    assert await figures(store) == (0, 1_000)


async def test_every_applicable_budget_must_cover_the_request(store: Store) -> None:
    tight_customer = budget("customer:acme", 100)
    refused = await store.reserve(reserve("r1", budgets=(KEY, tight_customer), amount=200))
    assert not refused.admitted and refused.failed_scope == "customer:acme"
    assert await figures(store) == (0, 0), "a rejection must not hold anything anywhere"


async def test_a_request_is_admitted_while_spend_plus_holds_leave_room(store: Store) -> None:
    await store.reserve(reserve("a", amount=500))
    await store.settle(settlement("a", 100))  # actual far below the estimate
    # 100 spent, nothing held: a 900 request fits exactly, no false rejection.
    assert (await store.reserve(reserve("b", amount=900))).admitted


async def test_settle_without_a_hold_adds_the_spend_only(store: Store) -> None:
    """Spend written back after an outage: there is no hold to release."""
    assert await store.settle(settlement("offline-1", 250, ledger=record("offline-1", cost=250)))
    assert await figures(store) == (250, 0)


async def test_money_must_be_integer_micro_dollars() -> None:
    with pytest.raises(ValueError, match="int"):
        reserve("r1", amount=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="2\\*\\*53"):
        reserve("r1", amount=2**53)  # beyond what a Lua double holds exactly
    with pytest.raises(ValueError, match="int"):
        RateCheck("key:acme-prod", requests_per_minute=-1)
    with pytest.raises(ValueError, match="aware"):
        reserve("r1", now=datetime(2026, 11, 27))


# --- idempotence -----------------------------------------------------------------------------


async def test_settle_is_idempotent_by_request_id(store: Store) -> None:
    await store.reserve(reserve("r1", amount=300))
    first = settlement("r1", 200, ledger=record("r1", cost=200))
    assert await store.settle(first) is True
    assert await store.settle(first) is False, "a replay must change nothing"
    assert await store.settle(settlement("r1", 999)) is False
    assert await figures(store) == (200, 0)
    ledger = [r async for r in store.ledger(NOW - timedelta(hours=1), NOW + timedelta(hours=1))]
    assert [r.request_id for r in ledger] == ["r1"]


async def test_release_is_idempotent_and_final(store: Store) -> None:
    await store.reserve(reserve("r1", amount=300))
    assert await store.release(Release("r1", NOW, (KEY,), ())) is True
    assert await store.release(Release("r1", NOW, (KEY,), ())) is False
    assert await store.settle(settlement("r1", 50)) is False, "settle after release is a no-op"
    await store.reserve(reserve("r2", amount=300))
    await store.settle(settlement("r2", 70))
    assert await store.release(Release("r2", NOW, (KEY,), ())) is False
    assert await figures(store) == (70, 0)


async def test_a_retried_reserve_holds_only_once(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", requests_per_minute=10, max_concurrent=5),)
    first = await store.reserve(reserve("r1", rates=rates, amount=300, tokens=10))
    again = await store.reserve(reserve("r1", rates=rates, amount=300, tokens=10))
    assert first.admitted and again.admitted and again.replayed
    assert await figures(store) == (0, 300)
    (status,) = await store.rate_status(rates, NOW)
    assert (status.requests_used, status.tokens_used, status.in_flight) == (1, 10, 1)
    await store.settle(settlement("r1", 10, rates=rates, tokens=10))
    assert (await store.reserve(reserve("r1", rates=rates, amount=300))).replayed, \
        "a reserve for an ended request id must not hold again"
    assert await figures(store) == (10, 0)


# --- rate limits -----------------------------------------------------------------------------


async def test_requests_per_minute_admits_n_per_window(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", requests_per_minute=3),)
    got = [await store.reserve(reserve(f"r{i}", budgets=(), rates=rates)) for i in range(4)]
    assert [a.admitted for a in got] == [True, True, True, False]
    refused = got[3]
    assert refused.reason == "rate_limit_exceeded"
    assert refused.failed_limit == "requests_per_minute"
    assert refused.retry_after_seconds == 55  # NOW is 5 s into its window
    (header,) = got[2].rates
    assert (header.requests_limit, header.requests_remaining, header.reset_seconds) == (3, 0, 55)
    # The next window starts from zero.
    later = await store.reserve(reserve("r5", budgets=(), rates=rates,
                                        now=NOW + timedelta(seconds=55)))
    assert later.admitted and later.rates[0].requests_remaining == 2


async def test_tokens_per_minute_counts_estimates_then_corrects_them(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", tokens_per_minute=1_000),)
    assert (await store.reserve(reserve("a", budgets=(), rates=rates, tokens=800))).admitted
    refused = await store.reserve(reserve("b", budgets=(), rates=rates, tokens=300))
    assert not refused.admitted and refused.failed_limit == "tokens_per_minute"
    # The request really used 500 tokens: the window is corrected by -300.
    await store.settle(settlement("a", 0, budgets=(), rates=rates, tokens=500))
    (status,) = await store.rate_status(rates, NOW)
    assert status.tokens_used == 500 and status.tokens_remaining == 500
    assert (await store.reserve(reserve("b", budgets=(), rates=rates, tokens=300))).admitted


async def test_tokens_beyond_the_estimate_land_in_the_window_where_they_are_known(
    store: Store,
) -> None:
    rates = (RateCheck("key:acme-prod", tokens_per_minute=10_000),)
    await store.reserve(reserve("a", budgets=(), rates=rates, tokens=100))
    later = NOW + timedelta(seconds=60)
    await store.settle(settlement("a", 0, budgets=(), rates=rates, tokens=400, now=later))
    (status,) = await store.rate_status(rates, later)
    assert status.tokens_used == 300, "only what was not held is charged to the new window"


async def test_a_release_refunds_tokens_but_the_request_still_counts(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", requests_per_minute=10, tokens_per_minute=1_000),)
    await store.reserve(reserve("a", budgets=(), rates=rates, tokens=700))
    await store.release(Release("a", NOW, (), rates))
    (status,) = await store.rate_status(rates, NOW)
    assert (status.requests_used, status.tokens_used) == (1, 0)


async def test_max_concurrent_limits_requests_in_flight(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", max_concurrent=2),)
    got = [await store.reserve(reserve(f"r{i}", budgets=(), rates=rates)) for i in range(3)]
    assert [a.admitted for a in got] == [True, True, False]
    assert got[2].failed_limit == "max_concurrent" and got[2].retry_after_seconds == 1
    await store.settle(settlement("r0", 0, budgets=(), rates=rates))
    assert (await store.reserve(reserve("r3", budgets=(), rates=rates))).admitted


async def test_a_rate_rejection_holds_nothing(store: Store) -> None:
    rates = (
        RateCheck("key:acme-prod", requests_per_minute=100, max_concurrent=100),
        RateCheck("customer:acme", requests_per_minute=1),
    )
    assert (await store.reserve(reserve("a", rates=rates, amount=10, tokens=5))).admitted
    refused = await store.reserve(reserve("b", rates=rates, amount=10, tokens=5))
    assert not refused.admitted and refused.failed_scope == "customer:acme"
    assert await figures(store) == (0, 10)
    key_status, _ = await store.rate_status(rates, NOW)
    assert (key_status.requests_used, key_status.tokens_used, key_status.in_flight) == (1, 5, 1)


async def test_status_views_count_nothing(store: Store) -> None:
    rates = (RateCheck("key:acme-prod", requests_per_minute=5, tokens_per_minute=50,
                       max_concurrent=3),)
    await store.reserve(reserve("a", rates=rates, amount=10, tokens=20))
    for _ in range(3):
        (status,) = await store.rate_status(rates, NOW)
        (spend,) = await store.spend((KEY,), NOW)
    assert (status.requests_remaining, status.tokens_remaining, status.in_flight) == (4, 30, 1)
    assert (spend.spent_micros, spend.reserved_micros, spend.remaining_micros) == (0, 10, 990)


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_reserves_admit_exactly_what_the_budget_covers(store: Store) -> None:
    burst = requests("c", 40, budgets=(budget("key:acme-prod", 7 * 130),), amount=130)
    admissions = await asyncio.gather(*(store.reserve(r) for r in burst))
    assert sum(a.admitted for a in admissions) == 7


async def test_processes_sharing_a_store_never_exceed_the_budget(store_spec: StoreSpec) -> None:
    cap = budget("customer:acme", 97 * 1_000)
    batches = [requests(f"p{p}", 60, budgets=(cap,), amount=1_000) for p in range(3)]
    admitted = run_in_processes(store_spec, batches, settle_micros=1_000)
    assert sum(len(ids) for ids in admitted) == 97
    store = store_spec.open()
    try:
        assert await figures(store, cap) == (97_000, 0), "spend ends exactly at the cap"
    finally:
        await store.close()


async def test_processes_sharing_a_store_share_one_rpm_and_concurrency_limit(
    store_spec: StoreSpec,
) -> None:
    rpm = (RateCheck("key:acme-prod", requests_per_minute=25),)
    flight = (RateCheck("customer:acme", max_concurrent=4),)
    batches = [requests(f"rpm{p}", 40, rates=rpm) for p in range(3)]
    assert sum(len(ids) for ids in run_in_processes(store_spec, batches)) == 25
    batches = [requests(f"conc{p}", 40, rates=flight) for p in range(3)]
    assert sum(len(ids) for ids in run_in_processes(store_spec, batches)) == 4


# --- leases and periods ----------------------------------------------------------------------


async def test_an_abandoned_hold_stops_counting_after_its_lease(
    store_factory: Callable[..., Store],
) -> None:
    store = store_factory(lease_seconds=5)
    one = (budget("key:acme-prod", 500),)
    rates = (RateCheck("key:acme-prod", max_concurrent=1),)
    assert (await store.reserve(reserve("crashed", budgets=one, rates=rates, amount=500))).admitted
    soon = await store.reserve(reserve("b", budgets=one, rates=rates, amount=500,
                                       now=NOW + timedelta(seconds=4)))
    assert not soon.admitted
    later = NOW + timedelta(seconds=6)
    assert (await store.reserve(reserve("c", budgets=one, rates=rates, amount=500,
                                        now=later))).admitted
    # The crashed request's settle shows up after all (a slow replica): its spend counts,
    # and the live hold of "c" is not released by mistake.
    assert await store.settle(settlement("crashed", 200, budgets=one, rates=rates, now=later))
    assert await figures(store, one[0], later) == (200, 500)


async def test_a_new_period_starts_from_zero(store: Store) -> None:
    november = budget("key:acme-prod", 1_000, "2026-11")
    await store.reserve(reserve("a", budgets=(november,), amount=1_000))
    await store.settle(settlement("a", 1_000, budgets=(november,)))
    assert not (await store.reserve(reserve("b", budgets=(november,), amount=1))).admitted

    december = BudgetCheck("key:acme-prod", "2026-12", 1_000,
                           datetime(2027, 1, 1, tzinfo=UTC))
    first_of_december = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    assert (await store.reserve(reserve("b", budgets=(december,), amount=1,
                                        now=first_of_december))).admitted
    assert await figures(store, november, first_of_december) == (1_000, 0), \
        "last period's spend stays readable"


async def test_a_total_budget_never_resets(store: Store) -> None:
    lifetime = budget("key:acme-prod", 100, "total")
    await store.reserve(reserve("a", budgets=(lifetime,), amount=100))
    await store.settle(settlement("a", 100, budgets=(lifetime,)))
    refused = await store.reserve(reserve("b", budgets=(lifetime,), amount=1,
                                          now=NOW + timedelta(days=400)))
    assert not refused.admitted and refused.retry_after_seconds is None


# --- ledger ----------------------------------------------------------------------------------


async def test_ledger_returns_records_in_a_time_range_in_time_order(store: Store) -> None:
    times = [NOW + timedelta(minutes=m) for m in (0, 1, 2, 3, 4)]
    # Written out of order: the minute-1 record arrives last, as after an outage.
    for i in (0, 2, 3, 4, 1):
        await store.settle(settlement(f"r{i}", 10 * i, ledger=record(
            f"r{i}", times[i], cost=10 * i, tags={"billingCode": "B-7"},
            metadata={"team": "search"}, provider="openai", model="gpt-4o", input_tokens=11,
            output_tokens=22, cached_tokens=3, reasoning_tokens=4, latency_ms=87,
            outcome="ok", attempts=2)))
    got = [r async for r in store.ledger(times[1], times[4])]
    assert [r.request_id for r in got] == ["r1", "r2", "r3"]
    assert got[0] == record("r1", times[1], cost=10, tags={"billingCode": "B-7"},
                            metadata={"team": "search"}, provider="openai", model="gpt-4o",
                            input_tokens=11, output_tokens=22, cached_tokens=3,
                            reasoning_tokens=4, latency_ms=87, outcome="ok", attempts=2)


async def test_ledger_pages_through_records_that_share_a_timestamp(store: Store) -> None:
    same = NOW + timedelta(seconds=1)
    ids = [f"r{i:02d}" for i in range(7)]
    for rid in ids:
        await store.settle(settlement(rid, 1, ledger=record(rid, same)))
    await store.settle(settlement("last", 1, ledger=record("last", same + timedelta(seconds=1))))
    got = [r.request_id async for r in store.ledger(NOW, NOW + timedelta(hours=1), batch=3)]  # type: ignore[call-arg]
    assert sorted(got[:7]) == ids and got[7:] == ["last"]


async def test_ledger_retention_trims_by_count(store_factory: Callable[..., Store]) -> None:
    store = store_factory(ledger_max_records=3)
    for i in range(5):
        await store.settle(settlement(f"r{i}", 1, ledger=record(f"r{i}",
                                                                NOW + timedelta(seconds=i))))
    got = [r.request_id async for r in store.ledger(NOW - timedelta(days=1),
                                                    NOW + timedelta(days=1))]
    assert got == ["r2", "r3", "r4"]


async def test_ledger_retention_trims_by_age(store_factory: Callable[..., Store]) -> None:
    store = store_factory(ledger_max_age_days=30)
    old = NOW - timedelta(days=45)
    await store.settle(settlement("old", 1, now=old, ledger=record("old", old)))
    await store.settle(settlement("new", 1, ledger=record("new", NOW)))
    got = [r.request_id async for r in store.ledger(NOW - timedelta(days=400),
                                                    NOW + timedelta(days=1))]
    assert got == ["new"]


async def test_a_release_may_document_a_failed_request(store: Store) -> None:
    await store.reserve(reserve("r1", amount=100))
    await store.release(Release("r1", NOW, (KEY,), (), record("r1", outcome="upstream_error")))
    (got,) = [r async for r in store.ledger(NOW, NOW + timedelta(seconds=1))]
    assert got.outcome == "upstream_error" and got.cost_micros == 0
