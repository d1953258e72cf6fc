"""Redis store: every governance decision is one Lua script, so it is atomic across replicas.

One EVALSHA per call: `reserve` checks and holds all budgets and rate limits of a request,
`settle`/`release` end it and append its ledger record. The scripts live in `lua/*.lua`
(package data), share `lua/prelude.lua`, and are registered once per client; redis-py reloads
them by itself after a server restart (NOSCRIPT).

Keys (prefix "tollgate:" by default; use a hash-tagged prefix such as "{tollgate}:" to run
the scripts on Redis Cluster, which puts all of Tollgate's keys in one slot):

    <p>b:<scope>:<period>    hash   spent, reserved, r:<request id> = amount held
    <p>bl:<scope>:<period>   zset   request id -> lease end (ms); lapsed holds are purged
    <p>w:<scope>:<window>    hash   n = requests, t = tokens in the 60 s window; expires 120 s
    <p>c:<scope>             zset   in-flight request ids -> lease end (ms)
    <p>r:<request id>        hash   while held: w = window start, t = tokens held (lease + 60 s);
                                    once ended: s = settled|released, the dedupe marker (2 days)
    <p>ledger                zset   ledger records (JSON) scored by time in microseconds
    <p>cb:<provider>/<model> hash   circuit breaker record (lua/breaker.lua); expires a day
                                    after its last write

Period counters carry the period id, so a new period starts at zero; they expire a grace
period (35 days by default) after the period ends. The ledger is a sorted set rather than a
stream so that records written back late (after an outage) still sort and export by their
own time, and retention trims exactly by age and count.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions as redis_errors
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

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
from tollgate.gateway.store.breaker import BreakerPolicy, BreakerState

__all__ = ["RedisStore"]

_PURGE_LIMIT = 1000
_WINDOW_TTL = 2 * WINDOW_SECONDS
_FAILURES: dict[int, tuple[Reason, FailedLimit]] = {
    1: ("budget_exceeded", "budget"),
    2: ("rate_limit_exceeded", "requests_per_minute"),
    3: ("rate_limit_exceeded", "tokens_per_minute"),
    4: ("rate_limit_exceeded", "max_concurrent"),
}
_UNAVAILABLE = (
    redis_errors.ConnectionError,  # includes refused, auth, loading, max connections
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,  # a replica promoted/demoted under us
    redis_errors.OutOfMemoryError,
    redis_errors.ClusterDownError,
    redis_errors.TryAgainError,
    OSError,
    asyncio.TimeoutError,
)


def _script(name: str) -> str:
    """A script's source: the shared prelude, then the script (package data, no network)."""
    lua = resources.files("tollgate.gateway.store").joinpath("lua")
    parts = (lua.joinpath(f"{part}.lua").read_text("utf-8") for part in ("prelude", name))
    return "\n".join(parts)


@contextmanager
def _translate_errors() -> Iterator[None]:
    """Redis trouble becomes StoreUnavailable here, once; callers never see redis-py types."""
    try:
        yield
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"redis store unavailable: {type(exc).__name__}: {exc}") from exc


def _limit(value: int | None) -> int:
    return -1 if value is None else value


def _join(fields: list[int] | list[int | str]) -> str:
    """The scripts' calling convention (lua/prelude.lua): numbers travel comma-joined in one
    argument, which costs the client far less than one argument each."""
    return ",".join(map(str, fields))


def _split(reply: bytes | str) -> list[int]:
    return [int(field) for field in (reply.split(b",") if isinstance(reply, bytes)
                                     else reply.split(","))]


