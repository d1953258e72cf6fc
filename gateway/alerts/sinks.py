"""Where alerts go: the AlertSink protocol and the webhook sink (json | slack | pagerduty).

AlertSink is the hook for any other receiver (a Kubernetes Event and a `SpendAnomaly` condition,
a chat bot, a test): a name, which alerts it takes, and one `send` that raises DeliveryFailed
to ask for a retry. The Dispatcher calls it off the request path, with retries and backoff.
"""

from __future__ import annotations

import logging
from typing import Protocol, runtime_checkable

import httpx

from tollgate.gateway.alerts.model import Alert
from tollgate.gateway.alerts.payloads import json_payload, pagerduty_payload, slack_payload
from tollgate.gateway.config.models import AlertSettings, WebhookSettings
from tollgate.gateway.providers.credentials import Secret, resolve

__all__ = ["PAGERDUTY_EVENTS_URL", "AlertSink", "DeliveryFailed", "WebhookSink", "build_sinks"]

log = logging.getLogger("tollgate.alerts")

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryFailed(Exception):
    """A delivery did not go through. `retryable`: try again later (after `retry_after`
    seconds when the receiver said so). The message never holds the URL or a key."""

    def __init__(self, reason: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.retry_after = retry_after


@runtime_checkable
class AlertSink(Protocol):
    """A receiver of alerts."""

    name: str
    max_attempts: int

    def accepts(self, alert: Alert) -> bool:
        """Does this sink want this alert (by kind, say)?"""
        ...

    async def send(self, alert: Alert) -> None:
        """Deliver once; raise DeliveryFailed on failure."""
        ...


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


class WebhookSink:
    """POSTs one JSON body per alert to a configured URL (its type decides the body)."""

    def __init__(self, settings: WebhookSettings, client: httpx.AsyncClient, url: Secret,
                 routing_key: Secret | None = None) -> None:
        self.name = settings.name
        self.type = settings.type
        self.max_attempts = settings.max_attempts
        self._kinds = frozenset(settings.kinds)
        self._timeout = settings.timeout_seconds
        self._client = client
        self._url = url
        self._routing_key = routing_key

    def __repr__(self) -> str:
        return f"WebhookSink(name={self.name!r}, type={self.type!r})"

    def accepts(self, alert: Alert) -> bool:
        return not self._kinds or alert.kind in self._kinds

    def body(self, alert: Alert) -> dict[str, object]:
        if self.type == "slack":
            return slack_payload(alert)
        if self.type == "pagerduty":
            assert self._routing_key is not None
            return pagerduty_payload(alert, self._routing_key.reveal())
        return json_payload(alert)

    async def send(self, alert: Alert) -> None:
        try:
            response = await self._client.post(
                self._url.reveal(), json=self.body(alert), timeout=self._timeout,
                headers={"user-agent": "tollgate-alerts"})
        except httpx.TimeoutException:
            raise DeliveryFailed("timed out", retryable=True) from None
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"connection failed ({type(exc).__name__})",
                                 retryable=True) from None
        status = response.status_code
        if 200 <= status < 300:
            return
        raise DeliveryFailed(f"receiver answered HTTP {status}",
                             retryable=status in _RETRYABLE_STATUS,
                             retry_after=_retry_after(response.headers.get("retry-after")))


def build_sinks(settings: AlertSettings, client: httpx.AsyncClient) -> list[AlertSink]:
    """A sink per configured webhook whose credentials resolve; the others are logged (by
    name only) and skipped."""
    sinks: list[AlertSink] = []
    for hook in settings.webhooks:
        url = resolve(hook.url_from) if hook.url_from is not None else Secret(
            PAGERDUTY_EVENTS_URL)
        key = resolve(hook.routing_key_from) if hook.routing_key_from is not None else None
        if url is None or (hook.type == "pagerduty" and key is None):
            log.warning("alert webhook %r skipped: its URL or routing key is not available",
                        hook.name, extra={"event": "alert_webhook_unavailable",
                                          "webhook": hook.name})
            continue
        sinks.append(WebhookSink(hook, client, url, key))
    return sinks
