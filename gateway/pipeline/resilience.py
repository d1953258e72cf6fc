"""Failure handling per attempt, for route.py: retries of one target, a retry budget, and
circuit breakers shared across replicas.

    Resilience          one per gateway process (the lifespan owns it; reloads keep it):
    ├── policy(snapshot, provider)   the provider's RetryPolicy and BreakerPolicy
    ├── budget(provider)             RetryBudget: retries per request over a 10 s window
    └── board(store)                 BreakerBoard: the breakers of one store, cached

Retries. A target that fails with a passing failure (connection, timeout, 429, 5xx, 529) is
tried again up to `maxAttempts` times in all, after `retry_delay()`: exponential from
`baseDelayMs`, capped at `maxDelayMs`, with "equal jitter" (a random factor in [0.5, 1), so
replicas that failed together don't retry together), or the provider's Retry-After when that
is longer. A Retry-After beyond the cap is not waited for: the route moves to the next target.
Every retry spends from the provider's budget, which holds `budgetMinRetries` plus
`budgetRatio` × the requests sent to that provider in the last 10 s. The budget is
per process (N replicas allow N × the floor); it is what keeps a retrying fleet from
doubling the load on a provider that is already down.

Breakers. `BreakerBoard.check()` answers from an in-process cache of the store's breaker
states and costs no store round trip while a breaker is closed, or open and cooling down:

- a background task re-reads every breaker used in the last minute every `cache_seconds`
  (0.5 s) in one store call, so a breaker opened by another replica is seen here within
  `cache_seconds` + one store round trip (the staleness bound); a key seen for the first time
  is read at once (bounded by `first_read_timeout`; a slow store reads as closed);
- only an open breaker whose cool-down has passed, or a half-open one with a free probe slot,
  costs a round trip (`breaker_acquire`), and at most one at a time per key and process;
- outcomes are reported fire-and-forget: `report()` queues them (bounded: beyond
  `max_pending` they are dropped and counted) and a background task sends them, one call per
  key per batch — at once when a failure or a probe outcome is queued, otherwise at most every
  `flush_interval`, so healthy traffic costs a few store calls per second, not one per request;
- every outcome is also applied to an in-process copy of the state machine (`MemoryBreakers`).
  When a store call fails, that copy decides until the background task reads the store again
  successfully: breakers keep working per process during a store outage.

Every time input comes from the injected `clock` (wall seconds) and retry waits go through
the injected `sleep`, so tests drive both without sleeping.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random as random_module
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tollgate.gateway import metrics
from tollgate.gateway.config.models import CircuitBreakerSettings, GatewayConfig, RetrySettings
from tollgate.gateway.runtime import Snapshot
from tollgate.gateway.store.base import Store, StoreUnavailable
from tollgate.gateway.store.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    BreakerPolicy,
    BreakerState,
    MemoryBreakers,
)

__all__ = [
    "BreakerBoard",
    "Permit",
    "Resilience",
    "RetryBudget",
    "RetryPolicy",
    "TargetPolicy",
    "backoff",
    "parse_retry_after",
    "retry_delay",
]

log = logging.getLogger("tollgate.route")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]
Random = Callable[[], float]


# --- retries ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """A provider's `retry` settings in seconds; `max_attempts=1` means no retries."""

    max_attempts: int = 2
    base_delay: float = 0.25
    max_delay: float = 2.0
    budget_ratio: float = 0.2
    budget_min_retries: int = 3

    @classmethod
    def from_settings(cls, settings: RetrySettings | None) -> RetryPolicy:
        if settings is None:
            return cls(max_attempts=1)
        return cls(settings.max_attempts, settings.base_delay_ms / 1000,
                   settings.max_delay_ms / 1000, settings.budget_ratio,
                   settings.budget_min_retries)


