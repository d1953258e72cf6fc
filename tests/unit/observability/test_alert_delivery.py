"""Alert bodies (generic JSON, Slack, PagerDuty Events v2) and the Dispatcher: retries with
backoff, giving up, dedupe within the cool-down, and a bounded queue that never blocks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from tollgate.gateway.alerts import Alert, DeliveryFailed, Dispatcher
from tollgate.gateway.alerts.payloads import json_payload, pagerduty_payload, slack_payload

AT = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def alert(status: str = "firing", key: str = "tollgate/spend_anomaly/key:a") -> Alert:
    return Alert("spend_anomaly", status, key, "critical",  # type: ignore[arg-type]
                 "Spend spike on virtual key 'a'", "key:a", AT, key_id="a",
                 customer_id="acme", details={"rateUSDPerHour": "12.00"})


def test_the_json_body_is_the_versioned_alert_document():
    body = json_payload(alert())
    assert body == {
        "version": "tollgate.dev/alert/v1", "kind": "spend_anomaly", "status": "firing",
        "dedupKey": "tollgate/spend_anomaly/key:a", "severity": "critical",
        "summary": "Spend spike on virtual key 'a'", "scope": "key:a", "keyId": "a",
        "customerId": "acme", "period": None, "at": "2026-11-27T10:00:00Z",
        "details": {"rateUSDPerHour": "12.00"},
    }


def test_a_slack_message_has_a_text_line_and_says_when_it_is_resolved():
    firing, resolved = slack_payload(alert()), slack_payload(alert("resolved"))
    assert "Spend spike on virtual key 'a'" in firing["text"]
    assert resolved["text"].startswith(":white_check_mark: Resolved:")
    assert all(block["type"] in ("section", "context") for block in firing["blocks"])


def test_pagerduty_events_trigger_with_a_payload_and_resolve_by_dedup_key():
    trigger = pagerduty_payload(alert(), "R0UTINGKEY")
    assert trigger["event_action"] == "trigger"
    assert trigger["routing_key"] == "R0UTINGKEY"
    assert trigger["dedup_key"] == "tollgate/spend_anomaly/key:a"
    payload = trigger["payload"]
    assert {"summary", "source", "severity"} <= set(payload)
    assert payload["severity"] in ("critical", "error", "warning", "info")
    assert payload["component"] == "virtual-key/a" and payload["group"] == "acme"
    assert pagerduty_payload(alert("resolved"), "R0UTINGKEY") == {
        "routing_key": "R0UTINGKEY", "dedup_key": "tollgate/spend_anomaly/key:a",
        "event_action": "resolve"}


class FlakySink:
    """Fails `failures` times (retryable or not), then accepts."""

    def __init__(self, failures: int = 0, *, retryable: bool = True, max_attempts: int = 4,
                 name: str = "flaky") -> None:
        self.name = name
        self.max_attempts = max_attempts
        self.failures = failures
        self.retryable = retryable
        self.tries: list[Alert] = []
        self.delivered: list[Alert] = []

    def accepts(self, alert: Alert) -> bool:
        return True

    async def send(self, alert: Alert) -> None:
        self.tries.append(alert)
        if len(self.tries) <= self.failures:
            raise DeliveryFailed("receiver answered HTTP 503", retryable=self.retryable)
        self.delivered.append(alert)


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


async def run(dispatcher: Dispatcher, *alerts: Alert) -> None:
    dispatcher.start()
    for item in alerts:
        assert dispatcher.submit(item)
    assert await dispatcher.join(timeout=5)
    await dispatcher.aclose()


async def test_a_failing_receiver_is_retried_with_growing_delays_until_it_accepts():
    sink, sleeps = FlakySink(failures=3), Sleeps()
    await run(Dispatcher([sink], base_delay=1.0, max_delay=3.0, sleep=sleeps), alert())
    assert len(sink.tries) == 4 and len(sink.delivered) == 1
    assert [round(d / base) for d, base in zip(sleeps.delays, (1, 2, 3), strict=True)] == [1] * 3


async def test_delivery_gives_up_after_max_attempts_and_at_once_on_a_permanent_error():
    always, sleeps = FlakySink(failures=99, max_attempts=3), Sleeps()
    permanent = FlakySink(failures=99, retryable=False, name="permanent")
    await run(Dispatcher([always, permanent], sleep=sleeps), alert())
    assert (len(always.tries), always.delivered) == (3, [])
    assert (len(permanent.tries), permanent.delivered) == (1, [])


async def test_the_same_alert_is_sent_once_per_cool_down_but_its_resolve_goes_through():
    sink = FlakySink()
    await run(Dispatcher([sink], cooldown_seconds=3600), alert(), alert(), alert("resolved"),
              alert(key="tollgate/spend_anomaly/key:b"))
    assert [(a.dedup_key, a.status) for a in sink.delivered] == [
        ("tollgate/spend_anomaly/key:a", "firing"), ("tollgate/spend_anomaly/key:a", "resolved"),
        ("tollgate/spend_anomaly/key:b", "firing")]


async def test_a_full_queue_drops_instead_of_blocking_the_caller():
    dispatcher = Dispatcher([FlakySink()], queue_size=2)  # not started: nothing drains it
    assert [dispatcher.submit(alert()) for _ in range(3)] == [True, True, False]
    await dispatcher.aclose()


async def test_a_slow_receiver_does_not_hold_up_another_one():
    gate = asyncio.Event()

    class Slow(FlakySink):
        async def send(self, alert: Alert) -> None:
            await gate.wait()

    slow, fast = Slow(name="slow"), FlakySink(name="fast")
    dispatcher = Dispatcher([slow, fast])
    dispatcher.start()
    dispatcher.submit(alert())
    for _ in range(100):
        if fast.delivered:
            break
        await asyncio.sleep(0.01)
    assert len(fast.delivered) == 1
    gate.set()
    assert await dispatcher.join(timeout=5)
    await dispatcher.aclose()


@pytest.mark.parametrize("kinds, wanted", [((), True), (("budget_threshold",), False)])
def test_a_webhook_takes_only_the_kinds_it_lists(kinds: tuple[str, ...], wanted: bool):
    import httpx

    from tollgate.gateway.alerts import WebhookSink
    from tollgate.gateway.config.models import WebhookSettings
    from tollgate.gateway.providers.credentials import Secret

    settings = WebhookSettings.model_validate({"name": "w", "type": "json",
                                               "urlFrom": {"env": "X"}, "kinds": list(kinds)})
    sink = WebhookSink(settings, httpx.AsyncClient(), Secret("http://127.0.0.1:9/"))
    assert sink.accepts(alert()) is wanted
    assert "127.0.0.1" not in repr(sink)
