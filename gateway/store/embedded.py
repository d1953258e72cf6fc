"""Embedded store: governance state in one SQLite file, for standalone gateways.

Counters and the ledger survive a restart (WAL, synchronous=NORMAL: durable across a process
crash; an OS crash or power loss can lose the last few milliseconds of commits). Every decision
is one `BEGIN IMMEDIATE` transaction, which takes SQLite's single write lock before reading, so
several processes sharing the file (uvicorn workers) stay exact, like the Redis scripts.

Where the calls run. A reserve or settle is ~10 short statements, tens of microseconds, so it
runs directly on the event loop: handing it to a thread would cost more than the work. The loop
never waits, though. Its connection has busy_timeout=0 and no auto-checkpoint:

- if another process holds the write lock, `BEGIN IMMEDIATE` fails at once and the same call is
  re-run on the store's worker thread, whose connection waits up to `busy_timeout` seconds;
- WAL checkpoints (which fsync) and housekeeping purges run on that thread as well, as do ledger
  exports. `offload=True` sends every call to the thread instead.

Lapsed leases and old windows never count (every query filters on `now`); housekeeping only
reclaims space, at most every `maintenance_interval` seconds. Ledger retention is applied on
every settle.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from tollgate.gateway.store import breaker
from tollgate.gateway.store.base import (
    BREAKER_TTL_SECONDS,
    WINDOW_SECONDS,
    Admission,
    BudgetCheck,
    BudgetFigures,
    FailedLimit,
    LedgerRecord,
    RateCheck,
    RateFigures,
    Reason,
    Release,
    ReserveRequest,
    Settlement,
    StoreOptions,
    StoreUnavailable,
    budget_ttl_seconds,
    rate_figures,
    retry_after,
    to_ms,
    to_us,
    window_start,
)

__all__ = ["EmbeddedStore"]

log = logging.getLogger("tollgate.store")

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS budget (
    scope TEXT NOT NULL, period TEXT NOT NULL,
    spent INTEGER NOT NULL DEFAULT 0,
    expires_ms INTEGER,                              -- NULL: a `total` budget, kept forever
    PRIMARY KEY (scope, period)) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS budget_hold (
    scope TEXT NOT NULL, period TEXT NOT NULL, request_id TEXT NOT NULL,
    amount INTEGER NOT NULL, lease_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, period, request_id)) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS rate_window (
    scope TEXT NOT NULL, window_s INTEGER NOT NULL,
    requests INTEGER NOT NULL, tokens INTEGER NOT NULL,
    PRIMARY KEY (scope, window_s)) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS in_flight (
    scope TEXT NOT NULL, request_id TEXT NOT NULL, lease_ms INTEGER NOT NULL,
    PRIMARY KEY (scope, request_id)) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS request (                 -- one row per request id:
    request_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,                             -- 'held' | 'settled' | 'released'
    window_s INTEGER, tokens INTEGER,                -- where its tokens were counted
    expires_ms INTEGER NOT NULL                      -- held: lease + 60 s; ended: dedupe time
    ) WITHOUT ROWID""",
    """
CREATE TABLE IF NOT EXISTS ledger (
    seq INTEGER PRIMARY KEY, time_us INTEGER NOT NULL, record BLOB NOT NULL)""",
    """
CREATE INDEX IF NOT EXISTS ledger_time ON ledger (time_us, seq)""",
    """
CREATE TABLE IF NOT EXISTS breaker (                 -- one circuit breaker (store/breaker.py)
    key TEXT PRIMARY KEY,                            -- "<provider>/<model>"
    state INTEGER NOT NULL, open_until_ms INTEGER NOT NULL,
    probes INTEGER NOT NULL, probe_until_ms INTEGER NOT NULL,
    consecutive INTEGER NOT NULL, window_ms INTEGER NOT NULL,
    ok INTEGER NOT NULL, failed INTEGER NOT NULL,
    prev_ok INTEGER NOT NULL, prev_failed INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL) WITHOUT ROWID""",
)
_BREAKER_READ = """
SELECT state, open_until_ms, probes, probe_until_ms, consecutive, window_ms, ok, failed,
       prev_ok, prev_failed FROM breaker WHERE key = ?
"""
_BREAKER_WRITE = "INSERT OR REPLACE INTO breaker VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

