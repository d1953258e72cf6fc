"""Alert → request body, one pure function per receiver type.

    json        Tollgate's own document (Alert.document(), version tollgate.dev/alert/v1)
    slack       a Slack incoming-webhook message: `text` (the notification line) plus blocks
    pagerduty   a PagerDuty Events API v2 event: `trigger` with a payload, or `resolve`, both
                with the alert's dedup_key (so PagerDuty groups and closes the incident)
"""

from __future__ import annotations

from typing import Any

from tollgate.gateway.alerts.model import Alert

__all__ = ["json_payload", "pagerduty_payload", "slack_payload"]

_PD_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}
_SLACK_ICON = {"info": ":information_source:", "warning": ":warning:",
               "critical": ":rotating_light:"}


def json_payload(alert: Alert) -> dict[str, Any]:
    return alert.document()


def _detail_lines(alert: Alert) -> str:
    return "\n".join(f"*{name}*: {value}" for name, value in alert.details.items())


def slack_payload(alert: Alert) -> dict[str, Any]:
    if alert.status == "resolved":
        headline = f":white_check_mark: Resolved: {alert.summary}"
    else:
        headline = f"{_SLACK_ICON[alert.severity]} {alert.summary}"
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
    ]
    details = _detail_lines(alert)
    if details:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": details}})
    blocks.append({"type": "context", "elements": [
        {"type": "mrkdwn", "text": f"{alert.kind} · {alert.scope} · dedup `{alert.dedup_key}`"},
    ]})
    return {"text": headline, "blocks": blocks}


def pagerduty_payload(alert: Alert, routing_key: str) -> dict[str, Any]:
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "dedup_key": alert.dedup_key,
        "event_action": "resolve" if alert.status == "resolved" else "trigger",
    }
    if alert.status == "resolved":
        return event
    component = (f"virtual-key/{alert.key_id}" if alert.key_id
                 else f"customer/{alert.customer_id}")
    event["client"] = "Tollgate"
    event["payload"] = {
        "summary": alert.summary[:1024],
        "source": "tollgate",
        "severity": _PD_SEVERITY[alert.severity],
        "timestamp": alert.document()["at"],
        "component": component,
        "group": alert.customer_id or alert.key_id or "",
        "class": alert.kind,
        "custom_details": {"scope": alert.scope, "period": alert.period, **alert.details},
    }
    return event
