from datetime import UTC, datetime, timedelta

import pytest

from racetime.durations import format_datetime, format_duration, parse_datetime, parse_duration
from tests.fakes.racetime_data import load_json, past_races


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P0DT00H00M15S", timedelta(seconds=15)),
        ("P1DT00H00M00S", timedelta(hours=24)),
        ("P2DT00H00M00S", timedelta(hours=48)),
        ("P0DT00H00M00S", timedelta(0)),
        ("P0DT01H23M45.678901S", timedelta(hours=1, minutes=23, seconds=45, microseconds=678901)),
        ("P1DT02H00M00S", timedelta(days=1, hours=2)),
        ("P0DT00H00M01.000001S", timedelta(seconds=1, microseconds=1)),
        ("P0DT00H00M01.5S", timedelta(seconds=1, microseconds=500000)),
        ("-P0DT00H00M15S", timedelta(seconds=-15)),
    ],
)
def test_parse_duration_is_exact(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "PT15S",
        "P0DT00H00M15",
        "P0D",
        "0:00:15",
        "P0DT00H00M15.1234567S",
        " P0DT00H00M15S",
        "P0DT00H00M15S\n",
    ],
)
def test_parse_duration_rejects_anything_else(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_duration_rejects_non_strings():
    with pytest.raises(ValueError):
        parse_duration(15)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("td", "text"),
    [
        (timedelta(seconds=15), "P0DT00H00M15S"),
        (timedelta(hours=24), "P1DT00H00M00S"),
        (timedelta(hours=1, minutes=23, seconds=45, microseconds=678901), "P0DT01H23M45.678901S"),
        (timedelta(microseconds=5), "P0DT00H00M00.000005S"),
        (timedelta(seconds=-15), "-P0DT00H00M15S"),
        (timedelta(days=3, hours=1), "P3DT01H00M00S"),
    ],
)
def test_format_duration_matches_django(td, text):
    assert format_duration(td) == text
    assert parse_duration(text) == td


def test_every_real_finish_time_round_trips():
    finish_times = [e["finish_time"] for race in past_races() for e in race["entrants"] if e["finish_time"]]
    assert len(finish_times) == 76
    for text in finish_times:
        assert format_duration(parse_duration(text)) == text


def test_parse_datetime_variants():
    expected = datetime(2025, 6, 14, 18, 0, 27, 123000, tzinfo=UTC)
    assert parse_datetime("2025-06-14T18:00:27.123Z") == expected
    assert parse_datetime("2025-06-14T18:00:27.123+00:00") == expected
    assert parse_datetime("2025-06-14T18:00:27Z") == expected.replace(microsecond=0)
    exact = parse_datetime("2026-11-30T21:21:11.788482+00:00")
    assert exact.microsecond == 788482 and exact.utcoffset() == timedelta(0)
    assert parse_datetime("2025-06-14T20:00:27.123+02:00") == expected
    assert parse_datetime(None) is None


@pytest.mark.parametrize("text", ["2025-06-14T18:00:27", "2025-06-14", "yesterday", ""])
def test_parse_datetime_rejects_naive_or_malformed(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_format_datetime_truncates_to_milliseconds():
    assert format_datetime(datetime(2025, 6, 14, 19, 24, 12, 802357, tzinfo=UTC)) == "2025-06-14T19:24:12.802Z"
    assert format_datetime(datetime(2025, 6, 14, 18, 0, 27, tzinfo=UTC)) == "2025-06-14T18:00:27Z"
    assert format_datetime(datetime(2025, 6, 14, 18, 0, 27, 999, tzinfo=UTC)) == "2025-06-14T18:00:27.000Z"
    with pytest.raises(ValueError):
        format_datetime(datetime(2025, 6, 14))  # noqa: DTZ001 (naive on purpose: it must be refused)


def test_every_captured_datetime_round_trips():
    race = load_json("captured/race_finished.json")
    texts = [race[k] for k in ("opened_at", "started_at", "ended_at")]
    texts += [e["finished_at"] for e in race["entrants"] if e["finished_at"]]
    texts += [r["ended_at"] for r in past_races()]
    for text in texts:
        assert format_datetime(parse_datetime(text)) == text
