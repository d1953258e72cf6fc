"""The alert document every sink renders: what happened, to whom, and the figures behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = ["ALERT_VERSION", "Alert", "AlertKind", "AlertStatus", "Severity"]

ALERT_VERSION = "tollgate.dev/alert/v1"

AlertKind = Literal["budget_threshold", "budget_forecast", "spend_anomaly"]
AlertStatus = Literal["firing", "resolved"]
Severity = Literal["info", "warning", "critical"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert. `dedup_key` names the condition (PagerDuty's dedup_key): a `resolved` alert
    carries the same key as the `firing` one it ends."""

    kind: AlertKind
    status: AlertStatus
    dedup_key: str
    severity: Severity
    summary: str
    scope: str
    """`key:<virtual key id>` or `customer:<customer id>`."""
    at: datetime
    key_id: str | None = None
    customer_id: str | None = None
    period: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    """Figures only (decimal USD strings, counts, times): never a prompt or a token."""

    def document(self) -> dict[str, Any]:
        """The generic JSON webhook body (version `tollgate.dev/alert/v1`)."""
        return {
            "version": ALERT_VERSION,
            "kind": self.kind,
            "status": self.status,
            "dedupKey": self.dedup_key,
            "severity": self.severity,
            "summary": self.summary,
            "scope": self.scope,
            "keyId": self.key_id,
            "customerId": self.customer_id,
            "period": self.period,
            "at": self.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "details": dict(self.details),
        }
