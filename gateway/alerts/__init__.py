"""Budget alerts, spend-anomaly alerts and their delivery (json, Slack, PagerDuty webhooks).

    model.py      Alert: the document every sink renders
    payloads.py   Alert → JSON / Slack / PagerDuty Events v2 bodies (pure)
    sinks.py      AlertSink protocol (the hook for other receivers) and WebhookSink
    dispatch.py   Dispatcher: bounded queue, retries with backoff, dedupe and cool-down
    markers.py    fire-once markers in the shared store (dedupe across replicas)
    evaluator.py  Evaluator: one pass over ledger and budgets → alerts
"""

from tollgate.gateway.alerts.dispatch import Dispatcher
from tollgate.gateway.alerts.evaluator import Evaluator
from tollgate.gateway.alerts.markers import Markers, MarkerStore
from tollgate.gateway.alerts.model import Alert, AlertKind, AlertStatus, Severity
from tollgate.gateway.alerts.sinks import AlertSink, DeliveryFailed, WebhookSink, build_sinks

__all__ = [
    "Alert",
    "AlertKind",
    "AlertSink",
    "AlertStatus",
    "DeliveryFailed",
    "Dispatcher",
    "Evaluator",
    "MarkerStore",
    "Markers",
    "Severity",
    "WebhookSink",
    "build_sinks",
]