_BUDGET = """
SELECT COALESCE((SELECT spent FROM budget WHERE scope = ?1 AND period = ?2), 0),
       (SELECT COALESCE(SUM(amount), 0) FROM budget_hold
         WHERE scope = ?1 AND period = ?2 AND lease_ms > ?3)
"""
_RATE = """
SELECT COALESCE(requests, 0), COALESCE(tokens, 0),
       CASE WHEN ?4 THEN (SELECT COUNT(*) FROM in_flight WHERE scope = ?1 AND lease_ms > ?3)
            ELSE 0 END
  FROM (SELECT 1) LEFT JOIN rate_window ON scope = ?1 AND window_s = ?2
"""
_HOLD = "INSERT OR REPLACE INTO budget_hold VALUES (?, ?, ?, ?, ?)"
_COUNT = """
INSERT INTO rate_window VALUES (?1, ?2, 1, ?3)
ON CONFLICT (scope, window_s) DO UPDATE SET requests = requests + 1, tokens = tokens + ?3
"""
_FLIGHT = "INSERT OR REPLACE INTO in_flight VALUES (?, ?, ?)"
_RECORD = "INSERT INTO request VALUES (?, 'held', ?, ?, ?)"
_ENDED = """
INSERT INTO request VALUES (?1, ?2, NULL, NULL, ?3)
ON CONFLICT (request_id) DO UPDATE SET state = ?2, window_s = NULL, tokens = NULL, expires_ms = ?3
"""
_SPEND = """
INSERT INTO budget VALUES (?1, ?2, ?3, ?4)
ON CONFLICT (scope, period) DO UPDATE SET spent = spent + ?3, expires_ms = ?4
"""
_TOKENS = """
INSERT INTO rate_window VALUES (?1, ?2, 0, MAX(0, ?3))
ON CONFLICT (scope, window_s) DO UPDATE SET tokens = MAX(0, tokens + ?3)
"""

_FAILED: dict[str, Reason] = {
    "budget": "budget_exceeded",
    "requests_per_minute": "rate_limit_exceeded",
    "tokens_per_minute": "rate_limit_exceeded",
    "max_concurrent": "rate_limit_exceeded",
}
_CHECKPOINT_EVERY = 1000  # loop commits between background WAL checkpoints (~30 MB of WAL)


class _Busy(Exception):
    """Another connection holds the write lock; retry where waiting is allowed."""


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            raise _Busy from exc
        raise


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    _begin(conn)
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # some errors (disk full, I/O) already rolled it back
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _connect(path: str, busy_timeout: float, autocheckpoint: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, timeout=busy_timeout, isolation_level=None, check_same_thread=False,
        cached_statements=64,
    )
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 67108864")  # shrink the WAL back after bursts
    if not autocheckpoint:
        conn.execute("PRAGMA wal_autocheckpoint = 0")
    return conn


