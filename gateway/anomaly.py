"""Cost-anomaly detection and budget-exhaustion forecasts: pure code, the clock passed in.

The detector learns each scope's normal spend rate (a virtual key, `key:<id>`, or a customer,
`customer:<id>`) from the usage ledger and flags a sudden spike — a runaway agent loop, a leaked
key — within minutes, without alarming on the ordinary daily and weekly swings.

Series. Each scope keeps its spend in hourly buckets for `history_weeks` weeks and in minute
buckets for the last hour (ring buffers of integers: ~5 KB per scope with 4 weeks).

Baseline (robust, by hour of week). For the current hour h, the samples are the hourly totals of
the same hour of week in each past week, and of its two neighbours (h-1, h+1: a ramp that starts
a little earlier or later, or a DST shift, stays normal). The level is the slot's median, raised
to its mean with the nearer neighbour's median when that is higher; the spread is the MAD of the
samples around their slot's median (scaled by 1.4826 to a standard deviation, and never below
10 % of the level). The upper end of normal is `level + 3 spread`. Medians and MADs ignore a
few abnormal weeks, which means and standard deviations would not. With less than a week of
history the same is done with the same hour of the previous days (a daily baseline); with less
than a day, nothing is flagged (cold start).

Spike. The rate over the last `window` (5 minutes by default) is a spike when it reaches
`ratio` (3) times the upper end of normal *and* the floor (`min_rate`, $1/hour by default), the
window holds at least `min_requests` (3) requests — one expensive request is not a spike — *and*
that many requests would be a freak at the upper end of normal: the normal spend over the window,
in requests of the window's own average cost, is the mean of a Poisson count, and the observed
count must be in its upper tail beyond `alpha` (1e-6). That last test keeps a quiet key (a few
requests an hour) from alarming on three requests that happen to arrive together, while a key
whose requests suddenly cost a hundred times more is flagged on a handful of them. A spike is
resolved once the rate over the last 15 minutes is back under the threshold.

Forecast. The spend rate of the last 24 hours (a younger scope counts as idle before its first
record) extrapolates the time the budget runs out; it is flagged when that is before the period
ends (or within 7 days for a `total` budget).
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median
from typing import Literal

__all__ = [
    "AnomalyDetector",
    "Assessment",
    "Baseline",
    "Change",
    "DetectorSettings",
    "Forecast",
    "SpendSeries",
    "baseline",
    "forecast_exhaustion",
    "poisson_tail",
]

HOUR = 3600
MINUTE = 60
WEEK_HOURS = 168
_MINUTE_SLOTS = 61
_MAD_SCALE = 1.4826  # MAD → standard deviation for normally distributed data


@dataclass(frozen=True, slots=True)
class DetectorSettings:
    window_seconds: int = 5 * MINUTE
    history_weeks: int = 4
    ratio: float = 3.0
    min_rate_micros_per_hour: int = 1_000_000
    spread_k: float = 3.0
    min_spread_fraction: float = 0.1
    min_requests: int = 3
    alpha: float = 1e-6
    cold_start_hours: int = 24
    resolve_seconds: int = 15 * MINUTE
    forecast_seconds: int = 24 * HOUR
    forecast_horizon: timedelta = timedelta(days=7)

    def __post_init__(self) -> None:
        if not MINUTE <= self.window_seconds <= (_MINUTE_SLOTS - 1) * MINUTE:
            raise ValueError("window_seconds must be from 60 to 3600")
        if not MINUTE <= self.resolve_seconds <= (_MINUTE_SLOTS - 1) * MINUTE:
            raise ValueError("resolve_seconds must be from 60 to 3600")
        if self.history_weeks < 1:
            raise ValueError("history_weeks must be >= 1")


class SpendSeries:
    """One scope's spend: hourly buckets over `history_weeks` weeks, minute buckets (spend and
    request count) over the last hour. Records may arrive late and out of order."""

    __slots__ = ("_hours", "_hour_head", "_minutes", "_counts", "_minute_head", "first_s")

    def __init__(self, history_weeks: int) -> None:
        size = WEEK_HOURS * history_weeks + 3
        self._hours = array("q", bytes(8 * size))
        self._hour_head: int | None = None
        self._minutes = array("q", bytes(8 * _MINUTE_SLOTS))
        self._counts = array("q", bytes(8 * _MINUTE_SLOTS))
        self._minute_head: int | None = None
        self.first_s: float | None = None

    # --- writing -------------------------------------------------------------------------------

    @staticmethod
    def _advance(ring: array[int], head: int | None, to: int,
                 also: array[int] | None = None) -> int:
        """Move a ring's head to `to`, zeroing every slot it passes (at most one lap)."""
        if head is None:
            return to
        if to <= head:
            return head
        size = len(ring)
        for index in range(max(head + 1, to - size + 1), to + 1):
            ring[index % size] = 0
            if also is not None:
                also[index % size] = 0
        return to

    def advance(self, now_s: float) -> None:
        """Bring both rings up to `now_s` (a quiet scope's old buckets read as zero)."""
        if self._hour_head is not None:
            self._hour_head = self._advance(self._hours, self._hour_head, int(now_s // HOUR))
        if self._minute_head is not None:
            self._minute_head = self._advance(self._minutes, self._minute_head,
                                              int(now_s // MINUTE), self._counts)

    def add(self, at_s: float, micros: int, requests: int = 1) -> None:
        if self.first_s is None or at_s < self.first_s:
            self.first_s = at_s
        hour = int(at_s // HOUR)
        self._hour_head = self._advance(self._hours, self._hour_head, hour)
        size = len(self._hours)
        if hour > self._hour_head - size:
            self._hours[hour % size] += micros
        minute = int(at_s // MINUTE)
        self._minute_head = self._advance(self._minutes, self._minute_head, minute,
                                          self._counts)
        if minute > self._minute_head - _MINUTE_SLOTS:
            self._minutes[minute % _MINUTE_SLOTS] += micros
            self._counts[minute % _MINUTE_SLOTS] += requests

    # --- reading -------------------------------------------------------------------------------

    def hour_total(self, hour: int) -> int | None:
        """Spend in the hour starting at `hour * 3600`; None when it is out of the ring or
        before the scope's first record."""
        head = self._hour_head
        if head is None or self.first_s is None or hour < int(self.first_s // HOUR):
            return None
        if hour > head:
            return 0
        if hour <= head - len(self._hours):
            return None
        return self._hours[hour % len(self._hours)]

    def window(self, now_s: float, seconds: int) -> tuple[int, int]:
        """(spend, requests) in the minute buckets covering the last `seconds` up to now."""
        head = self._minute_head
        if head is None:
            return 0, 0
        last = int(now_s // MINUTE)
        first = last - seconds // MINUTE + 1
        spend = requests = 0
        for minute in range(max(first, head - _MINUTE_SLOTS + 1), min(last, head) + 1):
            spend += self._minutes[minute % _MINUTE_SLOTS]
            requests += self._counts[minute % _MINUTE_SLOTS]
        return spend, requests

    def rate(self, now_s: float, seconds: int) -> float:
        """Average spend per hour over the whole hours of the last `seconds` and the current,
        partial one. A scope younger than that counts as idle before its first record, so one
        early burst is not extrapolated into a forecast."""
        first = int((now_s - seconds) // HOUR) + 1
        span = now_s - first * HOUR
        if span <= 0:
            return 0.0
        total = 0
        for hour in range(first, int(now_s // HOUR) + 1):
            total += self.hour_total(hour) or 0
        return total * HOUR / span


def poisson_tail(k: int, mean: float) -> float:
    """P(N >= k) for N ~ Poisson(mean)."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if mean > 500:  # normal approximation with continuity correction
        return 0.5 * math.erfc((k - 0.5 - mean) / math.sqrt(2 * mean))
    term = math.exp(-mean)
    below = 0.0
    for i in range(k):
        below += term
        term *= mean / (i + 1)
        if term < 1e-300 and i > mean:
            break
    return max(0.0, 1.0 - below)


@dataclass(frozen=True, slots=True)
class Baseline:
    level: float
    """Normal spend per hour now: this hour-of-week slot's median, or its mean with the nearer
    neighbouring slot's median when that is higher."""
    spread: float
    """Robust standard deviation of an hour's spend around its slot's median."""
    kind: Literal["weekly", "daily"]
    samples: int

    def upper(self, k: float) -> float:
        return self.level + k * self.spread


def baseline(series: SpendSeries, now_s: float,
             settings: DetectorSettings = DetectorSettings()) -> Baseline | None:
    """The scope's normal hourly spend for the hour containing `now_s` (None: cold start)."""
    if series.first_s is None:
        return None
    hour = int(now_s // HOUR)
    first_full = int(series.first_s // HOUR) + 1  # the first hour is partial: not a sample

    def collect(step: int, count: int) -> dict[int, list[int]]:
        slots: dict[int, list[int]] = {-1: [], 0: [], 1: []}
        for back in range(1, count + 1):
            for shift in (-1, 0, 1):
                index = hour - step * back + shift
                if index < first_full:
                    continue
                value = series.hour_total(index)
                if value is not None:
                    slots[shift].append(value)
        return slots

    slots = collect(WEEK_HOURS, settings.history_weeks)
    kind: Literal["weekly", "daily"] = "weekly"
    if not slots[0]:
        if hour - first_full < settings.cold_start_hours:
            return None
        slots, kind = collect(24, 6), "daily"
        if not slots[0]:
            return None
    medians = {shift: median(values) for shift, values in slots.items() if values}
    deviations = [abs(v - medians[shift]) for shift, values in slots.items() for v in values]
    # Late in the hour the next hour's level matters, early in it the previous one's: a
    # morning ramp that comes a little early is still normal.
    near = 1 if now_s % HOUR >= HOUR / 2 else -1
    level = float(medians[0])
    if near in medians:
        level = max(level, (medians[0] + medians[near]) / 2)
    spread = max(_MAD_SCALE * float(median(deviations)), settings.min_spread_fraction * level)
    return Baseline(level, spread, kind, len(deviations))


@dataclass(frozen=True, slots=True)
class Assessment:
    """One look at one scope: its recent rate and, when it has a baseline, the threshold."""

    scope: str
    at_s: float
    rate: float
    """Spend per hour over the detection window, in micro-dollars."""
    requests: int
    baseline: Baseline | None
    threshold: float | None
    spike: bool


@dataclass(frozen=True, slots=True)
class Change:
    """A scope entering (`firing`) or leaving (`resolved`) the spike state."""

    scope: str
    status: Literal["firing", "resolved"]
    assessment: Assessment
    since_s: float


@dataclass
class AnomalyDetector:
    """Spend series for every scope seen, and which scopes are in a spike right now."""

    settings: DetectorSettings = field(default_factory=DetectorSettings)
    series: dict[str, SpendSeries] = field(default_factory=dict)
    active: dict[str, Assessment] = field(default_factory=dict)

    def add(self, scope: str, at_s: float, micros: int, requests: int = 1) -> None:
        series = self.series.get(scope)
        if series is None:
            series = self.series[scope] = SpendSeries(self.settings.history_weeks)
        series.add(at_s, micros, requests)

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the series of scopes that are no longer configured."""
        wanted = set(keep)
        for scope in [s for s in self.series if s not in wanted]:
            del self.series[scope]
            self.active.pop(scope, None)

    def assess(self, scope: str, now_s: float) -> Assessment:
        s = self.settings
        series = self.series.get(scope)
        if series is None:
            return Assessment(scope, now_s, 0.0, 0, None, None, False)
        series.advance(now_s)
        spend, requests = series.window(now_s, s.window_seconds)
        rate = spend * HOUR / s.window_seconds
        base = baseline(series, now_s, s)
        if base is None:
            return Assessment(scope, now_s, rate, requests, None, None, False)
        upper = base.upper(s.spread_k)
        threshold = max(s.ratio * upper, float(s.min_rate_micros_per_hour))
        spike = rate >= threshold and requests >= s.min_requests
        if spike:
            expected = upper * s.window_seconds / HOUR / (spend / requests)
            spike = poisson_tail(requests, expected) <= s.alpha
        return Assessment(scope, now_s, rate, requests, base, threshold, spike)

    def evaluate(self, now_s: float, scopes: Iterable[str] | None = None) -> list[Change]:
        """Assess every scope (or those given) and return what changed since the last call."""
        changes: list[Change] = []
        for scope in list(self.series if scopes is None else scopes):
            assessment = self.assess(scope, now_s)
            started = self.active.get(scope)
            if started is None:
                if assessment.spike:
                    self.active[scope] = assessment
                    changes.append(Change(scope, "firing", assessment, now_s))
                continue
            if assessment.spike or not self._calm(scope, now_s, started):
                continue
            del self.active[scope]
            changes.append(Change(scope, "resolved", assessment, started.at_s))
        return changes

    def _calm(self, scope: str, now_s: float, started: Assessment) -> bool:
        s = self.settings
        if now_s - started.at_s < s.window_seconds:
            return False
        spend, _ = self.series[scope].window(now_s, s.resolve_seconds)
        rate = spend * HOUR / s.resolve_seconds
        return started.threshold is None or rate < started.threshold

    def rate(self, scope: str, now_s: float) -> float:
        """Spend per hour over the forecast window (micro-dollars), 0 for an unknown scope."""
        series = self.series.get(scope)
        return series.rate(now_s, self.settings.forecast_seconds) if series else 0.0


@dataclass(frozen=True, slots=True)
class Forecast:
    rate_micros_per_hour: float
    exhausts_at: datetime | None
    """When the budget runs out at the current rate (None: no spend, so never)."""
    exhausted: bool
    """Nothing is left already."""
    flagged: bool
    """It runs out before the period ends (or within the horizon for a `total` budget)."""


def forecast_exhaustion(spent_micros: int, limit_micros: int, rate_micros_per_hour: float,
                        now: datetime, period_end: datetime | None,
                        horizon: timedelta = timedelta(days=7)) -> Forecast:
    remaining = limit_micros - spent_micros
    if remaining <= 0:
        return Forecast(rate_micros_per_hour, now, True, False)
    if rate_micros_per_hour <= 0 or not math.isfinite(rate_micros_per_hour):
        return Forecast(0.0, None, False, False)
    hours = remaining / rate_micros_per_hour
    if hours > 24 * 365 * 100:
        return Forecast(rate_micros_per_hour, None, False, False)
    exhausts_at = now + timedelta(hours=hours)
    end = period_end if period_end is not None else now + horizon
    return Forecast(rate_micros_per_hour, exhausts_at, False, exhausts_at < end)
