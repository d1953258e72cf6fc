"""Stage 5 — record: metrics, one structured decision-log line per request, and trace spans.

Everything here reads the finished Call; nothing changes what was served. The decision log line
(logger `tollgate.access`, `event: "request"`, INFO) answers "why was this request rejected /
why did it go to Bedrock" on its own. Its schema is docs/decision-log.schema.json:

    request_id, endpoint, inbound, key, customer, tags, model (as requested), stream
    outcome, error_code                    how it ended
    served_by {provider, model}            the route target that answered (null if none)
    attempts [{provider, model, outcome, ms}]   every try, in order (failover is visible here)
    governance                             the budget/rate-limit decision and its figures:
      decision   admitted | rejected | not_governed | store_unavailable_allowed |
                 store_unavailable_denied | not_reached
      held_usd, held_tokens                what admission reserved
      budgets [{scope, period, limit_usd, spent_usd, held_usd, remaining_usd}]   as the store
                                           answered (after this call's hold, when admitted)
      rate_limits [{scope, requests_limit, requests_remaining, tokens_limit, tokens_remaining,
                    concurrent_limit, in_flight, reset_s}]
      rejection {reason, scope, limit, retry_after_s}   when refused
    input_tokens … cache_write_tokens, cost_usd (exact decimal string), priced
    ms, upstream_ms, overhead_ms, ttft_ms (streams), config_revision
    request_body, response_body, bodies_truncated   only for keys with `logBodies: true`

Prompts and completions are never logged otherwise; the key's token never is (only its id).

Metrics (gateway/metrics.py) take their label values from configuration only: the key id, its
customer id, the route target (provider, model) that served the call, and fixed vocabularies
(outcome, endpoint, token kind, limit). The budget gauges are set from the figures the store
returned at admission, adjusted by this call's own settlement (no extra store round trip).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from tollgate.gateway import metrics
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.store.base import Admission, BudgetFigures

__all__ = ["BODY_LOG_BYTES", "record"]

log = logging.getLogger("tollgate.access")

BODY_LOG_BYTES = 4096
"""At most this many bytes of a request and of a response body go into a decision-log line."""

_TOKEN_KINDS = (
    ("input", "input_tokens"),
    ("output", "output_tokens"),
    ("cached", "cached_input_tokens"),
    ("cache_write", "cache_write_tokens"),
    ("reasoning", "reasoning_tokens"),
)


def record(call: Call) -> None:
    now = time.perf_counter()
    key = call.key
    key_id = key.id if key else "-"
    customer = (key.config.customer_id or "") if key else ""
    served = call.served_by
    provider, model = (served.provider, served.model) if served else ("none", "none")
    total = now - call.started
    waited = call.upstream_seconds
    for attempt in call.attempts:
        waited += attempt.seconds
        metrics.UPSTREAM_ATTEMPTS.labels(attempt.provider, attempt.outcome).inc()

    metrics.REQUESTS.labels(key_id, customer, provider, model, call.outcome).inc()
    metrics.OVERHEAD_SECONDS.labels(call.endpoint).observe(total)
    metrics.GATEWAY_OVERHEAD_SECONDS.labels(call.endpoint).observe(max(0.0, total - waited))
    if served is not None and call.attempts:
        metrics.UPSTREAM_SECONDS.labels(provider, model).observe(
            call.attempts[-1].seconds + call.upstream_seconds)
    if call.first_token_seconds is not None and served is not None:
        metrics.TIME_TO_FIRST_TOKEN_SECONDS.labels(provider, model).observe(
            call.first_token_seconds)
    usage = call.usage
    if usage is not None and key is not None:
        for kind, attribute in _TOKEN_KINDS:
            count = getattr(usage, attribute)
            if count:
                metrics.TOKENS.labels(key_id, customer, kind).inc(count)
    if call.cost_micros:
        metrics.REQUEST_COST_MICROS.labels(key_id, customer, provider, model).inc(
            call.cost_micros)
    if served is not None and usage is not None and not call.priced:
        metrics.UNPRICED_REQUESTS.labels(provider, model).inc()
        log.warning(
            "served a model with no known price; cost not computed",
            extra={"event": "unpriced_model", "request_id": call.request_id,
                   "provider": provider, "model": model},
        )
    _governance_metrics(call, key_id, customer)

    if log.isEnabledFor(logging.INFO):
        log.info("request", extra=_decision(call, key_id, total, waited))
    if call.tracer is not None:
        call.tracer.export(call, now)


# --- metrics ---------------------------------------------------------------------------------


def _set_budget_gauges(figures: BudgetFigures, remaining: int) -> None:
    kind, _, name = figures.scope.partition(":")
    if kind == "key":
        metrics.BUDGET_LIMIT_MICROS.labels(name).set(figures.limit_micros)
        metrics.BUDGET_REMAINING_MICROS.labels(name).set(remaining)
    elif kind == "customer":
        metrics.CUSTOMER_BUDGET_LIMIT_MICROS.labels(name).set(figures.limit_micros)
        metrics.CUSTOMER_BUDGET_REMAINING_MICROS.labels(name).set(remaining)


def _governance_metrics(call: Call, key_id: str, customer: str) -> None:
    rejection = call.rejection
    if rejection is not None:
        scope = (rejection.failed_scope or "key:").partition(":")[0]
        metrics.REJECTIONS.labels(key_id, customer, rejection.failed_limit or "budget",
                                  scope).inc()
        for figures in rejection.budgets:
            _set_budget_gauges(figures, figures.remaining_micros)
        return
    if call.error_code == "store_unavailable":
        metrics.REJECTIONS.labels(key_id, customer, "store_unavailable", "key").inc()
        return
    hold = call.hold
    if hold is None or hold.admission is None:
        return
    # The figures include this call's hold; once it has ended, the hold is gone and the real
    # cost counts instead (other requests in between are not known without asking the store).
    ended = hold.finished
    correction = hold.amount_micros - (call.cost_micros or 0) if ended else 0
    for figures in hold.admission.budgets:
        remaining = figures.remaining_micros + correction
        _set_budget_gauges(figures, max(0, min(figures.limit_micros, remaining)))


# --- the decision log ------------------------------------------------------------------------


def _budget(figures: BudgetFigures) -> dict[str, Any]:
    return {
        "scope": figures.scope,
        "period": figures.period_id,
        "limit_usd": format_usd(figures.limit_micros),
        "spent_usd": format_usd(figures.spent_micros),
        "held_usd": format_usd(figures.reserved_micros),
        "remaining_usd": format_usd(figures.remaining_micros),
    }


def _figures(admission: Admission) -> dict[str, Any]:
    return {
        "budgets": [_budget(f) for f in admission.budgets],
        "rate_limits": [
            {"scope": f.scope, "requests_limit": f.requests_limit,
             "requests_remaining": f.requests_remaining, "tokens_limit": f.tokens_limit,
             "tokens_remaining": f.tokens_remaining, "concurrent_limit": f.concurrent_limit,
             "in_flight": f.in_flight, "reset_s": round(f.reset_seconds, 3)}
            for f in admission.rates
        ],
    }


def _governance(call: Call) -> dict[str, Any]:
    rejection = call.rejection
    if rejection is not None:
        return {
            "decision": "rejected", "held_usd": None, "held_tokens": None,
            **_figures(rejection),
            "rejection": {"reason": rejection.reason, "scope": rejection.failed_scope,
                          "limit": rejection.failed_limit,
                          "retry_after_s": rejection.retry_after_seconds},
        }
    hold = call.hold
    if hold is None:
        decision = ("store_unavailable_denied" if call.error_code == "store_unavailable"
                    else "not_governed" if call.endpoint == "count_tokens" else "not_reached")
        return {"decision": decision, "held_usd": None, "held_tokens": None,
                "budgets": [], "rate_limits": [], "rejection": None}
    if hold.local:
        decision = "store_unavailable_allowed"
    elif hold.admission is None:
        decision = "not_governed"
    else:
        decision = "admitted"
    out: dict[str, Any] = {
        "decision": decision,
        "held_usd": format_usd(hold.amount_micros) if decision == "admitted" else None,
        "held_tokens": hold.tokens if decision == "admitted" else None,
        "budgets": [], "rate_limits": [], "rejection": None,
    }
    if hold.admission is not None:
        out.update(_figures(hold.admission))
    return out


def _clip(data: bytes) -> tuple[str, bool]:
    text = data[:BODY_LOG_BYTES].decode("utf-8", "replace")
    return text, len(data) > BODY_LOG_BYTES


def _decision(call: Call, key_id: str, total: float, waited: float) -> dict[str, Any]:
    usage = call.usage
    served = call.served_by
    line: dict[str, Any] = {
        "event": "request",
        "request_id": call.request_id,
        "endpoint": call.endpoint,
        "inbound": call.inbound,
        "key": key_id,
        "customer": call.key.config.customer_id if call.key else None,
        "tags": call.tags,
        "model": call.requested_model,
        "stream": call.stream,
        "outcome": call.outcome,
        "error_code": call.error_code,
        "served_by": {"provider": served.provider, "model": served.model} if served else None,
        "attempts": [
            {"provider": a.provider, "model": a.model, "outcome": a.outcome,
             "ms": round(a.seconds * 1000, 2)}
            for a in call.attempts
        ],
        "governance": _governance(call),
        "input_tokens": usage.input_tokens if usage else None,
        "output_tokens": usage.output_tokens if usage else None,
        "cached_tokens": usage.cached_input_tokens if usage else None,
        "reasoning_tokens": usage.reasoning_tokens if usage else None,
        "cache_write_tokens": usage.cache_write_tokens if usage else None,
        "cost_usd": format_usd(call.cost_micros) if call.priced and call.cost_micros is not None
        else None,
        "priced": call.priced,
        "ms": round(total * 1000, 2),
        "upstream_ms": round(waited * 1000, 2),
        "overhead_ms": round(max(0.0, total - waited) * 1000, 3),
        "ttft_ms": round(call.first_token_seconds * 1000, 2)
        if call.first_token_seconds is not None else None,
        "config_revision": call.snapshot.revision,
    }
    if call.key is not None and call.key.config.log_bodies:
        request_text, request_cut = _clip(orjson.dumps(call.body))
        response_text, response_cut = _clip(bytes(call.response_body or b""))
        line["request_body"] = request_text
        line["response_body"] = response_text
        line["bodies_truncated"] = request_cut or response_cut
    return line
