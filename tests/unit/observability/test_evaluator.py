"""The alert evaluator against a real embedded store and a synthetic ledger, on a clock the
test sets: budget thresholds fire once per period (across replicas too), forecasts flag a key
about to run dry, and a spend spike fires once and resolves."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.config import config_doc, key_entry
from tollgate.gateway.alerts import Alert, Dispatcher, Evaluator
from tollgate.gateway.pipeline.govern import checks_for
from tollgate.gateway.runtime import KeyPolicy, Snapshot
from tollgate.gateway.store.base import LedgerRecord, Settlement

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
_ids = itertools.count()


def _config(**alerts: Any) -> dict[str, Any]:
    return config_doc(
        providers=[{"name": "demo", "type": "mock", "models": ["mock-chat"]}],
        customers=[{"id": "acme", "budget": {"maxUSD": "1000"}}],
        keys=[
            key_entry("ev-budget", "t1", customerId="acme", budget={"maxUSD": "10"}),
            key_entry("ev-custom", "t2", budget={"maxUSD": "10",
                                                 "alertThresholdsPercent": [90]}),
            key_entry("ev-silent", "t3", budget={"maxUSD": "10", "alertThresholdsPercent": []}),
            key_entry("ev-spiky", "t4", customerId="acme"),
        ],
        alerts=alerts,
    )


def _policy(snapshot: Snapshot, key_id: str) -> KeyPolicy:
    return next(p for p in snapshot.keys_by_hash.values() if p.id == key_id)


async def spend(snapshot: Snapshot, key_id: str, at: datetime, micros: int) -> None:
    """One settled request at `at`: the budget counters and the ledger, as the gateway does."""
    policy = _policy(snapshot, key_id)
    budgets, _ = checks_for(policy, at)
    rid = f"req-{next(_ids)}"
    record = LedgerRecord(time=at, request_id=rid, key_id=key_id,
                          customer_id=policy.config.customer_id, provider="demo",
                          model="mock-chat", cost_micros=micros)
    await snapshot.store.settle(Settlement(rid, at, budgets, (), micros, 0, record))


def _replica() -> Evaluator:
    return Evaluator(Dispatcher())


def _summary(alerts: list[Alert], kind: str | None = None) -> list[tuple[str, str, str, str]]:
    return [(a.kind, a.status, a.scope, a.dedup_key.rsplit("/", 1)[-1]) for a in alerts
            if kind is None or a.kind == kind]


def _thresholds(alerts: list[Alert]) -> list[tuple[str, str, str, str]]:
    return _summary(alerts, "budget_threshold")


async def test_budget_thresholds_fire_once_each_and_a_jump_sends_only_the_highest(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    evaluator = _replica()
    await spend(snapshot, "ev-budget", NOW - timedelta(hours=1), 5_500_000)  # 55 %
    first = await evaluator.evaluate(snapshot, NOW)
    assert _thresholds(first) == [("budget_threshold", "firing", "key:ev-budget", "50")]
    assert first[0].severity == "info" and first[0].details["spentUSD"] == "5.50"
    assert await evaluator.evaluate(snapshot, NOW + timedelta(minutes=1)) == []

    await spend(snapshot, "ev-budget", NOW + timedelta(minutes=2), 5_000_000)  # 105 %
    second = await evaluator.evaluate(snapshot, NOW + timedelta(minutes=3))
    assert _thresholds(second) == [("budget_threshold", "firing", "key:ev-budget", "100")]
    assert second[0].severity == "critical"
    assert second[0].summary.startswith("Virtual key 'ev-budget' has spent 105% of its budget")


async def test_another_replica_does_not_repeat_an_alert_already_sent(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    await spend(snapshot, "ev-budget", NOW - timedelta(hours=1), 8_100_000)
    one, two = _replica(), _replica()
    sent = await one.evaluate(snapshot, NOW)
    assert _thresholds(sent) == [("budget_threshold", "firing", "key:ev-budget", "80")]
    assert len(sent) == 2  # and the forecast: $8.10 in a day, $1.90 left
    assert await two.evaluate(snapshot, NOW) == []


async def test_per_budget_thresholds_override_the_default_and_empty_means_none(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    await spend(snapshot, "ev-custom", NOW - timedelta(hours=1), 8_500_000)
    await spend(snapshot, "ev-silent", NOW - timedelta(hours=1), 10_000_000)
    assert _thresholds(await _replica().evaluate(snapshot, NOW)) == []
    await spend(snapshot, "ev-custom", NOW - timedelta(minutes=30), 600_000)
    assert _thresholds(await _replica().evaluate(snapshot, NOW)) == [
        ("budget_threshold", "firing", "key:ev-custom", "90")]


async def test_a_new_period_fires_its_thresholds_again(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    evaluator = _replica()
    await spend(snapshot, "ev-budget", NOW, 5_100_000)
    assert len(_thresholds(await evaluator.evaluate(snapshot, NOW + timedelta(minutes=1)))) == 1
    december = datetime(2026, 12, 2, tzinfo=UTC)
    await spend(snapshot, "ev-budget", december, 5_100_000)
    [again] = [a for a in await evaluator.evaluate(snapshot, december + timedelta(minutes=1))
               if a.kind == "budget_threshold"]
    assert again.period == "2026-12" and again.dedup_key.endswith("/2026-12/50")


async def test_a_key_spending_too_fast_for_its_period_is_forecast_once(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    at = NOW - timedelta(hours=30)
    while at < NOW:  # $0.10 an hour: $3 spent, the remaining $7 gone in about 70 hours
        await spend(snapshot, "ev-custom", at, 100_000)
        at += timedelta(hours=1)
    evaluator = _replica()
    alerts = await evaluator.evaluate(snapshot, NOW)
    [forecast] = [a for a in alerts if a.kind == "budget_forecast"]
    assert forecast.key_id == "ev-custom" and forecast.severity == "warning"
    exhausts = datetime.fromisoformat(forecast.details["exhaustsAt"].replace("Z", "+00:00"))
    assert timedelta(hours=60) < exhausts - NOW < timedelta(hours=80)
    assert forecast.details["periodEnd"] == "2026-12-01T00:00:00Z"
    assert forecast.details["rateUSDPerHour"] == "0.10"
    later = await evaluator.evaluate(snapshot, NOW + timedelta(minutes=5))
    assert [a for a in later if a.kind == "budget_forecast"] == []


async def test_a_key_spending_slowly_gets_no_forecast_alert(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    at = NOW - timedelta(hours=30)
    while at < NOW:  # $0.01 an hour: $7 left would last a month
        await spend(snapshot, "ev-custom", at, 10_000)
        at += timedelta(hours=1)
    assert [a for a in await _replica().evaluate(snapshot, NOW)
            if a.kind == "budget_forecast"] == []


async def test_a_spend_spike_fires_once_across_replicas_and_its_sender_resolves_it(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config(cooldownSeconds=3600))
    at = NOW - timedelta(days=8)
    while at < NOW:  # a steady $0.60 an hour, one request every 10 minutes
        await spend(snapshot, "ev-spiky", at, 100_000)
        at += timedelta(minutes=10)
    one, two = _replica(), _replica()
    assert await one.evaluate(snapshot, NOW) == []
    assert await two.evaluate(snapshot, NOW) == []
    for second in range(0, 240, 8):  # 30 requests in 4 minutes: ~$45/h
        await spend(snapshot, "ev-spiky", NOW + timedelta(seconds=second), 100_000)
    later = NOW + timedelta(minutes=5)
    fired = await one.evaluate(snapshot, later)
    assert ("spend_anomaly", "firing", "key:ev-spiky") in [s[:3] for s in _summary(fired)]
    assert ("spend_anomaly", "firing", "customer:acme") in [s[:3] for s in _summary(fired)]
    spike = next(a for a in fired if a.scope == "key:ev-spiky")
    assert spike.severity == "critical" and spike.key_id == "ev-spiky"
    assert spike.customer_id == "acme"
    assert await two.evaluate(snapshot, later) == []  # it sees it too, but one sent it

    quiet = NOW + timedelta(minutes=30)
    resolved = await one.evaluate(snapshot, quiet)
    assert sorted(_summary(resolved)) == [
        ("spend_anomaly", "resolved", "customer:acme", "customer:acme"),
        ("spend_anomaly", "resolved", "key:ev-spiky", "key:ev-spiky")]
    assert await two.evaluate(snapshot, quiet) == []


async def test_alerts_are_handed_to_the_dispatcher(
        snapshot_of: Callable[[dict[str, Any]], Snapshot]):
    snapshot = snapshot_of(_config())
    dispatcher = Dispatcher(queue_size=10)
    await spend(snapshot, "ev-budget", NOW, 5_100_000)
    raised = await Evaluator(dispatcher).evaluate(snapshot, NOW + timedelta(minutes=1))
    assert raised and dispatcher._queue.qsize() == len(raised)
