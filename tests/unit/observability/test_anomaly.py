"""The spike detector and the exhaustion forecast, replayed on synthetic ledgers with a clock
the test controls (no sleeping, no wall clock)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.unit.observability.traffic import MONDAY, requests_between
from tollgate.gateway.anomaly import (
    HOUR,
    AnomalyDetector,
    DetectorSettings,
    SpendSeries,
    baseline,
    forecast_exhaustion,
)

DAY = 86_400
SCOPE = "key:acme-prod"


def replay(detector: AnomalyDetector, rng: random.Random, start: float, end: float,
           factor: float = 1.0, step: float = 60.0) -> list[tuple[float, str]]:
    """Feed traffic minute by minute, evaluating after each minute: (time, status) changes."""
    changes: list[tuple[float, str]] = []
    at = start
    while at < end:
        for when, cost in requests_between(rng, at, at + step, factor=factor):
            detector.add(SCOPE, when, cost)
        at += step
        changes += [(at, c.status) for c in detector.evaluate(at)]
    return changes


def test_two_weeks_of_normal_traffic_with_daily_and_weekly_cycles_raise_no_alert():
    detector = AnomalyDetector()
    changes = replay(detector, random.Random(7), MONDAY, MONDAY + 14 * DAY)
    assert changes == []
    # and it was really judging: weekly baselines exist by the second week
    now = MONDAY + 14 * DAY - 1
    found = baseline(detector.series[SCOPE], now)
    assert found is not None and found.kind == "weekly"


def test_a_tenfold_spike_is_flagged_within_ten_minutes_and_resolved_after():
    detector = AnomalyDetector()
    rng = random.Random(11)
    spike_at = MONDAY + 14 * DAY + 10 * HOUR + 17 * 60  # a Monday morning, mid-hour
    assert replay(detector, rng, MONDAY, spike_at) == []
    changes = replay(detector, rng, spike_at, spike_at + 30 * 60, factor=10.0)
    assert changes, "the spike was not flagged"
    flagged_at, status = changes[0]
    assert status == "firing"
    assert flagged_at - spike_at <= 10 * 60
    after = replay(detector, rng, spike_at + 30 * 60, spike_at + 90 * 60)
    assert [status for _, status in after] == ["resolved"]


@pytest.mark.parametrize("hour", [3, 14], ids=["at night", "at the daily peak"])
def test_a_tenfold_spike_is_flagged_at_any_hour(hour: int):
    detector = AnomalyDetector()
    rng = random.Random(hour)
    spike_at = MONDAY + 15 * DAY + hour * HOUR  # a Tuesday
    replay(detector, rng, MONDAY + 7 * DAY, spike_at)
    changes = replay(detector, rng, spike_at, spike_at + 10 * 60, factor=10.0)
    assert ("firing" in [s for _, s in changes]), changes


def test_a_single_expensive_request_is_not_a_spike():
    detector = AnomalyDetector()
    rng = random.Random(3)
    start = MONDAY + 7 * DAY
    replay(detector, rng, MONDAY, start + 2 * HOUR)
    detector.add(SCOPE, start + 2 * HOUR + 5, 50_000_000)  # $50 at once
    changes = detector.evaluate(start + 2 * HOUR + 60)
    assert changes == []


def test_nothing_is_flagged_during_the_first_day():
    detector = AnomalyDetector()
    changes = replay(detector, random.Random(5), MONDAY, MONDAY + 20 * HOUR, factor=1.0)
    detector.add(SCOPE, MONDAY + 20 * HOUR + 1, 0)
    assert changes == []
    assert baseline(detector.series[SCOPE], MONDAY + 20 * HOUR) is None


def test_the_floor_keeps_a_tiny_key_from_alerting():
    settings = DetectorSettings(min_rate_micros_per_hour=10_000_000)  # $10/h
    detector = AnomalyDetector(settings)
    rng = random.Random(9)
    start = MONDAY + 8 * DAY + 3 * HOUR  # Tuesday night: ~$1.6/h normally
    replay(detector, rng, MONDAY, start)
    assert replay(detector, rng, start, start + 15 * 60, factor=5.0) == []


def test_series_buckets_wrap_and_read_old_hours_as_gone():
    series = SpendSeries(history_weeks=1)
    series.add(1000.0, 5)
    series.add(1000.0 + 200 * HOUR, 7)  # more than a week later: the ring has wrapped
    assert series.hour_total(0) is None
    assert series.hour_total(int((1000.0 + 200 * HOUR) // HOUR)) == 7
    assert series.hour_total(int((1000.0 + 199 * HOUR) // HOUR)) == 0


def test_a_late_record_lands_in_its_own_minute_and_hour():
    series = SpendSeries(history_weeks=1)
    series.add(10 * HOUR + 30 * 60, 100)
    series.add(10 * HOUR + 28 * 60, 50)  # written back late, out of order
    assert series.window(10 * HOUR + 30 * 60, 300) == (150, 2)
    assert series.hour_total(10) == 150


# --- forecasts -------------------------------------------------------------------------------


def test_a_key_spending_fast_is_forecast_to_run_out_before_its_period_ends():
    detector = AnomalyDetector()
    now = datetime(2026, 11, 6, 12, tzinfo=UTC)
    start = datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    # $8 a day, evenly: $40 spent of $100 after five and a half days
    at = start
    while at < now.timestamp():
        detector.add(SCOPE, at, 8_000_000 // 24)
        at += HOUR
    rate = detector.rate(SCOPE, now.timestamp())
    assert rate == pytest.approx(8_000_000 / 24, rel=0.01)
    forecast = forecast_exhaustion(44_000_000, 100_000_000, rate, now,
                                   datetime(2026, 12, 1, tzinfo=UTC))
    assert forecast.flagged
    assert forecast.exhausts_at is not None
    assert abs(forecast.exhausts_at - (now + timedelta(days=7))) < timedelta(hours=2)


def test_a_key_spending_slowly_is_not_flagged():
    now = datetime(2026, 11, 6, 12, tzinfo=UTC)
    forecast = forecast_exhaustion(10_000_000, 100_000_000, 100_000.0, now,
                                   datetime(2026, 12, 1, tzinfo=UTC))
    assert not forecast.flagged
    assert forecast.exhausts_at is not None and forecast.exhausts_at > datetime(
        2026, 12, 1, tzinfo=UTC)


def test_a_key_without_spend_never_runs_out_and_a_spent_one_already_has():
    now = datetime(2026, 11, 6, tzinfo=UTC)
    idle = forecast_exhaustion(0, 100, 0.0, now, None)
    assert (idle.exhausts_at, idle.flagged) == (None, False)
    spent = forecast_exhaustion(100, 100, 5.0, now, None)
    assert spent.exhausted and spent.exhausts_at == now and not spent.flagged


def test_a_total_budget_is_flagged_within_the_horizon_only():
    now = datetime(2026, 11, 6, tzinfo=UTC)
    soon = forecast_exhaustion(0, 48 * HOUR, 3600.0, now, None)  # runs out in 2 days
    later = forecast_exhaustion(0, 30 * 24 * HOUR, 3600.0, now, None)  # in 30 days
    assert soon.flagged and not later.flagged
