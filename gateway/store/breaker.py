"""The circuit breaker's state machine: pure functions over one record, so the embedded store
(SQLite), the in-process fallback (`MemoryBreakers`) and the Redis script (`lua/breaker.lua`,
a line-for-line mirror) decide exactly alike. The same behaviour tests run against each.

One record per breaker key ("<provider>/<model>"):

    closed ──(N consecutive failures, or failures/requests >= ratio over >= minimum requests
              in the sliding window)──► open
    open ──(openSeconds have passed, and a request asks: `acquire`)──► half-open
    half-open ──(a probe succeeds)──► closed        (counters start from zero)
    half-open ──(a probe fails)──► open             (for another openSeconds)

- `acquire(now)`: may a request go to this target? closed: yes. open before `open_until`: no.
  Otherwise the breaker is half-open and admits at most `half_open_probes` probe requests per
  probe round; a round lasts openSeconds, so probes whose outcome never arrives (their gateway
  died) free their slots when the round ends.
- `report(outcomes, probe, now)`: outcomes in the order they happened (True = success). While
  closed every outcome counts. While half-open only probe outcomes count (a slow request that
  started before the breaker opened says nothing about the recovery). While open nothing
  counts: those are requests that were already in flight when it opened.
- The sliding window is two fixed windows of `window_seconds`, the previous one weighted by how
  much of it still overlaps the last `window_seconds` (the usual sliding-window counter). A
  window only ever rolls forward, so a replica whose clock is slightly behind counts into the
  current window instead of resetting it.

Times are integer milliseconds of the caller's clock; replicas' clocks only need to agree to
well under `openSeconds`. Outcomes count in the order they reach the store: gateways send
successes in batches (pipeline/resilience.py), so a success from just before an outage may
land after its first failures and restart the consecutive count once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "BreakerPolicy",
    "BreakerRecord",
    "BreakerState",
    "MemoryBreakers",
    "StateName",
    "acquire",
    "report",
]

CLOSED, HALF_OPEN, OPEN = 0, 1, 2
"""State codes; also the values of the `tollgate_circuit_state` gauge."""

StateName = Literal["closed", "half_open", "open"]
_NAMES: dict[int, StateName] = {CLOSED: "closed", HALF_OPEN: "half_open", OPEN: "open"}


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a breaker opens and how it recovers (a provider's `circuitBreaker` settings)."""

    consecutive_failures: int = 5
    failure_ratio: float = 0.5
    minimum_requests: int = 20
    window_seconds: int = 30
    open_seconds: float = 30.0
    half_open_probes: int = 1

    def __post_init__(self) -> None:
        if self.consecutive_failures < 1 or self.minimum_requests < 1:
            raise ValueError("consecutive_failures and minimum_requests must be >= 1")
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.window_seconds < 1 or self.open_seconds <= 0 or self.half_open_probes < 1:
            raise ValueError("window_seconds >= 1, open_seconds > 0, half_open_probes >= 1")

    @property
    def open_ms(self) -> int:
        return max(1, round(self.open_seconds * 1000))

    @property
    def window_ms(self) -> int:
        return self.window_seconds * 1000


@dataclass(frozen=True, slots=True)
class BreakerState:
    """What a reader needs to decide without asking the store again."""

    state: int = CLOSED
    open_until_ms: int = 0
    """While open: when a request may ask to probe."""
    probes: int = 0
    """While half-open: probes admitted in the current round."""
    probe_until_ms: int = 0
    """While half-open: when the current probe round ends (unreported probes then lapse)."""

    @property
    def name(self) -> StateName:
        return _NAMES[self.state]

    def refuses(self, now_ms: int, policy: BreakerPolicy) -> bool:
        """True when `acquire` would certainly refuse now (no need to ask the store)."""
        if self.state == OPEN:
            return now_ms < self.open_until_ms
        if self.state == HALF_OPEN:
            return self.probes >= policy.half_open_probes and now_ms < self.probe_until_ms
        return False


@dataclass(slots=True)
class BreakerRecord:
    """Everything stored for one breaker key."""

    state: int = CLOSED
    open_until_ms: int = 0
    probes: int = 0
    probe_until_ms: int = 0
    consecutive: int = 0
    window_ms: int = 0
    """Start of the current fixed window."""
    ok: int = 0
    failed: int = 0
    prev_ok: int = 0
    prev_failed: int = 0

    def view(self) -> BreakerState:
        return BreakerState(self.state, self.open_until_ms, self.probes, self.probe_until_ms)


