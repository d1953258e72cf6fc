"""Optional OpenTelemetry tracing: OTLP/HTTP export of one span per request, one per upstream
attempt and one per store call, with the GenAI semantic-convention attributes.

Off by default. With `observability.tracing` unset, `Tracing.tracer_for()` answers None, the
Call carries no tracer, and the record stage skips tracing with one `is None` test: nothing of
OpenTelemetry is imported, allocated or run. It needs the optional `tracing` extra
(`opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-http`); configured without it, the
gateway logs one warning and serves untraced.

Spans are built after the fact, in the record stage, from the timeline the Call kept (when
routing began, how long each attempt took, when each store call ran), with explicit start and
end times. The request path itself never touches a span, so tracing adds no awaits and no
context juggling to it; the BatchSpanProcessor exports from its own thread.

    <operation> <requested model>    SERVER   the request (parent: the caller's `traceparent`)
    ├── store reserve                CLIENT   admission (budgets + rate limits), when governed
    ├── <operation> <model>          CLIENT   each upstream attempt, in order (failover)
    └── store settle | release       CLIENT   the end of the hold, with the ledger record

Attributes follow the GenAI conventions (gen_ai.operation.name, gen_ai.system /
gen_ai.provider.name, gen_ai.request.model, gen_ai.response.model, gen_ai.usage.input_tokens,
gen_ai.usage.output_tokens, error.type …) plus `tollgate.*` ones (request id, key id,
customer, outcome, cost). Never a prompt, a completion or a token.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tollgate.gateway.config.models import TracingSettings
from tollgate.gateway.money import format_usd

if TYPE_CHECKING:
    from tollgate.gateway.pipeline.call import Call
    from tollgate.gateway.runtime import Snapshot

__all__ = ["GEN_AI_SYSTEMS", "Tracer", "Tracing"]

log = logging.getLogger("tollgate.tracing")

GEN_AI_SYSTEMS = {
    "openai": "openai",
    "azure-openai": "az.ai.openai",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "vertex": "gcp.vertex_ai",
    "openai-compatible": "openai_compatible",
    "mock": "tollgate.mock",
}
"""Provider type (config) → the `gen_ai.system` value the conventions define for it."""

ExporterFactory = Callable[[TracingSettings], Any]


def _otlp_exporter(settings: TracingSettings) -> Any:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_endpoint, timeout=10)


class Tracing:
    """Owned by the app's lifespan. Holds at most one live TracerProvider, built for the
    current `observability.tracing` settings and replaced when a reload changes them."""

    def __init__(self, exporter: ExporterFactory = _otlp_exporter,
                 batch: bool = True) -> None:
        self._exporter = exporter
        self._batch = batch
        self._snapshot: Snapshot | None = None
        self._settings: TracingSettings | None = None
        self._tracer: Tracer | None = None
        self._unavailable = False

    def tracer_for(self, snapshot: Snapshot) -> Tracer | None:
        """The tracer for a request served with `snapshot`, or None when tracing is off."""
        if snapshot is self._snapshot:
            return self._tracer
        settings = snapshot.config.observability.tracing
        if settings != self._settings:
            self._replace(settings)
        self._snapshot = snapshot
        return self._tracer

    def _replace(self, settings: TracingSettings | None) -> None:
        old, self._tracer, self._settings = self._tracer, None, settings
        if old is not None:
            old.shutdown()
        if settings is None or self._unavailable:
            return
        try:
            self._tracer = Tracer(settings, self._exporter(settings), batch=self._batch)
        except ImportError:
            self._unavailable = True
            log.warning("observability.tracing is set but OpenTelemetry is not installed "
                        "(pip install 'tollgate[tracing]'); serving without tracing",
                        extra={"event": "tracing_unavailable"})

    def shutdown(self) -> None:
        if self._tracer is not None:
            self._tracer.shutdown()
        self._tracer = self._snapshot = self._settings = None


class Tracer:
    """One TracerProvider (service name, sampler, exporter) and the span building."""

    def __init__(self, settings: TracingSettings, exporter: Any, batch: bool = True) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._trace = trace
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
            shutdown_on_exit=False,
        )
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer("tollgate.gateway")
        self._propagator = TraceContextTextMapPropagator()
        self._systems: tuple[Snapshot | None, dict[str, str]] = (None, {})

    def shutdown(self) -> None:
        self._provider.shutdown()

    def _system_of(self, snapshot: Snapshot, provider: str) -> str:
        cached, systems = self._systems
        if cached is not snapshot:
            systems = {p.name: GEN_AI_SYSTEMS.get(p.type, p.type)
                       for p in snapshot.config.providers}
            self._systems = (snapshot, systems)
        return systems.get(provider, provider)

    def export(self, call: Call, now: float) -> None:
        """Spans for a finished call; `now` is the perf_counter reading record() took."""
        offset = time.time_ns() - int(now * 1e9)

        def ns(perf: float) -> int:
            return int(perf * 1e9) + offset

        trace = self._trace
        kind = trace.SpanKind
        parent = (self._propagator.extract({"traceparent": call.traceparent})
                  if call.traceparent else None)
        operation = "count_tokens" if call.endpoint == "count_tokens" else call.endpoint
        attributes = self._request_attributes(call, operation)
        root = self._tracer.start_span(
            f"{operation} {call.requested_model}".strip(), context=parent, kind=kind.SERVER,
            attributes=attributes, start_time=ns(call.started))
        if call.outcome not in ("ok", "pending"):
            root.set_status(trace.Status(trace.StatusCode.ERROR, call.error_code or call.outcome))
        inside = trace.set_span_in_context(root)
        for op, started, ended in call.store_calls:
            span = self._tracer.start_span(
                f"store {op}", context=inside, kind=kind.CLIENT, start_time=ns(started),
                attributes={"tollgate.store.operation": op,
                            "db.system.name": _store_system(call.snapshot)})
            span.end(end_time=ns(ended))
        at = call.dispatched or call.started
        last = len(call.attempts) - 1
        for index, attempt in enumerate(call.attempts):
            system = self._system_of(call.snapshot, attempt.provider)
            attrs: dict[str, Any] = {
                "gen_ai.operation.name": operation,
                "gen_ai.system": system,
                "gen_ai.provider.name": system,
                "gen_ai.request.model": attempt.model,
                "tollgate.provider": attempt.provider,
                "tollgate.attempt": index + 1,
            }
            served = attempt.outcome == "ok" and index == last
            if served:
                attrs["gen_ai.response.model"] = attempt.model
                attrs.update(_usage_attributes(call))
            else:
                attrs["error.type"] = attempt.outcome
            span = self._tracer.start_span(
                f"{operation} {attempt.model}", context=inside, kind=kind.CLIENT,
                attributes=attrs, start_time=ns(at))
            if not served:
                span.set_status(trace.Status(trace.StatusCode.ERROR, attempt.outcome))
            end = at + attempt.seconds + (call.upstream_seconds if served else 0.0)
            span.end(end_time=ns(end))
            at += attempt.seconds
        root.end(end_time=ns(now))

    def _request_attributes(self, call: Call, operation: str) -> dict[str, Any]:
        key = call.key
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": call.requested_model,
            "tollgate.request_id": call.request_id,
            "tollgate.outcome": call.outcome,
            "tollgate.attempts": len(call.attempts),
            "tollgate.config_revision": call.snapshot.revision,
            "tollgate.stream": call.stream,
        }
        if key is not None:
            attrs["tollgate.key_id"] = key.id
            if key.config.customer_id:
                attrs["tollgate.customer_id"] = key.config.customer_id
        for name, field in (("gen_ai.request.max_tokens", "max_tokens"),
                            ("gen_ai.request.max_tokens", "max_completion_tokens"),
                            ("gen_ai.request.temperature", "temperature"),
                            ("gen_ai.request.top_p", "top_p")):
            value = call.body.get(field)
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[name] = value
        served = call.served_by
        if served is not None:
            system = self._system_of(call.snapshot, served.provider)
            attrs["gen_ai.system"] = system
            attrs["gen_ai.provider.name"] = system
            attrs["gen_ai.response.model"] = served.model
            attrs["tollgate.provider"] = served.provider
        attrs.update(_usage_attributes(call))
        if call.priced and call.cost_micros is not None:
            attrs["tollgate.cost_usd"] = format_usd(call.cost_micros)
        if call.error_code:
            attrs["error.type"] = call.error_code
        return attrs


def _usage_attributes(call: Call) -> dict[str, int]:
    usage = call.usage
    if usage is None:
        return {}
    return {
        "gen_ai.usage.input_tokens": usage.input_tokens,
        "gen_ai.usage.output_tokens": usage.output_tokens,
        "gen_ai.usage.cache_read.input_tokens": usage.cached_input_tokens,
        "gen_ai.usage.cache_creation.input_tokens": usage.cache_write_tokens,
    }


def _store_system(snapshot: Snapshot) -> str:
    return "redis" if snapshot.config.store.url else "sqlite"