def backoff(retry: int, policy: RetryPolicy, random: Random) -> float:
    """Seconds before retry number `retry` (1 = the first retry): the exponential ceiling
    `min(max_delay, base_delay * 2**(retry-1))` times a random factor in [0.5, 1)."""
    ceiling = min(policy.max_delay, policy.base_delay * 2.0 ** min(retry - 1, 62))
    return ceiling * (0.5 + 0.5 * random())


def parse_retry_after(value: str | None, now: float) -> float | None:
    """A Retry-After header in seconds from `now`: delta-seconds or an HTTP date; None when
    absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp() - now
    if math.isnan(seconds):
        return None
    return max(0.0, seconds)


def retry_delay(retry: int, policy: RetryPolicy, retry_after: float | None,
                random: Random) -> float | None:
    """How long to wait before retry number `retry`, or None when the provider asked for a
    longer wait than `max_delay` (then the next target is tried instead)."""
    delay = backoff(retry, policy, random)
    if retry_after is None:
        return delay
    if retry_after > policy.max_delay:
        return None
    return max(delay, retry_after)


class RetryBudget:
    """Requests and retries to one provider over the last `WINDOW_SECONDS` (ten 1-second
    buckets). A retry is allowed while retries < min_retries + ratio × requests."""

    WINDOW_SECONDS = 10
    _BUCKETS = 10

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._width = self.WINDOW_SECONDS / self._BUCKETS
        self._ids = [-1] * self._BUCKETS
        self._requests = [0] * self._BUCKETS
        self._retries = [0] * self._BUCKETS

    def _slot(self, bucket: int) -> int:
        index = bucket % self._BUCKETS
        if self._ids[index] != bucket:
            self._ids[index] = bucket
            self._requests[index] = self._retries[index] = 0
        return index

    def _now(self) -> int:
        return int(self._clock() // self._width)

    def totals(self) -> tuple[int, int]:
        """(requests, retries) in the window."""
        bucket = self._now()
        live = [i for i, b in enumerate(self._ids) if bucket - self._BUCKETS < b <= bucket]
        return sum(self._requests[i] for i in live), sum(self._retries[i] for i in live)

    def record_request(self) -> None:
        """A first attempt at one of the provider's targets."""
        self._requests[self._slot(self._now())] += 1

    def try_retry(self, policy: RetryPolicy) -> bool:
        """Spend one retry if the budget allows it."""
        requests, retries = self.totals()
        if retries >= policy.budget_min_retries + policy.budget_ratio * requests:
            return False
        self._retries[self._slot(self._now())] += 1
        return True


# --- breakers --------------------------------------------------------------------------------


class Permit(enum.Enum):
    ALLOW = "allow"
    PROBE = "probe"  # half-open: this request is one of the probes; report it as such
    REFUSE = "refuse"  # open: skip the target, no request


@dataclass(slots=True)
class _Entry:
    provider: str
    model: str
    state: BreakerState


@dataclass(slots=True)
class _Batch:
    policy: BreakerPolicy
    outcomes: list[bool] = field(default_factory=list)


def _moment(now: float) -> datetime:
    return datetime.fromtimestamp(now, UTC)