def _open(record: BreakerRecord, now_ms: int, policy: BreakerPolicy) -> None:
    record.state = OPEN
    record.open_until_ms = now_ms + policy.open_ms
    _reset(record)


def _close(record: BreakerRecord) -> None:
    record.state = CLOSED
    record.open_until_ms = 0
    _reset(record)


def _reset(record: BreakerRecord) -> None:
    record.probes = record.probe_until_ms = record.consecutive = 0
    record.window_ms = record.ok = record.failed = record.prev_ok = record.prev_failed = 0


def _roll(record: BreakerRecord, now_ms: int, window: int) -> None:
    start = now_ms - now_ms % window
    if start <= record.window_ms:
        return
    if start - record.window_ms == window:
        record.prev_ok, record.prev_failed = record.ok, record.failed
    else:
        record.prev_ok = record.prev_failed = 0
    record.ok = record.failed = 0
    record.window_ms = start


def _ratio_trips(record: BreakerRecord, now_ms: int, policy: BreakerPolicy) -> bool:
    window = policy.window_ms
    weight = (window - (now_ms - record.window_ms)) / window
    weight = min(1.0, max(0.0, weight))
    total = record.ok + record.failed + (record.prev_ok + record.prev_failed) * weight
    failed = record.failed + record.prev_failed * weight
    return total >= policy.minimum_requests and failed >= policy.failure_ratio * total


def report(record: BreakerRecord, outcomes: Sequence[bool], probe: bool, now_ms: int,
           policy: BreakerPolicy) -> None:
    """Apply outcomes (True = success), oldest first; see the module docstring."""
    for ok in outcomes:
        if record.state == OPEN:
            return
        if record.state == HALF_OPEN:
            if not probe:
                return
            if ok:
                _close(record)
            else:
                _open(record, now_ms, policy)
            continue
        _roll(record, now_ms, policy.window_ms)
        if ok:
            record.ok += 1
            record.consecutive = 0
            continue
        record.failed += 1
        record.consecutive += 1
        if record.consecutive >= policy.consecutive_failures or \
                _ratio_trips(record, now_ms, policy):
            _open(record, now_ms, policy)


def acquire(record: BreakerRecord, now_ms: int, policy: BreakerPolicy) -> bool:
    """May one request go to the target now? Takes a probe slot when half-open."""
    if record.state == CLOSED:
        return True
    if record.state == OPEN:
        if now_ms < record.open_until_ms:
            return False
        record.state = HALF_OPEN
        record.probes = record.probe_until_ms = 0
    if now_ms >= record.probe_until_ms:  # a new probe round
        record.probes = 0
        record.probe_until_ms = now_ms + policy.open_ms
    if record.probes >= policy.half_open_probes:
        return False
    record.probes += 1
    return True


class MemoryBreakers:
    """The state machine in process memory: the fallback while the store is unreachable, and
    the reference implementation for the store tests. Synchronous; a plain dict of records."""

    def __init__(self) -> None:
        self._records: dict[str, BreakerRecord] = {}

    def state(self, key: str) -> BreakerState:
        record = self._records.get(key)
        return record.view() if record is not None else BreakerState()

    def report(self, key: str, outcomes: Sequence[bool], now: datetime | int,
               policy: BreakerPolicy, *, probe: bool = False) -> BreakerState:
        record = self._records.setdefault(key, BreakerRecord())
        report(record, outcomes, probe, _ms(now), policy)
        return record.view()

    def acquire(self, key: str, now: datetime | int,
                policy: BreakerPolicy) -> tuple[bool, BreakerState]:
        record = self._records.setdefault(key, BreakerRecord())
        admitted = acquire(record, _ms(now), policy)
        return admitted, record.view()

    def reset(self, key: str) -> None:
        """Forget a breaker (it reads as closed again, its counters at zero)."""
        self._records.pop(key, None)


def _ms(now: datetime | int) -> int:
    if isinstance(now, int):
        return now
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware, e.g. datetime.now(UTC)")
    return int(now.timestamp() * 1000)
