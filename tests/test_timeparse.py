"""Reading typed times: every accepted form, and every refusal with examples."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import ValidationFailed
from cogs._common.timeparse import parse_when

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "timezone", "expected"),
    [
        ("2026-03-02T19:00+01:00", "UTC", datetime(2026, 3, 2, 18, 0, tzinfo=UTC)),
        ("2026-03-02T19:00Z", "Europe/Berlin", datetime(2026, 3, 2, 19, 0, tzinfo=UTC)),
        ("2026-03-02 19:00", "Europe/Berlin", datetime(2026, 3, 2, 18, 0, tzinfo=UTC)),
        ("2026-03-02T19:00", "America/New_York", datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
        ("2026-03-02 19:00:30", "UTC", datetime(2026, 3, 2, 19, 0, 30, tzinfo=UTC)),
        ("<t:1772560800>", "UTC", datetime(2026, 3, 3, 18, 0, tzinfo=UTC)),
        ("<t:1772560800:F>", "UTC", datetime(2026, 3, 3, 18, 0, tzinfo=UTC)),
        ("<t:1772560800:R>", "UTC", datetime(2026, 3, 3, 18, 0, tzinfo=UTC)),
        ("in 2h30m", "UTC", NOW + timedelta(hours=2, minutes=30)),
        ("in 90m", "UTC", NOW + timedelta(minutes=90)),
        ("In 1h", "UTC", NOW + timedelta(hours=1)),
        ("in 1d 2h", "UTC", NOW + timedelta(days=1, hours=2)),
        ("  in 45 minutes ", "UTC", NOW + timedelta(minutes=45)),
    ],
)
def test_accepted_forms(text: str, timezone: str, expected: datetime) -> None:
    when = parse_when(text, timezone=timezone, now=NOW)
    assert when == expected
    assert when.tzinfo is not None and when.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "",
        "2026-03-02",
        "19:00",
        "in",
        "in soon",
        "in 2:30",
        "in -1h",
        "in 0m",
        "<t:abc>",
        "2026-13-40 10:00",
    ],
)
def test_unreadable_input_gets_examples(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, timezone="Europe/Berlin", now=NOW)
    message = caught.value.message
    assert "could not read" in message
    # The examples are valid input themselves, all for tomorrow at the next full hour in the given zone.
    assert "`2026-03-02 13:00` (Europe/Berlin)" in message and "`in 2h30m`" in message
    assert "`2026-03-02T13:00+01:00`" in message and "<t:1772452800:F>" in message
    assert parse_when("2026-03-02 13:00", timezone="Europe/Berlin", now=NOW) == datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.mark.parametrize("text", ["2026-03-01 11:59", "2026-02-01T10:00Z", "<t:1700000000:F>", "2026-03-01 12:00"])
def test_past_times_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, timezone="UTC", now=NOW)
    assert "is in the past" in caught.value.message and "for example" in caught.value.message


def test_far_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="five years"):
        parse_when("2040-01-01 10:00", timezone="UTC", now=NOW)


def test_time_skipped_by_daylight_saving_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="does not exist in Europe/Berlin"):
        parse_when("2026-03-29 02:30", timezone="Europe/Berlin", now=NOW)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="unknown timezone 'Mars/Base'"):
        parse_when("2026-03-02 19:00", timezone="Mars/Base", now=NOW)
