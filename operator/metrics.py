"""The operator's Prometheus metrics (`tollgate_operator_*`), declared once, and the helpers
the render loop and the kopf handlers call. Label values come from fixed vocabularies only.

    tollgate_operator_reconciles_total{result}            render passes: ok | error
    tollgate_operator_reconcile_errors_total{type}        failed passes: api (the API server or
                                                          the network) | unexpected
    tollgate_operator_reconcile_duration_seconds          one pass, tokens to statuses
    tollgate_operator_objects_written_total               ConfigMaps/Secrets a pass changed
    tollgate_operator_config_info{revision}               1 for the config revision last written
    tollgate_operator_resources{kind, ready}              VirtualKeys/ProviderCredentials by
                                                          their Ready condition
    tollgate_operator_handler_calls_total{handler, result}  kopf handlers: ok | temporary_error
                                                          | permanent_error | unexpected_error
    tollgate_operator_handler_duration_seconds{handler}

Hooks (the operator's own modules call these; nothing here imports them):

    with metrics.reconcile_pass():          around Reconciler.reconcile_once()
        ...
    metrics.objects_written(changed)        after _write_config()
    metrics.served_revision(revision)       once a revision is written/served
    metrics.resources("VirtualKey", {"True": 10, "False": 1})   after statuses
    @metrics.instrumented("release_key")    on a kopf handler (sync or async)
    metrics.serve(port)                     once, at startup: /metrics on that port
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from prometheus_client import Counter, Gauge, Histogram, start_http_server

__all__ = [
    "CONFIG_INFO",
    "HANDLER_CALLS",
    "HANDLER_SECONDS",
    "OBJECTS_WRITTEN",
    "RECONCILES",
    "RECONCILE_ERRORS",
    "RECONCILE_SECONDS",
    "RESOURCES",
    "classify",
    "instrumented",
    "objects_written",
    "reconcile_pass",
    "resources",
    "serve",
    "served_revision",
]

F = TypeVar("F", bound=Callable[..., Any])

_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)

RECONCILES = Counter(
    "tollgate_operator_reconciles_total",
    "Render passes (tokens, config, statuses) by result: ok or error.",
    ["result"],
)
RECONCILE_ERRORS = Counter(
    "tollgate_operator_reconcile_errors_total",
    "Failed render passes by type: api (API server or network) or unexpected.",
    ["type"],
)
RECONCILE_SECONDS = Histogram(
    "tollgate_operator_reconcile_duration_seconds",
    "Duration of one render pass.",
    buckets=_BUCKETS,
)
OBJECTS_WRITTEN = Counter(
    "tollgate_operator_objects_written_total",
    "ConfigMap parts and Secrets created, changed or deleted by render passes.",
)
CONFIG_INFO = Gauge(
    "tollgate_operator_config_info",
    "1 for the gateway config revision the operator last wrote (only that one is exported).",
    ["revision"],
)
RESOURCES = Gauge(
    "tollgate_operator_resources",
    "Custom resources by kind and their Ready condition (True, False, Unknown).",
    ["kind", "ready"],
)
HANDLER_CALLS = Counter(
    "tollgate_operator_handler_calls_total",
    "kopf handler calls by handler and result: ok, temporary_error, permanent_error or "
    "unexpected_error.",
    ["handler", "result"],
)
HANDLER_SECONDS = Histogram(
    "tollgate_operator_handler_duration_seconds",
    "Duration of kopf handler calls.",
    ["handler"],
    buckets=_BUCKETS,
)

_revision: list[str] = []


def classify(error: BaseException) -> str:
    """A failure's metric label: temporary_error / permanent_error (kopf's own), api (the
    API server or the network), or unexpected."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if "TemporaryError" in names:
        return "temporary_error"
    if "PermanentError" in names:
        return "permanent_error"
    if "ApiError" in names or isinstance(error, OSError | TimeoutError):
        return "api"
    return "unexpected"


@contextmanager
def reconcile_pass() -> Iterator[None]:
    """Count and time one render pass; a failure is counted and re-raised."""
    started = time.perf_counter()
    try:
        yield
    except Exception as error:
        RECONCILES.labels("error").inc()
        kind = classify(error)
        RECONCILE_ERRORS.labels("api" if kind == "api" else "unexpected").inc()
        raise
    else:
        RECONCILES.labels("ok").inc()
    finally:
        RECONCILE_SECONDS.observe(time.perf_counter() - started)


def objects_written(count: int) -> None:
    if count > 0:
        OBJECTS_WRITTEN.inc(count)


def served_revision(revision: str) -> None:
    if _revision and _revision[0] == revision:
        return
    if _revision:
        CONFIG_INFO.remove(_revision[0])
    CONFIG_INFO.labels(revision).set(1)
    _revision[:] = [revision]


def resources(kind: str, by_ready: Mapping[str, int]) -> None:
    """Set the counts of one kind by Ready status (statuses missing from `by_ready`: 0)."""
    for status in ("True", "False", "Unknown"):
        RESOURCES.labels(kind, status).set(by_ready.get(status, 0))


def _result(error: BaseException | None) -> str:
    if error is None:
        return "ok"
    kind = classify(error)
    return kind if kind in ("temporary_error", "permanent_error") else "unexpected_error"


def instrumented(handler: str) -> Callable[[F], F]:
    """Count and time a kopf handler (sync or async). kopf's keyword-only calling convention
    passes through untouched."""

    def wrap(fn: F) -> F:
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                error: BaseException | None = None
                try:
                    return await fn(*args, **kwargs)
                except Exception as exc:
                    error = exc
                    raise
                finally:
                    HANDLER_CALLS.labels(handler, _result(error)).inc()
                    HANDLER_SECONDS.labels(handler).observe(time.perf_counter() - started)

            return run_async  # type: ignore[return-value]

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            error: BaseException | None = None
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                error = exc
                raise
            finally:
                HANDLER_CALLS.labels(handler, _result(error)).inc()
                HANDLER_SECONDS.labels(handler).observe(time.perf_counter() - started)

        return run  # type: ignore[return-value]

    return wrap


def serve(port: int, address: str = "0.0.0.0") -> None:  # noqa: S104 - a pod's metrics port
    """Serve /metrics on `port` from a background thread (prometheus-client's own server)."""
    start_http_server(port, addr=address)
