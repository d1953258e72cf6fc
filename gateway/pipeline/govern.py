"""Stage — govern: hold budget and rate-limit room before the provider is called, and settle
the real cost (with the ledger record) once the call has ended.

Admission is one store round trip for every budget and rate limit that applies (the key's and
its customer's); the end of a call is one more (settle or release, with its ledger record).
A key with no limits skips admission but is still settled, so the ledger has every request.

When the store is unreachable the key's `onStoreUnavailable` decides: `deny` answers 503;
`allow` serves without a hold and queues the ending in the Outbox, which writes it back when
the store returns (settle is idempotent by hold id, so nothing is counted twice).

Budgets stay enforced through an outage from what this process last knew: every successful
reservation leaves its budget figures in the Outbox (per scope and period, bounded), and an
`allow` key is refused with `budget_exceeded` while, for any of its budgets with last-known
figures, last-known spent + reserved + the spend queued in the Outbox + this request's hold
would exceed the limit. Budgets this process has no figures for (or a new period) are not
checked; rate limits are not enforced while the store is away.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from tollgate.gateway.errors import BudgetExceeded, GovernanceUnavailable, RateLimited
from tollgate.gateway.estimate import estimate_input_tokens, output_allowance
from tollgate.gateway.money import format_usd
from tollgate.gateway.periods import period_end, period_id
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.runtime import KeyPolicy
from tollgate.gateway.store.base import (
    Admission,
    BudgetCheck,
    BudgetFigures,
    LedgerRecord,
    RateCheck,
    Release,
    ReserveRequest,
    Settlement,
    StoreUnavailable,
    customer_scope,
    key_scope,
)

__all__ = ["Hold", "admit", "checks_for", "finish", "rate_limit_headers"]

log = logging.getLogger("tollgate.govern")


@dataclass(slots=True)
class Hold:
    """What admission reserved for one call; `finish` settles or releases exactly this."""

    hold_id: str
    now: datetime
    budgets: tuple[BudgetCheck, ...]
    rates: tuple[RateCheck, ...]
    amount_micros: int
    tokens: int
    input_tokens: int
    admission: Admission | None
    local: bool = False  # admitted without the store (outage, `allow`)
    finished: bool = False

    def room_micros(self) -> int | None:
        """The most this call may cost before some budget is exhausted (None: no budget)."""
        if self.admission is None or not self.admission.budgets:
            return None
        return min(f.remaining_micros for f in self.admission.budgets) + self.amount_micros


def checks_for(key: KeyPolicy, now: datetime) -> tuple[tuple[BudgetCheck, ...],
                                                       tuple[RateCheck, ...]]:
    """Every budget and rate limit that applies to a key at `now`: its own and its customer's."""
    budgets: list[BudgetCheck] = []
    rates: list[RateCheck] = []
    config = key.config
    if config.budget is not None and key.budget_limit_micros is not None:
        b = config.budget
        budgets.append(BudgetCheck(key_scope(key.id), period_id(b.period, now, b.timezone),
                                   key.budget_limit_micros, period_end(b.period, now, b.timezone)))
    if config.rate_limit is not None:
        r = config.rate_limit
        rates.append(RateCheck(key_scope(key.id), r.requests_per_minute, r.tokens_per_minute,
                               r.max_concurrent))
    customer = key.customer
    if customer is not None:
        if customer.budget is not None and key.customer_budget_limit_micros is not None:
            b = customer.budget
            budgets.append(BudgetCheck(
                customer_scope(customer.id), period_id(b.period, now, b.timezone),
                key.customer_budget_limit_micros, period_end(b.period, now, b.timezone)))
        if customer.rate_limit is not None:
            r = customer.rate_limit
            rates.append(RateCheck(customer_scope(customer.id), r.requests_per_minute,
                                   r.tokens_per_minute, r.max_concurrent))
    return tuple(budgets), tuple(rates)


