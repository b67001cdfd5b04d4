# ruff: noqa: E501  (the tables below read best one case a line)
"""Reading typed times: every accepted form across time zones and daylight-saving edges, and every refusal.

`now` is fixed in every case: the same text and `now` always read the same, whatever the machine's zone.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.errors import ValidationFailed
from cogs._common.timeparse import parse_when

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a Sunday
# Europe/Berlin: clocks forward 2026-03-29 02:00 → 03:00, back 2026-10-25 03:00 → 02:00.
# America/New_York: clocks forward 2026-03-08 02:00 → 03:00, back 2026-11-01 02:00 → 01:00.
SAT_BEFORE_BERLIN_SPRING = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # Sat 13:00 in Berlin (CET)
SAT_BEFORE_NY_SPRING = datetime(2026, 3, 7, 17, 0, tzinfo=UTC)  # Sat 12:00 in New York (EST)
SAT_BEFORE_BERLIN_AUTUMN = datetime(2026, 10, 24, 10, 0, tzinfo=UTC)  # Sat 12:00 in Berlin (CEST)
SAT_BEFORE_NY_AUTUMN = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # Sat 12:00 in New York (EDT)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "timezone", "now", "expected", "reading"),
    [
        # today's formats
        ("2026-03-02T19:00+01:00", "UTC", NOW, utc(2026, 3, 2, 18), "Mon 2 Mar 2026 18:00 UTC"),
        ("2026-03-02T19:00Z", "Europe/Berlin", NOW, utc(2026, 3, 2, 19), "Mon 2 Mar 2026 20:00 Europe/Berlin"),
        ("2026-03-02 19:00", "Europe/Berlin", NOW, utc(2026, 3, 2, 18), "Mon 2 Mar 2026 19:00 Europe/Berlin"),
        ("2026-03-02T19:00", "America/New_York", NOW, utc(2026, 3, 3, 0), "Mon 2 Mar 2026 19:00 America/New_York"),
        ("2026-03-02 19:00:30", "UTC", NOW, utc(2026, 3, 2, 19, 0, 30), "Mon 2 Mar 2026 19:00 UTC"),
        ("<t:1772560800>", "UTC", NOW, utc(2026, 3, 3, 18), "Tue 3 Mar 2026 18:00 UTC"),
        ("<t:1772560800:F>", "Europe/Berlin", NOW, utc(2026, 3, 3, 18), "Tue 3 Mar 2026 19:00 Europe/Berlin"),
        ("<t:1772560800:R>", "UTC", NOW, utc(2026, 3, 3, 18), None),
        ("in 2h30m", "UTC", NOW, NOW + timedelta(hours=2, minutes=30), None),
        ("in 90m", "UTC", NOW, NOW + timedelta(minutes=90), None),
        ("In 1h", "UTC", NOW, NOW + timedelta(hours=1), None),
        ("in 1d 2h", "UTC", NOW, NOW + timedelta(days=1, hours=2), None),
        ("  in 45 minutes ", "UTC", NOW, NOW + timedelta(minutes=45), None),
        # natural wall times
        ("19:00", "UTC", NOW, utc(2026, 3, 1, 19), "Sun 1 Mar 2026 19:00 UTC"),
        ("11:00", "UTC", NOW, utc(2026, 3, 2, 11), "Mon 2 Mar 2026 11:00 UTC"),  # passed today: tomorrow's
        ("8pm", "Europe/Berlin", NOW, utc(2026, 3, 1, 19), "Sun 1 Mar 2026 20:00 Europe/Berlin"),
        ("Friday 19:00", "UTC", NOW, utc(2026, 3, 6, 19), "Fri 6 Mar 2026 19:00 UTC"),
        ("friday at 7:30pm", "America/New_York", NOW, utc(2026, 3, 7, 0, 30), "Fri 6 Mar 2026 19:30 America/New_York"),
        ("Sun 20:00", "Europe/Berlin", NOW, utc(2026, 3, 1, 19), "Sun 1 Mar 2026 20:00 Europe/Berlin"),  # tonight
        ("Sun 10:00", "Europe/Berlin", NOW, utc(2026, 3, 8, 9), "Sun 8 Mar 2026 10:00 Europe/Berlin"),  # passed
        ("tomorrow 8pm", "UTC", NOW, utc(2026, 3, 2, 20), "Mon 2 Mar 2026 20:00 UTC"),
        ("tomorrow at noon", "Europe/Berlin", NOW, utc(2026, 3, 2, 11), "Mon 2 Mar 2026 12:00 Europe/Berlin"),
        ("in 90 minutes", "Europe/Berlin", NOW, NOW + timedelta(minutes=90), "Sun 1 Mar 2026 14:30 Europe/Berlin"),
        ("5 Jun 19:00", "Europe/Berlin", NOW, utc(2026, 6, 5, 17), "Fri 5 Jun 2026 19:00 Europe/Berlin"),
        ("13/6 20:00", "UTC", NOW, utc(2026, 6, 13, 20), None),  # only one reading: 13 is no month
        ("6/13 8pm", "UTC", NOW, utc(2026, 6, 13, 20), None),
        ("7/7 19:00", "UTC", NOW, utc(2026, 7, 7, 19), None),  # day and month equal: one reading
        ("19:00 UTC", "Europe/Berlin", NOW, utc(2026, 3, 1, 19), "Sun 1 Mar 2026 20:00 Europe/Berlin"),
        # across the spring change: a wall time is that wall time on its day, a duration is exact
        ("tomorrow 8pm", "Europe/Berlin", SAT_BEFORE_BERLIN_SPRING, utc(2026, 3, 29, 18), "Sun 29 Mar 2026 20:00 Europe/Berlin"),
        ("in 24 hours", "Europe/Berlin", SAT_BEFORE_BERLIN_SPRING, utc(2026, 3, 29, 12), "Sun 29 Mar 2026 14:00 Europe/Berlin"),
        ("sunday 03:00", "Europe/Berlin", SAT_BEFORE_BERLIN_SPRING, utc(2026, 3, 29, 1), "Sun 29 Mar 2026 03:00 Europe/Berlin"),
        ("tomorrow 8pm", "America/New_York", SAT_BEFORE_NY_SPRING, utc(2026, 3, 9, 0), "Sun 8 Mar 2026 20:00 America/New_York"),
        ("tomorrow 1:59am", "America/New_York", SAT_BEFORE_NY_SPRING, utc(2026, 3, 8, 6, 59), None),
        ("tomorrow 8pm", "UTC", SAT_BEFORE_BERLIN_SPRING, utc(2026, 3, 29, 20), "Sun 29 Mar 2026 20:00 UTC"),
        # across the autumn change
        ("tomorrow 8pm", "Europe/Berlin", SAT_BEFORE_BERLIN_AUTUMN, utc(2026, 10, 25, 19), "Sun 25 Oct 2026 20:00 Europe/Berlin"),
        ("2026-10-25T02:30+01:00", "Europe/Berlin", SAT_BEFORE_BERLIN_AUTUMN, utc(2026, 10, 25, 1, 30), None),
        ("2026-10-25T02:30+02:00", "Europe/Berlin", SAT_BEFORE_BERLIN_AUTUMN, utc(2026, 10, 25, 0, 30), None),
        ("tomorrow 8pm", "America/New_York", SAT_BEFORE_NY_AUTUMN, utc(2026, 11, 2, 1), "Sun 1 Nov 2026 20:00 America/New_York"),
        ("in 24 hours", "America/New_York", SAT_BEFORE_NY_AUTUMN, utc(2026, 11, 1, 16), "Sun 1 Nov 2026 11:00 America/New_York"),
    ],
)  # fmt: skip
def test_accepted_forms(text: str, timezone: str, now: datetime, expected: datetime, reading: str | None) -> None:
    when = parse_when(text, timezone=timezone, now=now)
    assert when.at == expected
    assert when.at.tzinfo is not None and when.at.utcoffset() == timedelta(0)
    if reading is not None:
        assert when.reading == reading
    assert when.echo == f"{when.reading} → <t:{int(expected.timestamp())}:F>"


@pytest.mark.parametrize(
    ("text", "timezone", "now", "message"),
    [
        ("tomorrow 2:30", "Europe/Berlin", SAT_BEFORE_BERLIN_SPRING, "Sun 29 Mar 2026 02:30 does not exist in Europe/Berlin (the clocks jump forward an hour then); pick another time."),
        ("2026-03-29 02:30", "Europe/Berlin", NOW, "Sun 29 Mar 2026 02:30 does not exist in Europe/Berlin"),
        ("tomorrow 2:30am", "America/New_York", SAT_BEFORE_NY_SPRING, "Sun 8 Mar 2026 02:30 does not exist in America/New_York"),
        ("sunday 2:30", "Europe/Berlin", SAT_BEFORE_BERLIN_AUTUMN, "Sun 25 Oct 2026 02:30 happens twice in Europe/Berlin (the clocks go back an hour then): first at <t:1792888200:F>, then at <t:1792891800:F>. Say which with its offset: `2026-10-25T02:30+02:00` or `2026-10-25T02:30+01:00`."),
        ("2026-10-25 02:30", "Europe/Berlin", NOW, "Sun 25 Oct 2026 02:30 happens twice in Europe/Berlin"),
        ("tomorrow 1:30am", "America/New_York", SAT_BEFORE_NY_AUTUMN, "Sun 1 Nov 2026 01:30 happens twice in America/New_York (the clocks go back an hour then): first at <t:1793511000:F>, then at <t:1793514600:F>. Say which with its offset: `2026-11-01T01:30-04:00` or `2026-11-01T01:30-05:00`."),
        ("5/6", "UTC", NOW, "`5/6` could mean Fri 5 June 2026 or Wed 6 May 2026; write the month as a word, like `5 Jun` or `6 May`."),
        ("5/6 19:00", "Europe/Berlin", NOW, "`5/6` could mean Fri 5 June 2026 or Wed 6 May 2026; write the month as a word, like `5 Jun 19:00` or `6 May 19:00`."),
        ("05.06. 20:00", "UTC", NOW, "`05.06.` could mean Fri 5 June 2026 or Wed 6 May 2026"),
        ("2/1/2027 8pm", "America/New_York", NOW, "`2/1/2027` could mean Sat 2 January 2027 or Mon 1 February 2027; write the month as a word, like `2 Jan 8pm` or `1 Feb 8pm`."),
    ],
)  # fmt: skip
def test_ambiguous_and_skipped_times_are_refused_with_the_readings(
    text: str, timezone: str, now: datetime, message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, timezone=timezone, now=now)
    assert caught.value.message.startswith(message), caught.value.message
    assert caught.value.field == "when"


@pytest.mark.parametrize(
    "text",
    [
        "tomorrow",
        "friday",
        "19h",
        "monday 8",
        "",
        "2026-03-02",
        "in",
        "in soon",
        "in 2:30",
        "in -1h",
        "in 0m",
        "<t:abc>",
        "2026-13-40 10:00",
        "asdf 19:00",
        "1772560800",
    ],
)
def test_unreadable_input_gets_examples(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, timezone="Europe/Berlin", now=NOW)
    message = caught.value.message
    assert "could not read" in message
    # The examples are valid input themselves; the dated ones are tomorrow at the next full hour in the zone.
    for example in ["14:00", "Monday 14:00", "tomorrow 8pm", "in 90 minutes", "2026-03-02 14:00", "in 2h30m"]:
        assert f"`{example}`" in message
        parse_when(example, timezone="Europe/Berlin", now=NOW)
    assert "`2026-03-02T14:00+01:00`" in message and "<t:1772456400:F>" in message


def test_text_without_a_time_of_day_is_told_to_add_one() -> None:
    with pytest.raises(ValidationFailed, match="Add a time of day"):
        parse_when("friday", timezone="UTC", now=NOW)


@pytest.mark.parametrize("text", ["2026-03-01 11:59", "2026-02-01T10:00Z", "<t:1700000000:F>", "2026-03-01 12:00"])
def test_past_times_are_refused(text: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_when(text, timezone="UTC", now=NOW)
    assert "is in the past" in caught.value.message and "for example" in caught.value.message


def test_far_future_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="five years"):
        parse_when("2040-01-01 10:00", timezone="UTC", now=NOW)


def test_unknown_timezone_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="unknown timezone 'Mars/Base'"):
        parse_when("2026-03-02 19:00", timezone="Mars/Base", now=NOW)


@pytest.mark.parametrize("machine_zone", ["UTC", "Pacific/Kiritimati", "America/Los_Angeles"])
def test_the_machines_zone_changes_nothing(monkeypatch: pytest.MonkeyPatch, machine_zone: str) -> None:
    monkeypatch.setenv("TZ", machine_zone)
    time.tzset()
    try:
        readings = [parse_when(text, timezone="Europe/Berlin", now=NOW).at for text in ("19:00", "Friday 8pm")]
    finally:
        monkeypatch.undo()
        time.tzset()
    assert readings == [utc(2026, 3, 1, 18), utc(2026, 3, 6, 19)]
