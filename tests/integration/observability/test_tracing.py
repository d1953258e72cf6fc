"""OTLP export from a real gateway to a collector on 127.0.0.1: a request with a caller's
`traceparent` becomes a server span in the caller's trace, with a client span per upstream
attempt (failover shows) and per store call, carrying GenAI attributes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fakes.openai_upstream import FakeOpenAI, error_status
from tests.integration.helpers import provider, sync_client
from tests.integration.observability.receivers import running_receiver
from tests.support.config import config_doc, key_entry
from tests.support.gateway import start_gateway

trace_service = pytest.importorskip(
    "opentelemetry.proto.collector.trace.v1.trace_service_pb2")

TOKEN = "tg-obs-trace-1d1d1d"
PROMPT = "trace me but never my words 8080"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


def _value(any_value: Any) -> Any:
    return getattr(any_value, any_value.WhichOneof("value"))


def test_a_request_is_exported_as_a_trace_with_attempt_and_store_spans(
        tmp_path: Path, openai_upstream: FakeOpenAI, backup_upstream: FakeOpenAI):
    openai_upstream.fail("m-t", error_status(500))  # fails over to the backup
    backup_upstream.set_usage(prompt_tokens=21, completion_tokens=8)
    with running_receiver() as collector:
        config = config_doc(
            providers=[provider("first", openai_upstream, key_env="T_KEY", models=("m-t",),
                                type="openai"),
                       provider("second", backup_upstream, key_env="T_KEY", models=("m-t",))],
            keys=[key_entry("tr-key", TOKEN, customerId="trco",
                            rateLimit={"requestsPerMinute": 100})],
            observability={"tracing": {"otlpEndpoint": collector.url("/v1/traces"),
                                       "serviceName": "tollgate-test"}},
        )
        gateway = start_gateway(tmp_path / "t.yaml", config=config,
                                env={"T_KEY": "sk-t", "OTEL_BSP_SCHEDULE_DELAY": "50"})
        try:
            with sync_client(gateway, TOKEN) as client:
                client.chat.completions.create(
                    model="m-t", max_tokens=10, messages=[{"role": "user", "content": PROMPT}],
                    extra_headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
            posts = collector.wait_for(lambda got: len(got) >= 1, path="/v1/traces")
        finally:
            gateway.stop()

    spans: list[Any] = []
    resources: list[dict[str, Any]] = []
    for post in collector.received("/v1/traces"):
        assert post.headers["Content-Type"] == "application/x-protobuf"
        request = trace_service.ExportTraceServiceRequest.FromString(post.body)
        for resource_spans in request.resource_spans:
            resources.append({a.key: _value(a.value)
                              for a in resource_spans.resource.attributes})
            for scope in resource_spans.scope_spans:
                spans.extend(scope.spans)
    assert posts and resources[0]["service.name"] == "tollgate-test"
    attrs = {id(s): {a.key: _value(a.value) for a in s.attributes} for s in spans}
    [root] = [s for s in spans if s.parent_span_id.hex() == PARENT_ID]
    assert root.trace_id.hex() == TRACE_ID and root.name == "chat m-t"
    children = [s for s in spans if s.parent_span_id == root.span_id]
    attempts = sorted((s for s in children if s.name == "chat m-t"),
                      key=lambda s: s.start_time_unix_nano)
    assert [attrs[id(s)]["tollgate.provider"] for s in attempts][-1] == "second"
    assert {attrs[id(s)]["tollgate.provider"] for s in attempts[:-1]} == {"first"}
    assert attrs[id(attempts[0])]["gen_ai.system"] == "openai"
    assert attrs[id(attempts[0])]["error.type"] == "upstream_server_error"
    served = attrs[id(attempts[-1])]
    assert (served["gen_ai.usage.input_tokens"], served["gen_ai.usage.output_tokens"]) == (21, 8)
    assert {s.name for s in children} >= {"store reserve", "store settle"}
    root_attrs = attrs[id(root)]
    assert root_attrs["gen_ai.request.model"] == "m-t"
    assert root_attrs["gen_ai.response.model"] == "m-t"
    assert root_attrs["tollgate.key_id"] == "tr-key"
    assert PROMPT.encode() not in b"".join(p.body for p in collector.received())
    assert TOKEN.encode() not in b"".join(p.body for p in collector.received())
