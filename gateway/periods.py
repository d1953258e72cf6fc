"""Budget periods: which period an instant falls in, and when that period ends.

Periods are calendar-aligned in an IANA timezone (UTC unless the budget says otherwise):

    daily    "2026-11-27"   local midnight to local midnight
    weekly   "2026-W48"     ISO 8601 week: Monday 00:00 to the next Monday 00:00, ISO week-year
    monthly  "2026-11"      the 1st 00:00 to the next 1st 00:00
    total    "total"        one period that never ends

The id is what the store keys counters by, so a new period starts from zero exactly at its
boundary, with no reset job. Ends are exclusive and timezone-aware; across a DST change a
"day" is 23 or 25 hours long, as the wall clock says. Pure functions only.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["Period", "period_end", "period_id", "period_start", "zone"]

Period = Literal["daily", "weekly", "monthly", "total"]

TOTAL = "total"


@lru_cache(maxsize=256)
def zone(name: str = "UTC") -> ZoneInfo:
    """The IANA timezone `name`; ValueError (not ZoneInfoNotFoundError) so config validation
    can report it as a field error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {name!r}; use an IANA name such as 'Europe/Berlin'") \
            from exc


def _local_date(now: datetime, tz: str) -> date:
    if now.tzinfo is None:
        # A naive datetime would silently mean "the machine's local time": refuse it.
        raise ValueError("`now` must be timezone-aware, e.g. datetime.now(UTC)")
    return now.astimezone(zone(tz)).date()


def _start_date(period: Period, day: date) -> date:
    if period == "daily":
        return day
    if period == "weekly":
        return day - timedelta(days=day.weekday())
    if period == "monthly":
        return day.replace(day=1)
    raise ValueError(f"unknown budget period {period!r}")


def _next_start_date(period: Period, start: date) -> date:
    if period == "daily":
        return start + timedelta(days=1)
    if period == "weekly":
        return start + timedelta(days=7)
    if start.month == 12:
        return date(start.year + 1, 1, 1)
    return date(start.year, start.month + 1, 1)


def _midnight(day: date, tz: str) -> datetime:
    # fold=0 maps a midnight skipped by a DST jump onto the jump itself, so ends stay ordered.
    return datetime.combine(day, time(0), tzinfo=zone(tz))


def period_id(period: Period, now: datetime, tz: str = "UTC") -> str:
    """The id of the period containing `now`, e.g. "2026-11", "2026-W48", "2026-11-27"."""
    if period == "total":
        return TOTAL
    day = _local_date(now, tz)
    if period == "daily":
        return day.isoformat()
    if period == "weekly":
        iso = day.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"
    if period == "monthly":
        return f"{day.year:04d}-{day.month:02d}"
    raise ValueError(f"unknown budget period {period!r}")


def period_start(period: Period, now: datetime, tz: str = "UTC") -> datetime | None:
    """When the period containing `now` began (aware, in `tz`); None for `total`."""
    if period == "total":
        return None
    return _midnight(_start_date(period, _local_date(now, tz)), tz)


def period_end(period: Period, now: datetime, tz: str = "UTC") -> datetime | None:
    """When the period containing `now` ends, exclusive (aware, in `tz`); None for `total`.

    This is also the instant a budget resets, which is what `Retry-After` points at."""
    if period == "total":
        return None
    start = _start_date(period, _local_date(now, tz))
    return _midnight(_next_start_date(period, start), tz)
