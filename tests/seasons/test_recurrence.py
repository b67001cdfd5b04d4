"""Recurrence rules: local time kept across the DST changes of Europe/Berlin and America/New_York; bad rules refused."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.errors import ValidationFailed
from bot.services.recurrence import build

HOUR = timedelta(hours=1)


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_berlin_stays_local_across_both_changes() -> None:
    # Saturdays 20:00 Berlin across 2026-03-29 (CET → CEST) and 2026-10-25 (CEST → CET).
    spring = build("FREQ=WEEKLY;BYDAY=SA", "Europe/Berlin", date(2026, 3, 21), time(20, 0), count=2, min_interval=HOUR)
    assert [o.starts_at for o in spring.occurrences()] == [_utc(2026, 3, 21, 19), _utc(2026, 3, 28, 19)]
    across = build("FREQ=WEEKLY;BYDAY=SU", "Europe/Berlin", date(2026, 3, 22), time(20, 0), count=2, min_interval=HOUR)
    assert [o.starts_at for o in across.occurrences()] == [_utc(2026, 3, 22, 19), _utc(2026, 3, 29, 18)]
    autumn = build("FREQ=WEEKLY;BYDAY=SA", "Europe/Berlin", date(2026, 10, 17), time(20, 0), count=3, min_interval=HOUR)
    assert [o.starts_at for o in autumn.occurrences()] == [
        _utc(2026, 10, 17, 18),
        _utc(2026, 10, 24, 18),
        _utc(2026, 10, 31, 19),
    ]
    assert [o.number for o in autumn.occurrences()] == [1, 2, 3]
    assert [o.local_date for o in autumn.occurrences()] == [date(2026, 10, 17), date(2026, 10, 24), date(2026, 10, 31)]


def test_daily_new_york_across_both_changes() -> None:
    # 2026-03-08 (EST → EDT) and 2026-11-01 (EDT → EST), 19:30 local every day.
    march = build("FREQ=DAILY", "America/New_York", date(2026, 3, 7), time(19, 30), count=3, min_interval=HOUR)
    assert [o.starts_at for o in march.occurrences()] == [
        _utc(2026, 3, 8, 0, 30),
        _utc(2026, 3, 8, 23, 30),
        _utc(2026, 3, 9, 23, 30),
    ]
    november = build("FREQ=DAILY", "America/New_York", date(2026, 10, 31), time(19, 30), count=3, min_interval=HOUR)
    assert [o.starts_at for o in november.occurrences()] == [
        _utc(2026, 10, 31, 23, 30),
        _utc(2026, 11, 2, 0, 30),
        _utc(2026, 11, 3, 0, 30),
    ]


def test_a_repeated_local_time_is_the_first_of_the_two() -> None:
    rule = build("FREQ=WEEKLY;BYDAY=SU", "Europe/Berlin", date(2026, 10, 25), time(2, 30), count=1, min_interval=HOUR)
    assert [o.starts_at for o in rule.occurrences()] == [_utc(2026, 10, 25, 0, 30)]  # CEST, the first 02:30


def test_until_is_inclusive_and_count_ends() -> None:
    rule = build(
        "FREQ=WEEKLY;BYDAY=SA",
        "Europe/Berlin",
        date(2026, 3, 21),
        time(20, 0),
        until=_utc(2026, 4, 4, 18),
        min_interval=HOUR,
    )
    assert len(list(rule.occurrences())) == 3
    assert next(rule.occurrences(after=_utc(2026, 3, 22, 0), until=_utc(2026, 3, 30, 0))).number == 2


@pytest.mark.parametrize(
    ("rule", "start", "field", "words"),
    [
        ("FREQ=WEEKLY;BYDAY=SU", time(2, 30), "start_time", "does not exist in Europe/Berlin on 2026-03-29"),
        ("FREQ=MINUTELY", time(20, 0), "rrule", "at most every 1 hour"),
        ("FREQ=DAILY;BYMINUTE=0,30", time(20, 0), "rrule", "at most every 1 hour"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", time(20, 0), "rrule", "never occurs"),
        ("FREQ=SOMETIMES", time(20, 0), "rrule", "not an iCalendar RRULE"),
        ("FREQ=WEEKLY;DTSTART=20260101T000000", time(20, 0), "rrule", "must not contain DTSTART"),
        ("", time(20, 0), "rrule", "must not be empty"),
    ],
)
def test_bad_rules_are_refused_with_a_reason(rule: str, start: time, field: str, words: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        build(rule, "Europe/Berlin", date(2026, 3, 22), start, min_interval=HOUR)
    assert refused.value.field == field
    assert words in refused.value.message


def test_an_unknown_zone_is_refused() -> None:
    with pytest.raises(ValidationFailed) as refused:
        build("FREQ=WEEKLY", "Mars/Olympus", date(2026, 3, 22), time(20, 0), min_interval=HOUR)
    assert refused.value.field == "timezone"
