"""Stage 5 — record: metrics and one structured decision-log line per request."""

from __future__ import annotations

import logging
import time

from tollgate.gateway import metrics
from tollgate.gateway.money import format_usd
from tollgate.gateway.pipeline.call import Call

__all__ = ["record"]

log = logging.getLogger("tollgate.access")


def record(call: Call) -> None:
    key_id = call.key.id if call.key else "-"
    provider = call.served_by.provider if call.served_by else "none"
    metrics.REQUESTS.labels(key_id, provider, call.outcome).inc()
    for attempt in call.attempts:
        metrics.UPSTREAM_ATTEMPTS.labels(attempt.provider, attempt.outcome).inc()
    metrics.OVERHEAD_SECONDS.labels(call.endpoint).observe(time.perf_counter() - call.started)
    if call.served_by is not None and call.usage is not None and not call.priced:
        metrics.UNPRICED_REQUESTS.labels(call.served_by.provider, call.served_by.model).inc()
        log.warning(
            "served a model with no known price; cost not computed",
            extra={"event": "unpriced_model", "request_id": call.request_id,
                   "provider": call.served_by.provider, "model": call.served_by.model},
        )
    if call.cost_micros:
        metrics.REQUEST_COST_MICROS.labels(key_id).inc(call.cost_micros)
    if not log.isEnabledFor(logging.INFO):
        return
    usage = call.usage
    log.info(
        "request",
        extra={
            "event": "request",
            "request_id": call.request_id,
            "endpoint": call.endpoint,
            "key": key_id,
            "customer": call.key.config.customer_id if call.key else None,
            "model": call.requested_model,
            "stream": call.stream,
            "outcome": call.outcome,
            "error_code": call.error_code,
            "attempts": [
                {"provider": a.provider, "model": a.model, "outcome": a.outcome,
                 "ms": round(a.seconds * 1000, 2)}
                for a in call.attempts
            ],
            "input_tokens": usage.input_tokens if usage else None,
            "output_tokens": usage.output_tokens if usage else None,
            "cost_usd": format_usd(call.cost_micros) if call.priced and call.cost_micros is not None
            else None,
            "ms": round((time.perf_counter() - call.started) * 1000, 2),
            "config_revision": call.snapshot.revision,
        },
    )