class BreakerBoard:
    """The circuit breakers of one store, as seen by this process (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock = time.time,
        cache_seconds: float = 0.5,
        first_read_timeout: float = 0.1,
        flush_interval: float = 0.05,
        idle_seconds: float = 60.0,
        max_pending: int = 10_000,
        background: bool = True,
        on_state: Callable[[str, str, int], None] | None = None,
    ) -> None:
        self.store = store
        self.memory = MemoryBreakers()
        self._clock = clock
        self._cache_seconds = cache_seconds
        self._first_read_timeout = first_read_timeout
        self._flush_interval = flush_interval
        self._idle_seconds = idle_seconds
        self._max_pending = max_pending
        self._background = background
        self._on_state = on_state
        self._cache: dict[str, _Entry] = {}
        self._used: dict[str, float] = {}
        self._published: dict[str, int] = {}
        self._first_reads: dict[str, asyncio.Future[None]] = {}
        self._acquiring: set[str] = set()
        self._pending: dict[str, _Batch] = {}
        self._probes: list[tuple[str, BreakerPolicy, bool]] = []
        self._pending_count = 0
        self._urgent = False
        self._wakeup: asyncio.Future[None] | None = None
        self._drain_task: asyncio.Task[None] | None = None
        self._refresh_task: asyncio.Task[None] | None = None
        self.store_ok = True
        """False while the store is unreachable: the in-process copy decides."""
        self.dropped = 0
        """Outcomes not sent to the store because the queue was full."""

    # --- the request path -------------------------------------------------------------------

    async def check(self, provider: str, model: str, policy: BreakerPolicy) -> Permit:
        """May this request try (provider, model)? No store round trip unless the breaker is
        due for a probe (or the key was never read by this process)."""
        key = f"{provider}/{model}"
        now = self._clock()
        self._used[key] = now
        if self._background and self._refresh_task is None:
            self._refresh_task = asyncio.get_running_loop().create_task(
                self._refresh_loop(), name="tollgate-breaker-refresh")
        if not self.store_ok:
            return self._decide_in_memory(key, provider, model, now, policy)
        entry = self._cache.get(key)
        if entry is None:
            await self._first_read(key, provider, model)
            if not self.store_ok:
                return self._decide_in_memory(key, provider, model, now, policy)
            entry = self._cache.get(key)
            if entry is None:  # the read was abandoned (its request went away): closed
                return Permit.ALLOW
        state = entry.state
        if state.state == CLOSED:
            return Permit.ALLOW
        if state.refuses(int(now * 1000), policy) or key in self._acquiring:
            return Permit.REFUSE
        self._acquiring.add(key)
        try:
            admitted, state = await self.store.breaker_acquire(key, _moment(now), policy)
        except StoreUnavailable:
            self._store_down()
            return self._decide_in_memory(key, provider, model, now, policy)
        finally:
            self._acquiring.discard(key)
        self._learn(key, provider, model, state)
        if not admitted:
            return Permit.REFUSE
        return Permit.PROBE if state.state == HALF_OPEN else Permit.ALLOW

    def report(self, provider: str, model: str, policy: BreakerPolicy, ok: bool,
               permit: Permit) -> None:
        """An attempt's outcome (True = the provider answered). Never waits."""
        key = f"{provider}/{model}"
        probe = permit is Permit.PROBE
        now = self._clock()
        state = self.memory.report(key, (ok,), int(now * 1000), policy, probe=probe)
        if not self.store_ok:
            self._publish(key, provider, model, state.state)
            return
        if self._pending_count >= self._max_pending:
            self.dropped += 1
            return
        self._cache.setdefault(key, _Entry(provider, model, BreakerState()))
        if probe:
            self._probes.append((key, policy, ok))
        else:
            batch = self._pending.get(key)
            if batch is None:
                batch = self._pending[key] = _Batch(policy)
            batch.policy = policy
            batch.outcomes.append(ok)
        self._pending_count += 1
        if probe or not ok:
            self._urgent = True
            if self._wakeup is not None and not self._wakeup.done():
                self._wakeup.set_result(None)
        if self._background and self._drain_task is None:
            self._drain_task = asyncio.get_running_loop().create_task(
                self._drain_loop(), name="tollgate-breaker-reports")

    def opened(self, provider: str, model: str, policy: BreakerPolicy) -> bool:
        """Has the breaker opened (say, by this request's own failure) since `check`? Asked
        before a retry: the shared view, or this process's own outcomes, which the in-process
        copy has already counted while the report to the store is still on its way."""
        key = f"{provider}/{model}"
        now_ms = int(self._clock() * 1000)
        if self.memory.state(key).refuses(now_ms, policy):
            return True
        entry = self._cache.get(key)
        return self.store_ok and entry is not None and entry.state.refuses(now_ms, policy)

    def state(self, provider: str, model: str) -> BreakerState | None:
        """This process's current view of a breaker (None: never seen)."""
        key = f"{provider}/{model}"
        if not self.store_ok:
            return self.memory.state(key)
        entry = self._cache.get(key)
        return entry.state if entry is not None else None

    # --- talking to the store ---------------------------------------------------------------

    async def flush(self) -> None:
        """Send every queued outcome to the store now (the background task calls this)."""
        while self._probes or self._pending:
            probes, self._probes = self._probes, []
            pending, self._pending = self._pending, {}
            self._pending_count = 0
            self._urgent = False
            now = self._clock()
            moment = _moment(now)
            try:
                for key, policy, ok in probes:
                    state = await self.store.breaker_report(key, (ok,), moment, policy,
                                                            probe=True)
                    self._learn_key(key, state)
                for key, batch in pending.items():
                    state = await self.store.breaker_report(key, tuple(batch.outcomes), moment,
                                                            batch.policy)
                    self._learn_key(key, state)
            except StoreUnavailable:
                self._store_down()
                return

    async def refresh(self) -> bool:
        """Re-read every breaker used recently, in one store call; forget idle ones. False
        when there is nothing left to watch."""
        now = self._clock()
        for key, used in list(self._used.items()):
            if now - used >= self._idle_seconds:
                del self._used[key]
                self._cache.pop(key, None)
        keys = tuple(key for key in self._used if key in self._cache or not self.store_ok)
        if not keys:
            return bool(self._used)
        try:
            states = await self.store.breaker_state(keys)
        except StoreUnavailable:
            self._store_down()
            return True
        if not self.store_ok:
            log.info("breaker state store is back; shared breaker states are used again",
                     extra={"event": "breaker_store_back"})
            self.store_ok = True
        for key, state in zip(keys, states, strict=True):
            self._learn_key(key, state)
        return True

    async def aclose(self) -> None:
        """Stop the background tasks and send what is queued (best effort)."""
        for task in (self._refresh_task, self._drain_task):
            if task is not None:
                task.cancel()
        if self.store_ok:
            try:
                await asyncio.wait_for(self.flush(), timeout=1.0)
            except (TimeoutError, StoreUnavailable):
                pass

    async def _first_read(self, key: str, provider: str, model: str) -> None:
        """Read a key this process has not seen; concurrent first uses share one read."""
        running = self._first_reads.get(key)
        if running is not None:
            await asyncio.shield(running)
            return
        future = self._first_reads[key] = asyncio.get_running_loop().create_future()
        state = BreakerState()
        try:
            async with asyncio.timeout(self._first_read_timeout):
                (state,) = await self.store.breaker_state((key,))
        except StoreUnavailable:
            self._store_down()
        except TimeoutError:
            pass  # read as closed now; the background refresh corrects it
        finally:
            del self._first_reads[key]
            future.set_result(None)
        self._learn(key, provider, model, state)

    async def _drain_loop(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._probes or self._pending:
                if not self._urgent:
                    wakeup = self._wakeup = loop.create_future()
                    timer = loop.call_later(self._flush_interval, _resolve, wakeup)
                    try:
                        await wakeup
                    finally:
                        timer.cancel()
                        self._wakeup = None
                await self.flush()
        except Exception:  # never let a bug here kill reporting for good silently
            log.exception("breaker report task failed", extra={"event": "breaker_error"})
        finally:
            self._drain_task = None

    async def _refresh_loop(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._cache_seconds)
                if not await self.refresh():
                    return
        except Exception:
            log.exception("breaker refresh task failed", extra={"event": "breaker_error"})
        finally:
            self._refresh_task = None

    def _store_down(self) -> None:
        if self.store_ok:
            log.warning("breaker state store unavailable; breakers are per process until it "
                        "is back", extra={"event": "breaker_store_unavailable"})
        self.store_ok = False
        self._pending.clear()
        self._probes.clear()
        self._pending_count = 0

    def _decide_in_memory(self, key: str, provider: str, model: str, now: float,
                          policy: BreakerPolicy) -> Permit:
        admitted, state = self.memory.acquire(key, int(now * 1000), policy)
        self._publish(key, provider, model, state.state)
        if not admitted:
            return Permit.REFUSE
        return Permit.PROBE if state.state == HALF_OPEN else Permit.ALLOW

    def _learn_key(self, key: str, state: BreakerState) -> None:
        entry = self._cache.get(key)
        if entry is not None:
            self._learn(key, entry.provider, entry.model, state)

    def _learn(self, key: str, provider: str, model: str, state: BreakerState) -> None:
        entry = self._cache.get(key)
        if entry is None:
            self._cache[key] = _Entry(provider, model, state)
        else:
            entry.state = state
        if state.state == CLOSED:
            # Keep the in-process copy in step once the shared breaker closed: an expired
            # opening of its own would otherwise ignore every outcome from then on.
            mine = self.memory.state(key)
            if mine.state == HALF_OPEN or (
                    mine.state == OPEN and self._clock() * 1000 >= mine.open_until_ms):
                self.memory.reset(key)
        self._publish(key, provider, model, state.state)

    def _publish(self, key: str, provider: str, model: str, code: int) -> None:
        if self._published.get(key) == code:
            return
        self._published[key] = code
        if self._on_state is not None:
            self._on_state(provider, model, code)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


# --- the per-process container ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TargetPolicy:
    retry: RetryPolicy
    breaker: BreakerPolicy | None


_DEFAULT_POLICY = TargetPolicy(RetryPolicy(max_attempts=1), None)


def _publish_state(provider: str, model: str, code: int) -> None:
    metrics.CIRCUIT_STATE.labels(provider, model).set(code)


class Resilience:
    """Everything failure handling keeps between requests, for one gateway process."""

    def __init__(
        self,
        *,
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
        random: Random = random_module.random,
        background: bool = True,
        cache_seconds: float = 0.5,
        on_state: Callable[[str, str, int], None] | None = _publish_state,
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self.random = random
        self._background = background
        self._cache_seconds = cache_seconds
        self._on_state = on_state
        self._boards: dict[int, BreakerBoard] = {}
        self._budgets: dict[str, RetryBudget] = {}
        self._config: GatewayConfig | None = None
        self._policies: dict[str, TargetPolicy] = {}

    def policy(self, snapshot: Snapshot, provider: str) -> TargetPolicy:
        config = snapshot.config
        if config is not self._config:
            self._policies = {p.name: _target_policy(p.retry, p.circuit_breaker)
                              for p in config.providers}
            self._config = config
        return self._policies.get(provider, _DEFAULT_POLICY)

    def board(self, store: Store) -> BreakerBoard:
        board = self._boards.get(id(store))
        if board is None or board.store is not store:
            board = self._boards[id(store)] = BreakerBoard(
                store, clock=self.clock, cache_seconds=self._cache_seconds,
                background=self._background, on_state=self._on_state)
        return board

    def budget(self, provider: str) -> RetryBudget:
        budget = self._budgets.get(provider)
        if budget is None:
            budget = self._budgets[provider] = RetryBudget(self.clock)
        return budget

    async def aclose(self) -> None:
        for board in self._boards.values():
            await board.aclose()


def _target_policy(retry: RetrySettings | None,
                   breaker: CircuitBreakerSettings | None) -> TargetPolicy:
    policy = None
    if breaker is not None:
        policy = BreakerPolicy(breaker.consecutive_failures, breaker.failure_ratio,
                               breaker.minimum_requests, breaker.window_seconds,
                               breaker.open_seconds, breaker.half_open_probes)
    return TargetPolicy(RetryPolicy.from_settings(retry), policy)
