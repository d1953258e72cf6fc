"""Every Prometheus metric, declared once. Label values come only from configuration."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CONFIG_RELOADS",
    "CONFIG_REVISION_LOADED",
    "REQUESTS",
    "REQUEST_COST_MICROS",
    "UNPRICED_REQUESTS",
    "UPSTREAM_ATTEMPTS",
    "OVERHEAD_SECONDS",
]

REQUESTS = Counter(
    "tollgate_requests_total",
    "Requests by virtual key, serving provider and outcome.",
    ["key", "provider", "outcome"],
)
UPSTREAM_ATTEMPTS = Counter(
    "tollgate_upstream_attempts_total",
    "Attempts at each provider by result (ok or error code); >1 per request means failover.",
    ["provider", "result"],
)
UNPRICED_REQUESTS = Counter(
    "tollgate_unpriced_requests_total",
    "Served requests whose model has no price in the catalog or overrides.",
    ["provider", "model"],
)
REQUEST_COST_MICROS = Counter(
    "tollgate_spend_micro_usd_total",
    "Settled spend in micro-dollars, by virtual key.",
    ["key"],
)
CONFIG_RELOADS = Counter(
    "tollgate_config_reloads_total",
    "Config load attempts by result (loaded or rejected).",
    ["result"],
)
CONFIG_REVISION_LOADED = Gauge(
    "tollgate_config_last_loaded_timestamp_seconds",
    "When the currently served config was loaded.",
)
OVERHEAD_SECONDS = Histogram(
    "tollgate_request_duration_seconds",
    "Total request duration as seen by the gateway, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
