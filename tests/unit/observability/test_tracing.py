"""Tracing: spans for the request, each upstream attempt and each store call, with the GenAI
semantic-convention attributes; and when tracing is off, OpenTelemetry is never imported."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.config import config_doc, key_entry
from tollgate.gateway.config.models import Target
from tollgate.gateway.pipeline.call import Attempt, Call
from tollgate.gateway.pricing import Usage
from tollgate.gateway.runtime import Snapshot
from tollgate.gateway.tracing import Tracing

pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode  # noqa: E402

PROMPT = "the secret plan is 7f3c"


def _config(tracing: dict[str, Any] | None) -> dict[str, Any]:
    doc = config_doc(
        providers=[{"name": "primary", "type": "openai-compatible", "baseURL": "http://x/v1",
                    "models": ["m"]},
                   {"name": "claude", "type": "anthropic", "models": ["m"]}],
        keys=[key_entry("tr-key", "tok", customerId="acme")],
    )
    if tracing is not None:
        doc["observability"] = {"tracing": tracing}
    return doc


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


def _tracing(exporter: InMemorySpanExporter) -> Tracing:
    return Tracing(exporter=lambda settings: exporter, batch=False)


def _finished_call(snapshot: Snapshot) -> Call:
    key = next(iter(snapshot.keys_by_hash.values()))
    now = time.perf_counter()
    call = Call(request_id="req-trace-1", endpoint="chat", snapshot=snapshot,
                body={"model": "m", "max_tokens": 64, "temperature": 0.2,
                      "messages": [{"role": "user", "content": PROMPT}]},
                started=now - 1.0, key=key, requested_model="m",
                route=(Target(provider="primary", model="m"), Target(provider="claude",
                                                                     model="m")))
    call.dispatched = now - 0.9
    call.store_calls = [("reserve", now - 0.95, now - 0.94), ("settle", now - 0.05, now - 0.04)]
    call.attempts = [Attempt("primary", "m", "upstream_timeout", 0.5),
                     Attempt("claude", "m", "ok", 0.3)]
    call.served_by = Target(provider="claude", model="m")
    call.usage = Usage(input_tokens=12, output_tokens=7, cached_input_tokens=2)
    call.cost_micros, call.priced, call.outcome = 1234, True, "ok"
    return call


async def test_a_request_becomes_a_server_span_with_attempt_and_store_children(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], exporter: InMemorySpanExporter):
    snapshot = snapshot_of(_config({"otlpEndpoint": "http://127.0.0.1:4318/v1/traces"}))
    tracing = _tracing(exporter)
    tracer = tracing.tracer_for(snapshot)
    assert tracer is not None and tracing.tracer_for(snapshot) is tracer
    call = _finished_call(snapshot)
    tracer.export(call, time.perf_counter())
    tracing.shutdown()

    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"chat m", "store reserve", "store settle"}
    assert len(exporter.get_finished_spans()) == 5  # request, 2 attempts, 2 store calls
    root = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    attempts = [s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT
                and s.name == "chat m"]
    assert len(attempts) == 2 and all(s.parent.span_id == root.context.span_id
                                      for s in attempts)
    failed, served = sorted(attempts, key=lambda s: s.start_time)
    assert failed.attributes["gen_ai.system"] == "openai_compatible"
    assert failed.attributes["error.type"] == "upstream_timeout"
    assert failed.status.status_code == StatusCode.ERROR
    assert served.attributes["gen_ai.system"] == "anthropic"
    assert served.attributes["gen_ai.usage.input_tokens"] == 12
    assert served.attributes["gen_ai.usage.output_tokens"] == 7
    assert failed.end_time <= served.start_time + 1_000_000  # in order, one after the other
    assert root.attributes["gen_ai.operation.name"] == "chat"
    assert root.attributes["gen_ai.request.model"] == "m"
    assert root.attributes["gen_ai.response.model"] == "m"
    assert root.attributes["gen_ai.request.max_tokens"] == 64
    assert root.attributes["tollgate.key_id"] == "tr-key"
    assert root.attributes["tollgate.customer_id"] == "acme"
    assert root.attributes["tollgate.cost_usd"] == "0.001234"
    assert 0.99e9 < root.end_time - root.start_time < 1.1e9
    assert spans["store reserve"].attributes["db.system.name"] == "sqlite"
    everything = str([dict(s.attributes) for s in exporter.get_finished_spans()])
    assert PROMPT not in everything


async def test_a_callers_traceparent_becomes_the_parent(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], exporter: InMemorySpanExporter):
    snapshot = snapshot_of(_config({"otlpEndpoint": "http://127.0.0.1:4318/v1/traces"}))
    tracing = _tracing(exporter)
    call = _finished_call(snapshot)
    call.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    tracing.tracer_for(snapshot).export(call, time.perf_counter())  # type: ignore[union-attr]
    tracing.shutdown()
    root = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.SERVER)
    assert format(root.context.trace_id, "032x") == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert format(root.parent.span_id, "016x") == "00f067aa0ba902b7"


async def test_a_sample_ratio_of_zero_records_nothing(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], exporter: InMemorySpanExporter):
    snapshot = snapshot_of(_config({"otlpEndpoint": "http://127.0.0.1:4318/v1/traces",
                                    "sampleRatio": 0}))
    tracing = _tracing(exporter)
    tracing.tracer_for(snapshot).export(  # type: ignore[union-attr]
        _finished_call(snapshot), time.perf_counter())
    tracing.shutdown()
    assert exporter.get_finished_spans() == ()


async def test_tracing_off_gives_no_tracer_and_a_reload_turns_it_on_and_off(
        snapshot_of: Callable[[dict[str, Any]], Snapshot], exporter: InMemorySpanExporter):
    tracing = _tracing(exporter)
    assert tracing.tracer_for(snapshot_of(_config(None))) is None
    on = tracing.tracer_for(snapshot_of(_config({"otlpEndpoint": "http://127.0.0.1:1/x"})))
    assert on is not None
    assert tracing.tracer_for(snapshot_of(_config(None))) is None
    tracing.shutdown()


def test_with_tracing_off_opentelemetry_is_never_imported(tmp_path: Any):
    """A whole gateway request path in a fresh interpreter, tracing unset."""
    script = f"""
import sys, time, asyncio
sys.path.append({str(tmp_path)!r})
from tollgate.gateway.config.models import GatewayConfig
from tollgate.gateway.observability import Observability
from tollgate.gateway.pipeline.record import record
from tollgate.gateway.pipeline.call import Call
from tollgate.gateway.pricing import load_catalog
from tollgate.gateway.runtime import build_snapshot
from tollgate.gateway.store.embedded import EmbeddedStore
from tollgate.gateway.store.outbox import Outbox
from tollgate.gateway.transport import AiohttpTransport
config = GatewayConfig.model_validate({{"apiVersion": "tollgate.dev/v1alpha1",
                                        "kind": "GatewayConfig"}})
snapshot = build_snapshot(config, "r", AiohttpTransport(), load_catalog(),
                          lambda s: (EmbeddedStore({str(tmp_path / "s.db")!r}), Outbox()))
tracer = Observability().tracer_for(snapshot)
assert tracer is None
record(Call(request_id="r", endpoint="chat", snapshot=snapshot, body={{}},
            started=time.perf_counter()))
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")
                or m.startswith("opentelemetry.exporter"))
print(loaded)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
