"""Every Prometheus metric, declared once. Label values come only from configuration."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "CIRCUIT_STATE",
    "CONFIG_RELOADS",
    "CONFIG_REVISION_LOADED",
    "FAILOVERS",
    "ALERTS",
    "ALERT_DELIVERIES",
    "ALERTS_DROPPED",
    "BUDGET_LIMIT_MICROS",
    "BUDGET_REMAINING_MICROS",
    "CONFIG_INFO",
    "CUSTOMER_BUDGET_LIMIT_MICROS",
    "CUSTOMER_BUDGET_REMAINING_MICROS",
    "GATEWAY_OVERHEAD_SECONDS",
    "REJECTIONS",
    "SPEND_ANOMALY",
    "TIME_TO_FIRST_TOKEN_SECONDS",
    "TOKENS",
    "UPSTREAM_SECONDS",
    "REQUESTS",
    "REQUEST_COST_MICROS",
    "RETRIES",
    "UNPRICED_REQUESTS",
    "UPSTREAM_ATTEMPTS",
    "OVERHEAD_SECONDS",
]

REQUESTS = Counter(
    "tollgate_requests_total",
    "Requests by virtual key, its customer, the serving provider and model (route targets from "
    "config; 'none' when nothing served) and outcome.",
    ["key", "customer", "provider", "model", "outcome"],
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
    "Settled spend in micro-dollars (1e-6 USD; exact integers), by virtual key, customer and "
    "serving provider and model.",
    ["key", "customer", "provider", "model"],
)
CONFIG_RELOADS = Counter(
    "tollgate_config_reloads_total",
    "Config load attempts by result (loaded or rejected).",
    ["result"],
)
CONFIG_REVISION_LOADED = Gauge(
    "tollgate_config_last_loaded_timestamp_seconds",
    "When the currently served config was loaded.",
    multiprocess_mode="livemax",
)

# --- observability (issue 7): label values come from configuration only ---------------------
_FAST = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
_SLOW = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)
CONFIG_INFO = Gauge(
    "tollgate_config_info",
    "1 for the config revision each live worker serves (only current revisions are exported).",
    ["revision"],
    multiprocess_mode="livemax",
)
GATEWAY_OVERHEAD_SECONDS = Histogram(
    "tollgate_gateway_overhead_seconds",
    "Time the gateway itself spent on a request: total minus time waiting on upstreams.",
    ["endpoint"],
    buckets=_FAST,
)
UPSTREAM_SECONDS = Histogram(
    "tollgate_upstream_duration_seconds",
    "Time spent waiting on the provider that served a request (whole reply or whole stream).",
    ["provider", "model"],
    buckets=_SLOW,
)
TIME_TO_FIRST_TOKEN_SECONDS = Histogram(
    "tollgate_time_to_first_token_seconds",
    "Streams: from the request's arrival to its first content event being written.",
    ["provider", "model"],
    buckets=_SLOW,
)
TOKENS = Counter(
    "tollgate_tokens_total",
    "Tokens by virtual key and kind: input (all prompt tokens), output (all completion "
    "tokens), and the subsets cached (cache reads), cache_write and reasoning.",
    ["key", "customer", "kind"],
)
REJECTIONS = Counter(
    "tollgate_rejections_total",
    "Requests refused by governance, by the limit that failed (budget, requests_per_minute, "
    "tokens_per_minute, max_concurrent, store_unavailable) and whose it was (key, customer).",
    ["key", "customer", "limit", "scope"],
)
BUDGET_LIMIT_MICROS = Gauge(
    "tollgate_budget_limit_micro_usd",
    "A virtual key's budget for its current period, in micro-dollars.",
    ["key"],
    multiprocess_mode="livemostrecent",
)
BUDGET_REMAINING_MICROS = Gauge(
    "tollgate_budget_remaining_micro_usd",
    "What is left of a virtual key's budget (limit - spent - held), as the store last said.",
    ["key"],
    multiprocess_mode="livemostrecent",
)
CUSTOMER_BUDGET_LIMIT_MICROS = Gauge(
    "tollgate_customer_budget_limit_micro_usd",
    "A customer's budget (shared by its keys) for the current period, in micro-dollars.",
    ["customer"],
    multiprocess_mode="livemostrecent",
)
CUSTOMER_BUDGET_REMAINING_MICROS = Gauge(
    "tollgate_customer_budget_remaining_micro_usd",
    "What is left of a customer's budget (limit - spent - held), as the store last said.",
    ["customer"],
    multiprocess_mode="livemostrecent",
)
SPEND_ANOMALY = Gauge(
    "tollgate_spend_anomaly",
    "1 while the built-in detector sees a spend spike for a key or customer (scope).",
    ["scope", "name"],
    multiprocess_mode="livemax",
)
ALERTS = Counter(
    "tollgate_alerts_total",
    "Alerts raised by this process (after cross-replica dedupe), by kind and status.",
    ["kind", "status"],
)
ALERT_DELIVERIES = Counter(
    "tollgate_alert_deliveries_total",
    "Alert deliveries by webhook (config name) and result: ok, retry, failed or suppressed.",
    ["webhook", "result"],
)
ALERTS_DROPPED = Counter(
    "tollgate_alerts_dropped_total",
    "Alerts dropped because the delivery queue was full.",
)
OVERHEAD_SECONDS = Histogram(
    "tollgate_request_duration_seconds",
    "Total request duration as seen by the gateway, by endpoint.",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CIRCUIT_STATE = Gauge(
    "tollgate_circuit_state",
    "Circuit breaker per provider and model as the gateway sees it: 0 closed, 1 half-open, "
    "2 open (with several workers: the most open of their views).",
    ["provider", "model"],
    multiprocess_mode="livemax",
)
RETRIES = Counter(
    "tollgate_retries_total",
    "Same-target retries after a failed attempt, by provider.",
    ["provider"],
)
FAILOVERS = Counter(
    "tollgate_failovers_total",
    "Moves from a failed (or circuit-open) target to the next target of the route, by the "
    "provider moved away from.",
    ["provider"],
)
