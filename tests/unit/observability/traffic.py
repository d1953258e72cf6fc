"""Synthetic spend for the anomaly tests: deterministic, with daily and weekly cycles."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime

__all__ = ["MONDAY", "normal_rate", "requests_between"]

MONDAY = datetime(2026, 11, 2, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC


def normal_rate(at_s: float, peak_per_hour: float = 400.0) -> float:
    """Requests per hour: a night floor, a working-day hump (08-19 h), and weekends at 30 %."""
    hour = (at_s % 86_400) / 3600
    weekday = int(((at_s - MONDAY) // 86_400) % 7)
    day = max(0.0, math.sin(math.pi * (hour - 7) / 13)) if 7 <= hour <= 20 else 0.0
    rate = peak_per_hour * (0.08 + 0.92 * day)
    return rate * (0.3 if weekday >= 5 else 1.0)


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def requests_between(rng: random.Random, start_s: float, end_s: float, *,
                     cost_micros: int = 50_000, factor: float = 1.0,
                     peak_per_hour: float = 400.0) -> Iterator[tuple[float, int]]:
    """(time, cost) of each request, minute by minute; costs vary ±50 % around `cost_micros`."""
    minute = start_s
    while minute < end_s:
        mean = normal_rate(minute, peak_per_hour) * factor / 60
        for _ in range(_poisson(rng, mean)):
            yield minute + rng.random() * 60, int(cost_micros * rng.uniform(0.5, 1.5))
        minute += 60
