"""Budget periods: ids and boundaries, calendar-aligned in the budget's timezone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tollgate.gateway.periods import Period, period_end, period_id, period_start, zone

AT = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # a Friday


@pytest.mark.parametrize(
    ("period", "expected_id", "start", "end"),
    [
        ("daily", "2026-11-27", datetime(2026, 11, 27, tzinfo=UTC),
         datetime(2026, 11, 28, tzinfo=UTC)),
        ("weekly", "2026-W48", datetime(2026, 11, 23, tzinfo=UTC),
         datetime(2026, 11, 30, tzinfo=UTC)),
        ("monthly", "2026-11", datetime(2026, 11, 1, tzinfo=UTC),
         datetime(2026, 12, 1, tzinfo=UTC)),
        ("total", "total", None, None),
    ],
    ids=["daily", "weekly", "monthly", "total"],
)
def test_each_period_has_an_id_a_start_and_an_end(
    period: Period, expected_id: str, start: datetime | None, end: datetime | None
) -> None:
    assert period_id(period, AT) == expected_id
    assert period_start(period, AT) == start
    assert period_end(period, AT) == end


def test_the_end_is_exclusive_and_the_next_period_begins_there() -> None:
    end = period_end("monthly", AT)
    assert end is not None
    assert period_id("monthly", end - timedelta(microseconds=1)) == "2026-11"
    assert period_id("monthly", end) == "2026-12"


def test_december_rolls_over_into_the_next_year() -> None:
    assert period_end("monthly", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == \
        datetime(2027, 1, 1, tzinfo=UTC)


def test_weeks_are_iso_weeks_with_the_iso_week_year() -> None:
    # 2026 has 53 ISO weeks; 1 January 2027 (a Friday) still belongs to 2026-W53.
    assert period_id("weekly", datetime(2026, 12, 31, tzinfo=UTC)) == "2026-W53"
    assert period_id("weekly", datetime(2027, 1, 1, tzinfo=UTC)) == "2026-W53"
    assert period_id("weekly", datetime(2027, 1, 4, tzinfo=UTC)) == "2027-W01"
    # 29 December 2025 (a Monday) starts 2026-W01.
    assert period_id("weekly", datetime(2025, 12, 29, tzinfo=UTC)) == "2026-W01"


def test_periods_follow_the_budget_timezone() -> None:
    late_utc = datetime(2026, 11, 30, 23, 30, tzinfo=UTC)  # already 1 December in Berlin
    assert period_id("monthly", late_utc) == "2026-11"
    assert period_id("monthly", late_utc, "Europe/Berlin") == "2026-12"
    end = period_end("monthly", late_utc, "Europe/Berlin")
    assert end == datetime(2027, 1, 1, tzinfo=zone("Europe/Berlin"))
    assert end is not None and end.astimezone(UTC) == datetime(2026, 12, 31, 23, tzinfo=UTC)
    assert period_id("daily", late_utc, "America/Los_Angeles") == "2026-11-30"


def test_a_day_across_a_dst_change_lasts_as_long_as_the_wall_clock_says() -> None:
    spring = datetime(2026, 3, 29, 12, tzinfo=UTC)  # Berlin springs forward that night
    start = period_start("daily", spring, "Europe/Berlin")
    end = period_end("daily", spring, "Europe/Berlin")
    assert start is not None and end is not None
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=23)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_id("daily", datetime(2026, 11, 27))


def test_an_unknown_timezone_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        period_id("daily", AT, "Mars/Olympus_Mons")


def test_an_unknown_period_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="unknown budget period"):
        period_id("hourly", AT)  # type: ignore[arg-type]
