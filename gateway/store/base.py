"""The Store protocol: shared governance state behind one interface, two real implementations.

A request costs the store two calls, each one atomic round trip:

    reserve(ReserveRequest)  every budget and rate limit of the request checked and, only if
                             all pass, held: amount on each budget, +1 request and +tokens in
                             each rate window, +1 in flight.            -> Admission
    settle(Settlement)       the hold released, the actual cost and tokens charged, the ledger
      or release(Release)    record appended; idempotent by request id. -> bool (applied?)

Semantics shared by every implementation (the same test suite runs against each):

- Money is integer micro-dollars; a budget admits when spent + reserved + amount <= limit.
- Rate windows are fixed 60-second windows aligned to the Unix minute (window start =
  floor(now / 60) * 60). A burst can straddle a boundary (up to 2x a limit in 60 s); that is
  the price of one counter per window. Retry-After for a rate limit is the time to the window's
  end; for a concurrency limit, 1 s; for a budget, the time to the period's end when known.
- Every hold has a lease (StoreOptions.lease_seconds, 15 min by default). A process that dies
  before settling leaks nothing: once `now` passes the lease, the hold stops counting against
  budgets and concurrency and is purged by later calls.
- The store remembers what it holds for each request id; settle/release release exactly that.
  A request whose hold already lapsed, or that was admitted while the store was down, is
  settled by adding its actual spend only. The caller never has to repeat reserved amounts,
  but passes the same BudgetCheck/RateCheck tuples it reserved with (holds are found by scope
  and period, so a request that straddles midnight is charged to the period it started in).
- The lease must outlast the longest request (long streams included): a hold that lapses while
  its request still runs stops protecting the budget.
- Tokens: settle corrects the window the hold was counted in by (actual - reserved) when that
  window is still current; in a later window it adds what was not reserved; with no hold on
  record it adds all actual tokens. A release refunds reserved tokens in the same way, but the
  request stays counted against requests-per-minute (it was made).
- Settle and release share one dedupe marker per request id (kept StoreOptions.dedupe_seconds):
  the first call applies, any later settle or release for that id is a no-op returning False.
  A reserve repeated with a request id the store holds or has ended is a no-op too (admitted,
  `replayed=True`), so retrying any call after a timeout never double-counts, and a reserve
  that reaches the store after its own release (a cancelled request) holds nothing.
- `now` is always passed by the caller (aware datetime) so period rollover, windows and leases
  are testable; the period id is computed by the caller too (see `tollgate.gateway.periods`).
- Backend failures (unreachable, timed out, read-only, locked) raise StoreUnavailable and
  change nothing the caller can observe twice: every call is safe to retry.

Circuit breakers (one record per "<provider>/<model>" key; the state machine is
`store/breaker.py`, shared by every implementation) cost no round trip on the request path
in the common case: the router reads them through a short in-process cache and reports
outcomes in the background (pipeline/resilience.py).

    breaker_state(keys)                      the states, read-only, for the cache
    breaker_report(key, outcomes, now, …)    outcomes (oldest first) applied atomically
    breaker_acquire(key, now, policy)        open → half-open, and one probe slot taken

A breaker record nobody has written for a day is forgotten (it reads as closed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import orjson

from tollgate.gateway.money import Micros
from tollgate.gateway.store.breaker import BreakerPolicy, BreakerState

__all__ = [
    "Admission",
    "BudgetCheck",
    "BudgetFigures",
    "FailedLimit",
    "LedgerRecord",
    "RateCheck",
    "RateFigures",
    "Reason",
    "Release",
    "ReserveRequest",
    "Scope",
    "Settlement",
    "Store",
    "StoreError",
    "StoreOptions",
    "StoreUnavailable",
    "customer_scope",
    "key_scope",
]

Scope = str
"""Whose counter: "key:<virtual key id>" or "customer:<customer id>"."""

Reason = Literal["budget_exceeded", "rate_limit_exceeded"]
FailedLimit = Literal["budget", "requests_per_minute", "tokens_per_minute", "max_concurrent"]

WINDOW_SECONDS = 60
BREAKER_TTL_SECONDS = 86_400
"""A breaker record untouched this long is dropped (it then reads as closed)."""


def key_scope(key_id: str) -> Scope:
    return f"key:{key_id}"


def customer_scope(customer_id: str) -> Scope:
    return f"customer:{customer_id}"


class StoreError(Exception):
    """Base of the store's own errors."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or cannot write right now. The caller applies the key's
    `onStoreUnavailable` policy; every store call is safe to retry once it is back."""


def _require_aware(now: datetime, what: str = "now") -> None:
    if now.tzinfo is None:
        raise ValueError(f"`{what}` must be timezone-aware, e.g. datetime.now(UTC)")


MAX_EXACT = 2**53 - 1
"""The largest count a store keeps exactly (Lua numbers are doubles): $9e9 in micro-dollars."""


def _require_count(value: int, what: str) -> None:
    # bool is an int; a float amount is the bug this guards against (no floats for money).
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_EXACT:
        raise ValueError(f"`{what}` must be an int from 0 to 2**53 - 1, got {value!r}")


# --- what the caller asks --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Tunables shared by both stores. Defaults suit production; tests shorten them."""

    lease_seconds: int = 15 * 60
    """How long an unsettled hold counts before it is presumed abandoned."""
    dedupe_seconds: int = 2 * 24 * 3600
    """How long a settled/released request id is remembered (covers replay after an outage)."""
    period_grace_seconds: int = 35 * 24 * 3600
    """How long a finished period's counters stay readable (last month's spend, all month)."""
    ledger_max_age_days: int | None = 400
    """Ledger records older than this are trimmed; None keeps them regardless of age."""
    ledger_max_records: int | None = 1_000_000
    """At most this many ledger records are kept (oldest trimmed first); None: no cap.
    In Redis a record costs ~0.5 KB of memory, so the default is ~0.5 GB: export regularly."""

    def __post_init__(self) -> None:
        for name in ("lease_seconds", "dedupe_seconds", "period_grace_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"StoreOptions.{name} must be >= 1")
        if self.ledger_max_age_days is not None and self.ledger_max_age_days < 1:
            raise ValueError("StoreOptions.ledger_max_age_days must be >= 1 or None")
        if self.ledger_max_records is not None and self.ledger_max_records < 1:
            raise ValueError("StoreOptions.ledger_max_records must be >= 1 or None")


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """One budget that applies to a request, in the period the caller computed."""

    scope: Scope
    period_id: str
    limit_micros: Micros
    period_end: datetime | None = None
    """End of the period (None for `total`): sets Retry-After and when old counters expire."""

    def __post_init__(self) -> None:
        _require_count(self.limit_micros, "limit_micros")
        if self.period_end is not None:
            _require_aware(self.period_end, "period_end")


@dataclass(frozen=True, slots=True)
class RateCheck:
    """The rate limits of one scope; None means that dimension is unlimited."""

    scope: Scope
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent: int | None = None

    def __post_init__(self) -> None:
        for name in ("requests_per_minute", "tokens_per_minute", "max_concurrent"):
            value = getattr(self, name)
            if value is not None:
                _require_count(value, name)


@dataclass(frozen=True, slots=True)
class ReserveRequest:
    request_id: str
    now: datetime
    budgets: tuple[BudgetCheck, ...] = ()
    rates: tuple[RateCheck, ...] = ()
    amount_micros: Micros = 0
    """The cost estimate to hold on every budget."""
    tokens: int = 0
    """The token estimate (input + output allowance) to count against tokens-per-minute."""

    def __post_init__(self) -> None:
        _require_aware(self.now)
        _require_count(self.amount_micros, "amount_micros")
        _require_count(self.tokens, "tokens")


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One line of the usage ledger: what a request was, who pays, and what it cost."""

    time: datetime
    request_id: str
    key_id: str
    customer_id: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    provider: str | None = None
    model: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_micros: Micros = 0
    latency_ms: int = 0
    outcome: str = "ok"
    attempts: int = 1

    def __post_init__(self) -> None:
        _require_aware(self.time, "time")
        _require_count(self.cost_micros, "cost_micros")

    @property
    def time_us(self) -> int:
        """The ledger's sort key."""
        return to_us(self.time)

    def to_json(self) -> bytes:
        return orjson.dumps({
            "time": self.time.astimezone(UTC).isoformat(),
            "request_id": self.request_id,
            "key_id": self.key_id,
            "customer_id": self.customer_id,
            "metadata": dict(self.metadata),
            "tags": dict(self.tags),
            "provider": self.provider,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "cost_micros": self.cost_micros,
            "latency_ms": self.latency_ms,
            "outcome": self.outcome,
            "attempts": self.attempts,
        })

    @classmethod
    def from_json(cls, data: bytes | str) -> LedgerRecord:
        raw: dict[str, Any] = orjson.loads(data)
        raw["time"] = datetime.fromisoformat(raw["time"])
        return cls(**raw)


@dataclass(frozen=True, slots=True)
class Settlement:
    """The end of a request: charge what it really cost and write its ledger record."""

    request_id: str
    now: datetime
    budgets: tuple[BudgetCheck, ...]
    rates: tuple[RateCheck, ...]
    actual_micros: Micros
    actual_tokens: int
    ledger: LedgerRecord | None = None

    def __post_init__(self) -> None:
        _require_aware(self.now)
        _require_count(self.actual_micros, "actual_micros")
        _require_count(self.actual_tokens, "actual_tokens")


@dataclass(frozen=True, slots=True)
class Release:
    """Give a hold back unused (nothing was spent: failure before any usage, disconnect).
    An optional ledger record still documents the request."""

    request_id: str
    now: datetime
    budgets: tuple[BudgetCheck, ...]
    rates: tuple[RateCheck, ...]
    ledger: LedgerRecord | None = None

    def __post_init__(self) -> None:
        _require_aware(self.now)


# --- what the store answers ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """A budget's state: for `/v1/key/info`, status publishing and response headers."""

    scope: Scope
    period_id: str
    limit_micros: Micros
    spent_micros: Micros
    reserved_micros: Micros

    @property
    def remaining_micros(self) -> Micros:
        return max(0, self.limit_micros - self.spent_micros - self.reserved_micros)


@dataclass(frozen=True, slots=True)
class RateFigures:
    """A scope's rate-limit state in the current window; the `x-ratelimit-*` header values.

    `*_remaining` is None when that dimension has no limit."""

    scope: Scope
    window_start: datetime
    reset_seconds: float
    requests_limit: int | None
    requests_used: int
    tokens_limit: int | None
    tokens_used: int
    concurrent_limit: int | None
    in_flight: int
    """Counted only for scopes with a concurrency limit (0 otherwise)."""

    @property
    def requests_remaining(self) -> int | None:
        if self.requests_limit is None:
            return None
        return max(0, self.requests_limit - self.requests_used)

    @property
    def tokens_remaining(self) -> int | None:
        if self.tokens_limit is None:
            return None
        return max(0, self.tokens_limit - self.tokens_used)


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to reserve(). Figures are after the hold when admitted, else as found."""

    admitted: bool
    reason: Reason | None = None
    failed_scope: Scope | None = None
    failed_limit: FailedLimit | None = None
    retry_after_seconds: int | None = None
    budgets: tuple[BudgetFigures, ...] = ()
    rates: tuple[RateFigures, ...] = ()
    replayed: bool = False
    """True when this request id was already held: nothing changed (a retried reserve)."""


# --- the protocol ----------------------------------------------------------------------------


@runtime_checkable
class Store(Protocol):
    """Shared governance state. Every method raises StoreUnavailable when the backend is out."""

    async def reserve(self, request: ReserveRequest) -> Admission:
        """Check every budget and rate limit; hold them all, or change nothing."""
        ...

    async def settle(self, settlement: Settlement) -> bool:
        """Release the hold, charge actual cost/tokens, append the ledger. False on a replay."""
        ...

    async def release(self, release: Release) -> bool:
        """Give the hold back unused. False when the request was already settled/released."""
        ...

    async def spend(
        self, budgets: tuple[BudgetCheck, ...], now: datetime | None = None
    ) -> tuple[BudgetFigures, ...]:
        """Current spend and live holds of each budget (read-only view for /v1/key/info)."""
        ...

    async def rate_status(
        self, rates: tuple[RateCheck, ...], now: datetime | None = None
    ) -> tuple[RateFigures, ...]:
        """Current window use of each rate scope, without counting a request."""
        ...

    def ledger(self, since: datetime, until: datetime) -> AsyncIterator[LedgerRecord]:
        """Ledger records with since <= time < until, in time order, streamed in batches."""
        ...

    async def breaker_state(self, keys: tuple[str, ...]) -> tuple[BreakerState, ...]:
        """The current state of each circuit breaker (closed when never written)."""
        ...

    async def breaker_report(
        self, key: str, outcomes: tuple[bool, ...], now: datetime, policy: BreakerPolicy,
        *, probe: bool = False,
    ) -> BreakerState:
        """Apply request outcomes (True = success, oldest first) to one breaker, atomically;
        `probe`: they are the outcomes of probes admitted by `breaker_acquire`."""
        ...

    async def breaker_acquire(
        self, key: str, now: datetime, policy: BreakerPolicy
    ) -> tuple[bool, BreakerState]:
        """May a request go to this target? An open breaker whose cool-down is over turns
        half-open, and a half-open one hands out at most `policy.half_open_probes` probe
        slots per round. Returns (admitted, state after the call)."""
        ...

    async def ping(self) -> None:
        """Return when the backend answers; raise StoreUnavailable otherwise (readiness)."""
        ...

    async def close(self) -> None:
        ...


# --- helpers both implementations use --------------------------------------------------------


def window_start(now_s: float) -> int:
    """Start (Unix seconds) of the fixed 60-second window containing `now_s`."""
    return int(now_s // WINDOW_SECONDS) * WINDOW_SECONDS


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    """Exact microseconds since the epoch (no float on the way; exact in a double < 2**53)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def budget_ttl_seconds(check: BudgetCheck, now: datetime, grace: int) -> int:
    """How long a period's counters must live, measured on the caller's clock; 0 = forever."""
    if check.period_end is None:
        return 0
    return max(1, int((check.period_end - now).total_seconds()) + grace)


def retry_after(
    failed_limit: FailedLimit | None, now: datetime, failed_budget: BudgetCheck | None
) -> int | None:
    """Seconds a rejected caller should wait before the failed limit can admit again."""
    if failed_limit in ("requests_per_minute", "tokens_per_minute"):
        now_s = now.timestamp()
        return max(1, int(window_start(now_s) + WINDOW_SECONDS - now_s + 0.999))
    if failed_limit == "max_concurrent":
        return 1
    if failed_budget is not None and failed_budget.period_end is not None:
        return max(1, int((failed_budget.period_end - now).total_seconds() + 0.999))
    return None


def rate_figures(
    check: RateCheck, now: datetime, requests: int, tokens: int, in_flight: int
) -> RateFigures:
    now_s = now.timestamp()
    start = window_start(now_s)
    return RateFigures(
        scope=check.scope,
        window_start=datetime.fromtimestamp(start, UTC),
        reset_seconds=max(0.0, start + WINDOW_SECONDS - now_s),
        requests_limit=check.requests_per_minute,
        requests_used=requests,
        tokens_limit=check.tokens_per_minute,
        tokens_used=tokens,
        concurrent_limit=check.max_concurrent,
        in_flight=in_flight,
    )