class EmbeddedStore:
    """The standalone store; see the module docstring for where each call runs."""

    def __init__(
        self,
        path: str | Path,
        *,
        options: StoreOptions | None = None,
        busy_timeout: float = 5.0,
        maintenance_interval: float = 60.0,
        offload: bool = False,
    ) -> None:
        self.options = options or StoreOptions()
        self.path = str(path)
        self._busy_timeout = busy_timeout
        self._maintenance_interval = maintenance_interval
        self._offload = offload
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        setup = _connect(self.path, busy_timeout, autocheckpoint=True)
        try:
            setup.execute("PRAGMA journal_mode = WAL")
            with _transaction(setup):
                for statement in _SCHEMA:
                    setup.execute(statement)
                setup.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        finally:
            setup.close()
        self._conn = _connect(self.path, 0.0, autocheckpoint=False)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tollgate-store")
        self._thread_conn: sqlite3.Connection | None = None  # created on, used by, the thread
        self._commits = 0
        self.contended_calls = 0
        """Calls that found the write lock taken and finished on the worker thread."""
        self._background: Future[None] | None = None
        self._last_maintenance = time.monotonic()
        self._closed = False

    # --- running a transaction ----------------------------------------------------------------

    def _on_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._thread_conn is None:
            self._thread_conn = _connect(self.path, self._busy_timeout, autocheckpoint=True)
        try:
            return fn(self._thread_conn)
        except _Busy as exc:
            raise sqlite3.OperationalError("database is locked") from exc

    async def _run(
        self, fn: Callable[[sqlite3.Connection], T], now_ms: int, *, writes: bool = True
    ) -> T:
        if self._closed:
            raise StoreUnavailable("the embedded store is closed")
        try:
            if self._offload:
                result = await self._in_thread(fn)
            else:
                try:
                    result = fn(self._conn)
                except _Busy:
                    self.contended_calls += 1  # another process holds the lock: wait off-loop
                    result = await self._in_thread(fn)
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store unavailable: {exc}") from exc
        if writes:
            self._after_commit(now_ms)
        return result

    async def _in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, self._on_thread, fn
        )

    def _after_commit(self, now_ms: int) -> None:
        """Schedule a checkpoint / housekeeping on the thread now and then, never twice.
        Housekeeping uses the caller's clock, like every decision, not the wall clock."""
        self._commits += 1
        due = time.monotonic() - self._last_maintenance >= self._maintenance_interval
        if not due and self._commits < _CHECKPOINT_EVERY:
            return
        if self._background is not None and not self._background.done():
            return
        self._commits = 0
        job: Callable[[sqlite3.Connection], None] = _checkpoint
        if due:
            self._last_maintenance = time.monotonic()
            job = functools.partial(self._housekeeping, now_ms=now_ms)
        self._background = self._executor.submit(self._on_thread, job)
        self._background.add_done_callback(_log_failure)

    # --- reserve ------------------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Admission:
        return await self._run(lambda conn: self._reserve(conn, request), to_ms(request.now))

    def _reserve(self, conn: sqlite3.Connection, request: ReserveRequest) -> Admission:
        now = request.now
        now_ms = to_ms(now)
        window = window_start(now.timestamp())
        lease_end = now_ms + self.options.lease_seconds * 1000
        rid = request.request_id
        amount, tokens = request.amount_micros, request.tokens
        execute = conn.execute
        failed_limit: FailedLimit | None = None
        failed: BudgetCheck | RateCheck | None = None
        with _transaction(conn):
            # Held or already ended: a retried reserve changes nothing.
            replayed = execute(
                "SELECT 1 FROM request WHERE request_id = ?", (rid,)
            ).fetchone() is not None
            budgets: list[list[int]] = []
            for b in request.budgets:
                spent, reserved = execute(_BUDGET, (b.scope, b.period_id, now_ms)).fetchone()
                budgets.append([spent, reserved])
                if failed is None and spent + reserved + amount > b.limit_micros:
                    failed_limit, failed = "budget", b
            rates: list[list[int]] = []
            for r in request.rates:
                limited = r.max_concurrent is not None
                n, t, flying = execute(_RATE, (r.scope, window, now_ms, limited)).fetchone()
                rates.append([n, t, flying])
                if failed is not None:
                    continue
                if r.requests_per_minute is not None and n >= r.requests_per_minute:
                    failed_limit, failed = "requests_per_minute", r
                elif r.tokens_per_minute is not None and t + tokens > r.tokens_per_minute:
                    failed_limit, failed = "tokens_per_minute", r
                elif r.max_concurrent is not None and flying >= r.max_concurrent:
                    failed_limit, failed = "max_concurrent", r
            if replayed:
                failed_limit, failed = None, None
            elif failed is None:
                for b, figures in zip(request.budgets, budgets, strict=True):
                    execute(_HOLD, (b.scope, b.period_id, rid, amount, lease_end))
                    figures[1] += amount
                for r, figures in zip(request.rates, rates, strict=True):
                    execute(_COUNT, (r.scope, window, tokens))
                    figures[0] += 1
                    figures[1] += tokens
                    if r.max_concurrent is not None:
                        execute(_FLIGHT, (r.scope, rid, lease_end))
                        figures[2] += 1
                record_ms = now_ms + (self.options.lease_seconds + WINDOW_SECONDS) * 1000
                execute(_RECORD, (rid, window, tokens, record_ms))
        budget_figures = tuple(
            BudgetFigures(b.scope, b.period_id, b.limit_micros, spent, reserved)
            for b, (spent, reserved) in zip(request.budgets, budgets, strict=True)
        )
        rate_figs = tuple(
            rate_figures(r, now, n, t, flying)
            for r, (n, t, flying) in zip(request.rates, rates, strict=True)
        )
        if failed is None or failed_limit is None:
            return Admission(True, budgets=budget_figures, rates=rate_figs, replayed=replayed)
        return Admission(
            False,
            reason=_FAILED[failed_limit],
            failed_scope=failed.scope,
            failed_limit=failed_limit,
            retry_after_seconds=retry_after(
                failed_limit, now, failed if isinstance(failed, BudgetCheck) else None
            ),
            budgets=budget_figures,
            rates=rate_figs,
        )

    # --- settle / release ---------------------------------------------------------------------

    async def settle(self, settlement: Settlement) -> bool:
        s = settlement
        return await self._run(lambda conn: self._end(
            conn, s.request_id, s.now, s.budgets, s.rates, s.actual_micros, s.actual_tokens,
            s.ledger, "settled",
        ), to_ms(s.now))

    async def release(self, release: Release) -> bool:
        r = release
        return await self._run(lambda conn: self._end(
            conn, r.request_id, r.now, r.budgets, r.rates, 0, 0, r.ledger, "released",
        ), to_ms(r.now))

    def _end(
        self,
        conn: sqlite3.Connection,
        rid: str,
        now: datetime,
        budgets: tuple[BudgetCheck, ...],
        rates: tuple[RateCheck, ...],
        actual_micros: int,
        actual_tokens: int,
        ledger: LedgerRecord | None,
        marker: str,
    ) -> bool:
        options = self.options
        now_ms = to_ms(now)
        window = window_start(now.timestamp())
        execute = conn.execute
        with _transaction(conn):
            held = execute(
                "SELECT state, window_s, tokens FROM request WHERE request_id = ?", (rid,)
            ).fetchone()
            if held is not None and held[0] != "held":
                return False  # already settled or released: the replay changes nothing
            execute(_ENDED, (rid, marker, now_ms + options.dedupe_seconds * 1000))
            for b in budgets:
                execute(
                    "DELETE FROM budget_hold WHERE scope = ? AND period = ? AND request_id = ?",
                    (b.scope, b.period_id, rid),
                )
                if actual_micros > 0:
                    ttl = budget_ttl_seconds(b, now, options.period_grace_seconds)
                    execute(_SPEND, (b.scope, b.period_id, actual_micros,
                                     now_ms + ttl * 1000 if ttl else None))
            delta = actual_tokens
            if held is not None:
                _state, held_window, held_tokens = held
                if held_window == window:
                    delta = actual_tokens - held_tokens
                else:
                    delta = max(0, actual_tokens - held_tokens)
            for r in rates:
                if delta:
                    execute(_TOKENS, (r.scope, window, delta))
                execute("DELETE FROM in_flight WHERE scope = ? AND request_id = ?",
                        (r.scope, rid))
            if ledger is not None:
                execute("INSERT INTO ledger (time_us, record) VALUES (?, ?)",
                        (ledger.time_us, ledger.to_json()))
                if options.ledger_max_age_days is not None:
                    oldest = to_us(now) - options.ledger_max_age_days * 86_400_000_000
                    execute("DELETE FROM ledger WHERE time_us < ?", (oldest,))
                if options.ledger_max_records is not None:
                    execute(
                        "DELETE FROM ledger WHERE seq <= (SELECT MAX(seq) FROM ledger) - ?",
                        (options.ledger_max_records,),
                    )
        return True

    # --- circuit breakers ----------------------------------------------------------------------

    async def breaker_state(
        self, keys: tuple[str, ...]
    ) -> tuple[breaker.BreakerState, ...]:
        def read(conn: sqlite3.Connection) -> tuple[breaker.BreakerState, ...]:
            return tuple(_breaker_record(conn, key).view() for key in keys)

        return await self._run(read, 0, writes=False)

    async def breaker_report(
        self, key: str, outcomes: tuple[bool, ...], now: datetime,
        policy: breaker.BreakerPolicy, *, probe: bool = False,
    ) -> breaker.BreakerState:
        now_ms = to_ms(now)

        def write(conn: sqlite3.Connection) -> breaker.BreakerState:
            with _transaction(conn):
                record = _breaker_record(conn, key)
                breaker.report(record, outcomes, probe, now_ms, policy)
                _save_breaker(conn, key, record, now_ms)
            return record.view()

        return await self._run(write, now_ms)

    async def breaker_acquire(
        self, key: str, now: datetime, policy: breaker.BreakerPolicy
    ) -> tuple[bool, breaker.BreakerState]:
        now_ms = to_ms(now)

        def write(conn: sqlite3.Connection) -> tuple[bool, breaker.BreakerState]:
            with _transaction(conn):
                record = _breaker_record(conn, key)
                admitted = breaker.acquire(record, now_ms, policy)
                if record.state != breaker.CLOSED:
                    _save_breaker(conn, key, record, now_ms)
            return admitted, record.view()

        return await self._run(write, now_ms)

    # --- read-only views ----------------------------------------------------------------------

    async def spend(
        self, budgets: tuple[BudgetCheck, ...], now: datetime | None = None
    ) -> tuple[BudgetFigures, ...]:
        now_ms = to_ms(now or datetime.now(UTC))

        def read(conn: sqlite3.Connection) -> tuple[BudgetFigures, ...]:
            return tuple(
                BudgetFigures(b.scope, b.period_id, b.limit_micros,
                              *conn.execute(_BUDGET, (b.scope, b.period_id, now_ms)).fetchone())
                for b in budgets
            )

        return await self._run(read, now_ms, writes=False)

    async def rate_status(
        self, rates: tuple[RateCheck, ...], now: datetime | None = None
    ) -> tuple[RateFigures, ...]:
        moment = now or datetime.now(UTC)
        now_ms = to_ms(moment)
        window = window_start(moment.timestamp())

        def read(conn: sqlite3.Connection) -> tuple[RateFigures, ...]:
            return tuple(
                rate_figures(r, moment, *conn.execute(
                    _RATE, (r.scope, window, now_ms, r.max_concurrent is not None)
                ).fetchone())
                for r in rates
            )

        return await self._run(read, now_ms, writes=False)

    async def ledger(
        self, since: datetime, until: datetime, *, batch: int = 1000
    ) -> AsyncIterator[LedgerRecord]:
        """Keyset pages on (time, seq), read on the worker thread so exports never block."""
        if self._closed:
            raise StoreUnavailable("the embedded store is closed")
        high = to_us(until)

        def page(after: tuple[int, int], conn: sqlite3.Connection) -> list[tuple[int, int, bytes]]:
            rows: list[tuple[int, int, bytes]] = conn.execute(
                "SELECT time_us, seq, record FROM ledger"
                " WHERE (time_us > ?1 OR (time_us = ?1 AND seq > ?2)) AND time_us < ?3"
                " ORDER BY time_us, seq LIMIT ?4",
                (after[0], after[1], high, batch),
            ).fetchall()
            return rows

        after = (to_us(since), -1)
        while True:
            try:
                rows = await self._in_thread(functools.partial(page, after))
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"embedded store unavailable: {exc}") from exc
            for _time_us, _seq, record in rows:
                yield LedgerRecord.from_json(record)
            if len(rows) < batch:
                return
            after = (rows[-1][0], rows[-1][1])

    # --- housekeeping and lifecycle -----------------------------------------------------------

    async def maintain(self, now: datetime | None = None) -> None:
        """Reclaim space now (lapsed holds, old windows and markers, expired periods) and
        checkpoint the WAL. Runs by itself every `maintenance_interval`; exposed for ops/tests."""
        now_ms = to_ms(now or datetime.now(UTC))
        if self._closed:
            raise StoreUnavailable("the embedded store is closed")
        try:
            await self._in_thread(functools.partial(self._housekeeping, now_ms=now_ms))
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"embedded store unavailable: {exc}") from exc

    def _housekeeping(self, conn: sqlite3.Connection, now_ms: int) -> None:
        with _transaction(conn):
            conn.execute("DELETE FROM budget_hold WHERE lease_ms <= ?", (now_ms,))
            conn.execute("DELETE FROM in_flight WHERE lease_ms <= ?", (now_ms,))
            conn.execute("DELETE FROM request WHERE expires_ms <= ?", (now_ms,))
            conn.execute("DELETE FROM budget WHERE expires_ms <= ?", (now_ms,))
            conn.execute("DELETE FROM rate_window WHERE window_s < ?",
                         (now_ms // 1000 - 2 * WINDOW_SECONDS,))
            conn.execute("DELETE FROM breaker WHERE updated_ms <= ?",
                         (now_ms - BREAKER_TTL_SECONDS * 1000,))
        _checkpoint(conn)

    async def claim_marker(self, name: str, now: datetime, ttl_seconds: int) -> bool:
        """Set-if-absent, lapsing `ttl_seconds` after `now`: True for the one caller (of every
        process sharing the file) that sets `name` first. Alert dedupe uses it; the table is
        created on first use."""
        now_ms = to_ms(now)

        def claim(conn: sqlite3.Connection) -> bool:
            with _transaction(conn):
                conn.execute("CREATE TABLE IF NOT EXISTS marker ("
                             "name TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL) WITHOUT ROWID")
                conn.execute("DELETE FROM marker WHERE expires_ms <= ?", (now_ms,))
                cursor = conn.execute("INSERT OR IGNORE INTO marker VALUES (?, ?)",
                                      (name, now_ms + 1000 * max(1, int(ttl_seconds))))
                return cursor.rowcount == 1

        return await self._run(claim, now_ms)

    async def ping(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone(), 0, writes=False)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()

        def finish() -> None:
            if self._thread_conn is not None:
                try:
                    _checkpoint(self._thread_conn)
                finally:
                    self._thread_conn.close()
                    self._thread_conn = None

        try:
            await loop.run_in_executor(self._executor, finish)
        finally:
            self._executor.shutdown(wait=False)
            self._conn.close()

    async def __aenter__(self) -> EmbeddedStore:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


def _breaker_record(conn: sqlite3.Connection, key: str) -> breaker.BreakerRecord:
    row = conn.execute(_BREAKER_READ, (key,)).fetchone()
    return breaker.BreakerRecord(*row) if row is not None else breaker.BreakerRecord()


def _save_breaker(conn: sqlite3.Connection, key: str, record: breaker.BreakerRecord,
                  now_ms: int) -> None:
    conn.execute(_BREAKER_WRITE, (
        key, record.state, record.open_until_ms, record.probes, record.probe_until_ms,
        record.consecutive, record.window_ms, record.ok, record.failed, record.prev_ok,
        record.prev_failed, now_ms,
    ))


def _checkpoint(conn: sqlite3.Connection) -> None:
    """PASSIVE first (never blocks); when writes keep it from finishing, RESTART, which waits
    briefly for writers so the next write rewinds the WAL instead of growing it forever
    (journal_size_limit then truncates the file)."""
    busy, log_pages, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if busy or done < log_pages:
        conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()


def _log_failure(future: Future[None]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("embedded store housekeeping failed: %s", exc)
