"""What only the embedded (SQLite) store promises: a restart keeps everything, and a lock held
by another process never stalls the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from tests.unit.store.support import NOW, budget
from tollgate.gateway.store.base import (
    LedgerRecord,
    RateCheck,
    ReserveRequest,
    Settlement,
    StoreOptions,
    StoreUnavailable,
)
from tollgate.gateway.store.embedded import EmbeddedStore

KEY = budget("key:acme-prod", 1_000)
RATES = (RateCheck("key:acme-prod", requests_per_minute=10, max_concurrent=5),)


async def test_counters_holds_and_ledger_survive_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tollgate.db"
    store = EmbeddedStore(path)
    await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 300, 40))
    await store.settle(Settlement("a", NOW, (KEY,), RATES, 250, 40,
                                  LedgerRecord(NOW, "a", "acme-prod", cost_micros=250)))
    await store.reserve(ReserveRequest("b", NOW, (KEY,), RATES, 100, 10))  # still held
    await store.close()

    reopened = EmbeddedStore(path)
    try:
        (spend,) = await reopened.spend((KEY,), NOW)
        assert (spend.spent_micros, spend.reserved_micros) == (250, 100)
        (status,) = await reopened.rate_status(RATES, NOW)
        assert (status.requests_used, status.in_flight) == (2, 1)
        ledger = [r async for r in reopened.ledger(NOW, NOW + timedelta(seconds=1))]
        assert [r.cost_micros for r in ledger] == [250]
        assert not await reopened.settle(Settlement("a", NOW, (KEY,), RATES, 250, 40)), \
            "the dedupe marker survives the restart too"
    finally:
        await reopened.close()


async def test_a_lock_held_elsewhere_is_waited_for_off_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = EmbeddedStore(path)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another process mid-transaction
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        asyncio.get_running_loop().call_later(0.2, other.execute, "COMMIT")
        started = time.perf_counter()
        admission = await store.reserve(ReserveRequest("a", NOW, (KEY,), (), 100))
        waited = time.perf_counter() - started
        ticking.cancel()
        assert admission.admitted
        assert waited >= 0.15, "it waited for the lock"
        assert ticks >= 10, "the event loop kept running while it waited"
        assert store.contended_calls == 1
    finally:
        other.close()
        await store.close()


async def test_a_lock_that_is_never_released_means_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = EmbeddedStore(path, busy_timeout=0.1)
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.reserve(ReserveRequest("a", NOW, (KEY,), (), 100))
        other.execute("ROLLBACK")
        assert (await store.reserve(ReserveRequest("a", NOW, (KEY,), (), 100))).admitted
    finally:
        other.close()
        await store.close()


async def test_offloaded_mode_gives_the_same_answers(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "state.db", offload=True)
    try:
        assert (await store.reserve(ReserveRequest("a", NOW, (KEY,), RATES, 900))).admitted
        assert not (await store.reserve(ReserveRequest("b", NOW, (KEY,), RATES, 101))).admitted
        assert await store.settle(Settlement("a", NOW, (KEY,), RATES, 10, 0))
        (spend,) = await store.spend((KEY,), NOW)
        assert (spend.spent_micros, spend.reserved_micros) == (10, 0)
    finally:
        await store.close()


async def test_housekeeping_reclaims_lapsed_rows_without_changing_figures(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    store = EmbeddedStore(path, options=StoreOptions(lease_seconds=5, dedupe_seconds=10))
    try:
        await store.reserve(ReserveRequest("abandoned", NOW, (KEY,), RATES, 100, 10))
        await store.reserve(ReserveRequest("done", NOW, (KEY,), RATES, 100, 10))
        await store.settle(Settlement("done", NOW, (KEY,), RATES, 100, 10))
        later = NOW + timedelta(minutes=5)
        before = await store.spend((KEY,), later)
        await store.maintain(later)
        assert await store.spend((KEY,), later) == before
        with closing(sqlite3.connect(path)) as raw:
            counts = {table: raw.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                      for table in ("budget_hold", "in_flight", "request", "rate_window")}
        assert counts == {"budget_hold": 0, "in_flight": 0, "request": 0, "rate_window": 0}
    finally:
        await store.close()


async def test_a_closed_store_reports_unavailable(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path / "state.db")
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.ping()
