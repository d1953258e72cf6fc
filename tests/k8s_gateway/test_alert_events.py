"""Alerts on a VirtualKey's key become core/v1 Events on that VirtualKey (gateway/kube/events.py),
posted through the gateway's own API client to the emulator; customer alerts are not taken."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.k8s_gateway.conftest import Cluster
from tests.operator_e2e.api import EVENT
from tollgate.gateway.alerts.model import Alert
from tollgate.gateway.kube.client import Connection, KubeClient, from_kubeconfig
from tollgate.gateway.kube.events import EventSink

AT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def _alert(scope: str, **kwargs: object) -> Alert:
    fields: dict[str, object] = {
        "kind": "spend_anomaly", "status": "firing", "dedup_key": f"anomaly:{scope}",
        "severity": "critical", "scope": scope, "at": AT,
        "summary": "Spend spike on virtual key 'tenants.alpha': $12.00/h over the last 15 min",
        "details": {"rateUSDPerHour": "12.00"}}
    fields.update(kwargs)
    return Alert(**fields)  # type: ignore[arg-type]


async def test_a_key_alert_becomes_an_event_on_its_virtual_key(cluster: Cluster) -> None:
    client = KubeClient(from_kubeconfig(cluster.emulator.kubeconfig))
    sink = EventSink(client, instance="gw-a")
    try:
        firing = _alert("key:tenants.alpha", key_id="tenants.alpha")
        assert sink.accepts(firing)
        await sink.send(firing)
        await sink.send(_alert("key:tenants.alpha", key_id="tenants.alpha", status="resolved",
                               summary="Spend on virtual key 'tenants.alpha' is back to normal"))
    finally:
        await client.close()
    events = sorted(cluster.api.list(EVENT, "tenants"), key=lambda e: e["type"] != "Warning")
    assert [(e["reason"], e["type"]) for e in events] == [
        ("SpendAnomaly", "Warning"), ("SpendAnomalyResolved", "Normal")]
    event = events[0]
    assert event["involvedObject"] == {"apiVersion": "tollgate.dev/v1alpha1",
                                       "kind": "VirtualKey", "namespace": "tenants",
                                       "name": "alpha"}
    assert event["metadata"]["name"].startswith("alpha.")
    assert event["message"] == firing.summary
    assert event["source"]["component"] == "tollgate-gateway"
    assert event["count"] == 1


def test_customer_and_standalone_key_alerts_are_not_accepted() -> None:
    sink = EventSink(KubeClient(Connection("http://127.0.0.1:9")))  # never called
    assert not sink.accepts(_alert("customer:acme", customer_id="acme"))
    assert not sink.accepts(_alert("key:standalone-key", key_id="standalone-key"))
    assert sink.accepts(_alert("key:tenants.alpha", key_id="tenants.alpha", kind="budget_threshold",
                               dedup_key="budget:key:tenants.alpha:2026-03:80"))
