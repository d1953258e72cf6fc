"""Alerts as Kubernetes Events on the VirtualKey they concern (`kubectl describe virtualkey`).

An AlertSink (gateway/alerts/sinks.py) that the cluster wiring adds to the Observability's
dispatcher: for an alert whose scope is a key rendered from a VirtualKey (`<namespace>.<name>`),
one core/v1 Event is created (generateName, no aggregation: `create` on `events` is all it
needs). Customer-scope alerts and standalone keys have no object to attach to: not accepted.

    budget_threshold  firing    Warning  BudgetThresholdCrossed
    budget_forecast   firing    Warning  BudgetExhaustionForecast
    spend_anomaly     firing    Warning  SpendAnomaly
    spend_anomaly     resolved  Normal   SpendAnomalyResolved

The message is the alert's summary (figures only, never a token or a prompt).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tollgate.gateway.alerts.model import Alert
from tollgate.gateway.alerts.sinks import DeliveryFailed
from tollgate.gateway.kube.client import CR_API_VERSION, ApiError, KubeClient, Unreachable
from tollgate.gateway.kube.figures import split_key_id

__all__ = ["COMPONENT", "EventSink", "event_reason", "events_path"]

COMPONENT = "tollgate-gateway"
_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_MESSAGE_LIMIT = 1024


def events_path(namespace: str) -> str:
    return f"/api/v1/namespaces/{namespace}/events"


def event_reason(alert: Alert) -> str:
    if alert.kind == "spend_anomaly":
        return "SpendAnomalyResolved" if alert.status == "resolved" else "SpendAnomaly"
    if alert.kind == "budget_forecast":
        return "BudgetExhaustionForecast"
    return "BudgetThresholdCrossed"


def _virtual_key(alert: Alert) -> tuple[str, str] | None:
    kind, _, key_id = alert.scope.partition(":")
    if kind != "key" or not key_id:
        return None
    return split_key_id(key_id)


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventSink:
    """Posts one Event per alert on the alert's VirtualKey."""

    name = "kubernetes-events"

    def __init__(self, client: KubeClient, *, instance: str = "", max_attempts: int = 3
                 ) -> None:
        self._client = client
        self._instance = instance
        self.max_attempts = max_attempts

    def __repr__(self) -> str:
        return f"EventSink(instance={self._instance!r})"

    def accepts(self, alert: Alert) -> bool:
        return _virtual_key(alert) is not None

    def body(self, alert: Alert) -> dict[str, Any]:
        ref = _virtual_key(alert)
        if ref is None:
            raise ValueError(f"alert scope {alert.scope!r} names no VirtualKey")
        namespace, name = ref
        at = _timestamp(alert.at)
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": namespace},
            "involvedObject": {"apiVersion": CR_API_VERSION, "kind": "VirtualKey",
                               "namespace": namespace, "name": name},
            "reason": event_reason(alert),
            "message": alert.summary[:_MESSAGE_LIMIT],
            "type": "Normal" if alert.status == "resolved" else "Warning",
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": at, "lastTimestamp": at, "count": 1,
        }
        if self._instance:
            body["source"]["host"] = self._instance[:128]
            body["reportingInstance"] = self._instance[:128]
        return body

    async def send(self, alert: Alert) -> None:
        body = self.body(alert)
        try:
            await self._client.create(events_path(body["metadata"]["namespace"]), body)
        except Unreachable as exc:
            raise DeliveryFailed(f"API server unreachable ({exc.reason})",
                                 retryable=True) from None
        except ApiError as exc:
            raise DeliveryFailed(f"API server answered {exc.status} {exc.reason}",
                                 retryable=exc.status in _RETRYABLE) from None