class RedisStore:
    """The shared store for many gateway replicas. See the module docstring for the keys."""

    def __init__(
        self,
        url: str,
        *,
        options: StoreOptions | None = None,
        prefix: str = "tollgate:",
        connect_timeout: float = 0.5,
        timeout: float = 1.0,
        max_connections: int = 128,
        password: str | None = None,
    ) -> None:
        self.options = options or StoreOptions()
        self.prefix = prefix
        # One immediate retry rides over a pooled connection the server closed (restart); every
        # script is idempotent (reserve by request record, settle/release by marker), so a
        # retried call whose first reply was lost never counts twice.
        # A blocking pool: a burst beyond `max_connections` waits (up to `timeout`) for a free
        # connection instead of failing as if Redis were down.
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=timeout,
            socket_connect_timeout=connect_timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 1),
            decode_responses=False,
            **({"password": password} if password else {}),
        )
        self._client: aioredis.Redis = aioredis.Redis.from_pool(pool)
        self._reserve = self._client.register_script(_script("reserve"))
        self._settle = self._client.register_script(_script("settle"))
        self._status = self._client.register_script(_script("status"))
        self._breaker = self._client.register_script(_script("breaker"))
        self._ledger_key = f"{prefix}ledger"

    # --- keys ---------------------------------------------------------------------------------

    def _budget_keys(self, check: BudgetCheck) -> tuple[str, str]:
        tail = f"{check.scope}:{check.period_id}"
        return f"{self.prefix}b:{tail}", f"{self.prefix}bl:{tail}"

    def _rate_keys(self, check: RateCheck, window: int) -> tuple[str, str]:
        return f"{self.prefix}w:{check.scope}:{window}", f"{self.prefix}c:{check.scope}"

    # --- the two hot calls --------------------------------------------------------------------

    async def reserve(self, request: ReserveRequest) -> Admission:
        now = request.now
        now_ms = to_ms(now)
        window = window_start(now.timestamp())
        lease = self.options.lease_seconds
        keys: list[str] = [f"{self.prefix}r:{request.request_id}"]
        fields: list[int] = [
            now_ms, now_ms + lease * 1000, request.amount_micros, request.tokens, window,
            _WINDOW_TTL, lease + WINDOW_SECONDS, lease + WINDOW_SECONDS, _PURGE_LIMIT,
            len(request.budgets), len(request.rates),
        ]
        grace = self.options.period_grace_seconds
        for budget in request.budgets:
            keys.extend(self._budget_keys(budget))
            fields += (budget.limit_micros, budget_ttl_seconds(budget, now, grace))
        for rate in request.rates:
            keys.extend(self._rate_keys(rate, window))
            fields += (_limit(rate.requests_per_minute), _limit(rate.tokens_per_minute),
                       _limit(rate.max_concurrent))
        with _translate_errors():
            reply = await self._reserve(keys=keys, args=(request.request_id, _join(fields)))
        return self._admission(request, _split(reply))

    def _admission(self, request: ReserveRequest, reply: list[int]) -> Admission:
        admitted, code, index, replayed = reply[0], reply[1], reply[2], reply[3]
        budgets = tuple(
            BudgetFigures(b.scope, b.period_id, b.limit_micros, reply[4 + 2 * i],
                          reply[5 + 2 * i])
            for i, b in enumerate(request.budgets)
        )
        base = 4 + 2 * len(request.budgets)
        rates = tuple(
            rate_figures(r, request.now, reply[base + 3 * j], reply[base + 3 * j + 1],
                         reply[base + 3 * j + 2])
            for j, r in enumerate(request.rates)
        )
        if admitted:
            return Admission(True, budgets=budgets, rates=rates, replayed=bool(replayed))
        reason, failed_limit = _FAILURES[code]
        checks: Sequence[BudgetCheck | RateCheck] = (
            request.budgets if failed_limit == "budget" else request.rates
        )
        failed = checks[index - 1]
        return Admission(
            False,
            reason=reason,
            failed_scope=failed.scope,
            failed_limit=failed_limit,
            retry_after_seconds=retry_after(
                failed_limit, request.now, failed if isinstance(failed, BudgetCheck) else None
            ),
            budgets=budgets,
            rates=rates,
        )

    async def settle(self, settlement: Settlement) -> bool:
        return await self._end(
            settlement.request_id, settlement.now, settlement.budgets, settlement.rates,
            settlement.actual_micros, settlement.actual_tokens, settlement.ledger, "settled",
        )

    async def release(self, release: Release) -> bool:
        return await self._end(
            release.request_id, release.now, release.budgets, release.rates, 0, 0,
            release.ledger, "released",
        )

    async def _end(
        self,
        request_id: str,
        now: datetime,
        budgets: tuple[BudgetCheck, ...],
        rates: tuple[RateCheck, ...],
        actual_micros: int,
        actual_tokens: int,
        ledger: LedgerRecord | None,
        marker: str,
    ) -> bool:
        window = window_start(now.timestamp())
        options = self.options
        now_us = to_us(now)
        oldest = (
            -1 if options.ledger_max_age_days is None
            else now_us - options.ledger_max_age_days * 86_400_000_000
        )
        keys = [f"{self.prefix}r:{request_id}", self._ledger_key]
        fields: list[int | str] = [
            actual_micros, actual_tokens, window, _WINDOW_TTL, options.dedupe_seconds, marker,
            "-", ledger.time_us if ledger is not None else 0, oldest,
            _limit(options.ledger_max_records), len(budgets), len(rates),
        ]
        for budget in budgets:
            keys.extend(self._budget_keys(budget))
        for rate in rates:
            keys.extend(self._rate_keys(rate, window))
        grace = options.period_grace_seconds
        fields += [budget_ttl_seconds(budget, now, grace) for budget in budgets]
        payload = ledger.to_json() if ledger is not None else b""
        with _translate_errors():
            applied = await self._settle(keys=keys, args=(request_id, _join(fields), payload))
        return int(applied) == 1

    # --- read-only views ----------------------------------------------------------------------

    async def _figures(
        self, budgets: tuple[BudgetCheck, ...], rates: tuple[RateCheck, ...], now: datetime
    ) -> list[int]:
        window = window_start(now.timestamp())
        keys: list[str] = []
        for budget in budgets:
            keys.extend(self._budget_keys(budget))
        for rate in rates:
            keys.extend(self._rate_keys(rate, window))
        fields: list[int] = [to_ms(now), _PURGE_LIMIT, len(budgets), len(rates)]
        fields += [0 if rate.max_concurrent is None else 1 for rate in rates]
        with _translate_errors():
            reply = await self._status(keys=keys, args=("-", _join(fields)))
        return _split(reply)

    async def spend(
        self, budgets: tuple[BudgetCheck, ...], now: datetime | None = None
    ) -> tuple[BudgetFigures, ...]:
        reply = await self._figures(budgets, (), now or datetime.now(UTC))
        return tuple(
            BudgetFigures(b.scope, b.period_id, b.limit_micros, reply[2 * i], reply[2 * i + 1])
            for i, b in enumerate(budgets)
        )

    async def rate_status(
        self, rates: tuple[RateCheck, ...], now: datetime | None = None
    ) -> tuple[RateFigures, ...]:
        moment = now or datetime.now(UTC)
        reply = await self._figures((), rates, moment)
        return tuple(
            rate_figures(r, moment, reply[3 * j], reply[3 * j + 1], reply[3 * j + 2])
            for j, r in enumerate(rates)
        )

    async def ledger(
        self, since: datetime, until: datetime, *, batch: int = 1000
    ) -> AsyncIterator[LedgerRecord]:
        """Pages by score; records sharing a microsecond are skipped by offset, not lost."""
        low, high = to_us(since), to_us(until)
        offset = 0
        while low < high:
            with _translate_errors():
                reply: Any = await self._client.zrangebyscore(
                    self._ledger_key, low, f"({high}", start=offset, num=batch,
                    withscores=True,
                )
            page: list[tuple[bytes, float]] = reply
            for member, _score in page:
                yield LedgerRecord.from_json(member)
            if len(page) < batch:
                return
            last = int(page[-1][1])
            same = sum(1 for _member, score in page if int(score) == last)
            offset = offset + same if last == low else same
            low = last

    # --- circuit breakers (lua/breaker.lua) ----------------------------------------------------

    def _breaker_key(self, key: str) -> str:
        return f"{self.prefix}cb:{key}"

    async def breaker_state(self, keys: tuple[str, ...]) -> tuple[BreakerState, ...]:
        if not keys:
            return ()
        with _translate_errors():
            reply = await self._breaker(keys=[self._breaker_key(k) for k in keys],
                                        args=("state", ""))
        fields = _split(reply)
        return tuple(BreakerState(*fields[4 * i:4 * i + 4]) for i in range(len(keys)))

    async def breaker_report(
        self, key: str, outcomes: tuple[bool, ...], now: datetime, policy: BreakerPolicy,
        *, probe: bool = False,
    ) -> BreakerState:
        fields: list[int | str] = [
            to_ms(now), policy.consecutive_failures, repr(float(policy.failure_ratio)),
            policy.minimum_requests, policy.window_ms, policy.open_ms, int(probe),
            BREAKER_TTL_SECONDS,
        ]
        encoded = "".join("1" if ok else "0" for ok in outcomes)
        with _translate_errors():
            reply = await self._breaker(keys=[self._breaker_key(key)],
                                        args=("report", _join(fields), encoded))
        return BreakerState(*_split(reply))

    async def breaker_acquire(
        self, key: str, now: datetime, policy: BreakerPolicy
    ) -> tuple[bool, BreakerState]:
        fields = [to_ms(now), policy.open_ms, policy.half_open_probes, BREAKER_TTL_SECONDS]
        with _translate_errors():
            reply = await self._breaker(keys=[self._breaker_key(key)],
                                        args=("acquire", _join(fields)))
        admitted, *state = _split(reply)
        return admitted == 1, BreakerState(*state)

    async def claim_marker(self, name: str, now: datetime, ttl_seconds: int) -> bool:
        """Set-if-absent (`<p>m:<name>`, lapsing after `ttl_seconds`): True for the one caller,
        across every replica, that sets it first. Alert dedupe ("once per period") uses it;
        `now` is unused here (the TTL runs on the Redis server's clock)."""
        with _translate_errors():
            claimed = await self._client.set(f"{self.prefix}m:{name}", b"1", nx=True,
                                             ex=max(1, int(ttl_seconds)))
        return bool(claimed)

    async def ping(self) -> None:
        with _translate_errors():
            await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> RedisStore:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