def _estimate(call: Call) -> tuple[int, int, int]:
    """(amount to hold in micro-dollars, tokens to hold, estimated input tokens).

    The amount is the dearest target on the route, so a failover cannot cost more than what
    was held; the output allowance is bounded by max_tokens and the model's limit."""
    input_tokens = estimate_input_tokens(call.body)
    amount = 0
    output = 0
    for target in call.route:
        price = call.snapshot.prices.price(target.provider, target.model)
        allowance = output_allowance(call.body, price.max_output_tokens if price else None)
        output = max(output, allowance if call.endpoint == "chat" else 0)
        if price is not None:
            picos = input_tokens * price.input + (
                allowance * price.output if call.endpoint == "chat" else 0)
            amount = max(amount, -(-picos // 1_000_000))  # round up: never hold too little
    return amount, input_tokens + output, input_tokens


def _rejection(call: Call, admission: Admission) -> RateLimited:
    scope = admission.failed_scope or ""
    whose = scope.replace("key:", "virtual key '", 1).replace("customer:", "customer '", 1)
    whose = f"{whose}'" if whose else "this key"
    headers = rate_limit_headers(admission)
    if admission.retry_after_seconds is not None:
        headers["retry-after"] = str(max(1, admission.retry_after_seconds))
    if admission.reason == "budget_exceeded":
        figures = next((f for f in admission.budgets if f.scope == scope), None)
        detail = ""
        if figures is not None:
            detail = (f": {format_usd(figures.spent_micros)} spent and "
                      f"{format_usd(figures.reserved_micros)} reserved of "
                      f"{format_usd(figures.limit_micros)} in period {figures.period_id}")
        return BudgetExceeded(f"budget exceeded for {whose}{detail}", headers=headers)
    limit = (admission.failed_limit or "rate limit").replace("_", " ")
    return RateLimited(f"rate limit exceeded for {whose} ({limit}); retry after "
                       f"{headers.get('retry-after', '1')} s", headers=headers)


def rate_limit_headers(admission: Admission | None) -> dict[str, str]:
    """OpenAI-style x-ratelimit-* headers from the tightest rate scope."""
    if admission is None or not admission.rates:
        return {}
    headers: dict[str, str] = {}
    with_requests = [f for f in admission.rates if f.requests_limit is not None]
    if with_requests:
        f = min(with_requests, key=lambda f: f.requests_remaining or 0)
        headers["x-ratelimit-limit-requests"] = str(f.requests_limit)
        headers["x-ratelimit-remaining-requests"] = str(f.requests_remaining)
        headers["x-ratelimit-reset-requests"] = f"{math.ceil(f.reset_seconds)}s"
    with_tokens = [f for f in admission.rates if f.tokens_limit is not None]
    if with_tokens:
        f = min(with_tokens, key=lambda f: f.tokens_remaining or 0)
        headers["x-ratelimit-limit-tokens"] = str(f.tokens_limit)
        headers["x-ratelimit-remaining-tokens"] = str(f.tokens_remaining)
        headers["x-ratelimit-reset-tokens"] = f"{math.ceil(f.reset_seconds)}s"
    return headers


async def admit(call: Call) -> None:
    """Reserve the call's estimated cost and tokens on every limit that applies, or refuse."""
    key = call.key
    assert key is not None
    now = datetime.now(UTC)
    budgets, rates = checks_for(key, now)
    if not budgets and not rates:
        # nothing to hold: no estimate (tokenizing a prompt is the dearest step here)
        call.hold = Hold(os.urandom(12).hex(), now, budgets, rates, 0, 0, 0, None)
        return
    amount, tokens, input_tokens = _estimate(call)
    hold = Hold(os.urandom(12).hex(), now, budgets, rates, amount, tokens, input_tokens, None)
    call.hold = hold
    started = time.perf_counter()
    try:
        admission = await call.snapshot.store.reserve(ReserveRequest(
            hold.hold_id, now, budgets, rates, amount, tokens))
    except StoreUnavailable as exc:
        call.store_calls.append(("reserve", started, time.perf_counter()))
        if key.config.on_store_unavailable == "deny":
            call.hold = None
            raise GovernanceUnavailable(
                "the gateway cannot check this key's budget and rate limits right now "
                "(state store unreachable) and the key's policy is to refuse; retry shortly",
                headers={"retry-after": "5"},
            ) from exc
        local = _local_rejection(call, budgets, amount)
        if local is not None:
            call.hold = None
            call.rejection = local
            raise _rejection(call, local) from exc
        hold.local = True
        log.warning("store unreachable; admitting on the key's `allow` policy",
                    extra={"event": "store_unavailable", "request_id": call.request_id,
                           "key": key.id})
        return
    call.store_calls.append(("reserve", started, time.perf_counter()))
    if not admission.admitted:
        call.hold = None
        call.rejection = admission
        raise _rejection(call, admission)
    hold.admission = admission
    for figures in admission.budgets:
        call.snapshot.outbox.remember(figures)


def _local_rejection(call: Call, budgets: tuple[BudgetCheck, ...],
                     amount: int) -> Admission | None:
    """With the store away: the refusal the last-known figures plus the queued spend call for,
    or None when every budget (with figures) still has room for `amount`."""
    outbox = call.snapshot.outbox
    for check in budgets:
        known = outbox.last_known(check.scope, check.period_id)
        if known is None:
            continue
        spent = known.spent_micros + outbox.pending_micros(check.scope, check.period_id)
        if spent + known.reserved_micros + amount > check.limit_micros:
            figures = BudgetFigures(check.scope, check.period_id, check.limit_micros, spent,
                                    known.reserved_micros)
            return Admission(False, reason="budget_exceeded", failed_scope=check.scope,
                             budgets=(figures,))
    return None


def _ledger(call: Call) -> LedgerRecord:
    key = call.key
    assert key is not None
    usage = call.usage
    served = call.served_by
    return LedgerRecord(
        time=datetime.now(UTC),
        request_id=call.request_id,
        key_id=key.id,
        customer_id=key.config.customer_id,
        metadata=dict(key.config.metadata),
        tags=call.tags,
        provider=served.provider if served else None,
        model=served.model if served else call.requested_model or None,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        cached_tokens=usage.cached_input_tokens if usage else 0,
        reasoning_tokens=usage.reasoning_tokens if usage else 0,
        cost_micros=call.cost_micros or 0,
        latency_ms=int((time.perf_counter() - call.started) * 1000),
        outcome=call.outcome,
        attempts=len(call.attempts),
    )


async def finish(call: Call) -> None:
    """Settle what the call really cost (or release the hold if nothing was served), with its
    ledger record. Runs once per call, whatever happened, cancellation included."""
    hold = call.hold
    if hold is None or hold.finished:
        return
    hold.finished = True
    now = datetime.now(UTC)
    ending: Settlement | Release
    if call.usage is not None or call.cost_micros:
        tokens = call.usage.total_tokens if call.usage else 0
        ending = Settlement(hold.hold_id, now, hold.budgets, hold.rates,
                            call.cost_micros or 0, tokens, _ledger(call))
    else:
        ending = Release(hold.hold_id, now, hold.budgets, hold.rates, _ledger(call))
    outbox = call.snapshot.outbox
    if hold.local:
        outbox.add(ending)
        return
    started = time.perf_counter()
    try:
        # Shielded: a client that hangs up mid-stream cancels the task that relays the stream,
        # and this write runs in that task's clean-up; unshielded, the cancellation would cut
        # it off and the hold would linger (budget reserved, concurrency slot taken) until its
        # lease ran out.
        with anyio.CancelScope(shield=True):
            if isinstance(ending, Settlement):
                await call.snapshot.store.settle(ending)
            else:
                await call.snapshot.store.release(ending)
        call.store_calls.append((
            "settle" if isinstance(ending, Settlement) else "release", started,
            time.perf_counter()))
    except StoreUnavailable:
        outbox.add(ending)  # written back when the store returns; idempotent by hold id
        log.warning("store unreachable; spend queued for write-back",
                    extra={"event": "settle_queued", "request_id": call.request_id})
