"""Reading the times people type into slash commands, and saying how they were read.

Accepted, in this order:
- a Discord timestamp `<t:1764612000>` with any style suffix (`<t:1764612000:F>`);
- a relative time `in 2h30m`, `in 90 minutes`, `in 1d 2h` (the duration is read by pytimeparse2 and added to
  the current instant, so it is exact across a daylight-saving change);
- ISO 8601 with an offset, `2026-12-01T19:00+01:00` or `...Z`;
- `YYYY-MM-DD HH:MM` (or with `T`, or with seconds) in the time zone given;
- natural wall times, read by `dateparser` (English): `19:00`, `8pm`, `Friday 19:00`, `tomorrow 8pm`,
  `Sat 20:00`, `5 Jun 19:00`, `13/6 20:00`. A bare time is its next occurrence, a weekday the next such day
  (today when the time is still ahead; `next Sat` is a week later).

The time zone is the command's `timezone` option, else the user's saved one (`/timezone set`), else the server's.
A wall time is placed in that zone with `zoneinfo`, never by the parser, so daylight saving is handled in one place:
a wall time the clocks skip is refused, and one they pass twice is refused with both instants shown. A numeric date
that reads two ways (`5/6`: 5 June or 6 May) is refused with both readings; so is text without a time of day, a
time not ahead, or one more than five years ahead. `dateparser` is imported on first use (it costs ~20 MB).

Everything is computed from the `now` given: the same text and `now` always read the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import pytimeparse2

from bot.errors import ValidationFailed
from bot.services.guilds import check_timezone

_DISCORD_TIMESTAMP = re.compile(r"<t:(-?\d{1,13})(?::[tTdDfFRsS])?>")
_RELATIVE = re.compile(r"in\s+(.+)", re.IGNORECASE)
_LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
# A time of day must be written out: `19:00`, `8pm`, `8:30 am`, noon, midnight. Without one, dateparser would take
# the current time ("tomorrow") or read a number as something else ("19h" as nineteen hours).
_CLOCK = re.compile(r"(?<![\d.])\d{1,2}:\d{2}(?!\d)|(?<!\d)\d{1,2}(:\d{2})?\s*[ap]\.?m\b|\bnoon\b|\bmidnight\b", re.I)
# A numeric day and month (`5/6`, `05.06.`, `5/6/2026`): day-first in most places, month-first in the US.
_NUMERIC_DATE = re.compile(r"(?<![\d:/.])(\d{1,2})\s*([/.])\s*(\d{1,2})(?:\2\s*(\d{4}|\d{2}))?\.?(?![\d:/])")
_WEEKDAY = re.compile(r"\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?(?!\w)", re.I)
# The latest time a race may be scheduled; also keeps `datetime` arithmetic far from its limits.
MAX_AHEAD = timedelta(days=366 * 5)
_PARSER_SETTINGS: dict[str, Any] = {
    "PREFER_DATES_FROM": "future",  # `19:00` after 19:00 is tomorrow's, `Friday` the coming one
    "PARSERS": ["relative-time", "absolute-time"],  # no Unix timestamps, no digits-only times like `1900`
}  # and RETURN_AS_TIMEZONE_AWARE left unset: aware only when the text names an offset or zone


@dataclass(frozen=True)
class ReadTime:
    """An instant and the time zone it was read in, which is how it is echoed back."""

    at: datetime  # aware, UTC
    timezone: str

    @property
    def local(self) -> datetime:
        return self.at.astimezone(ZoneInfo(self.timezone))

    @property
    def reading(self) -> str:
        """How it was read, as a wall time in its zone: `Sat 28 Mar 2026 20:00 Europe/Berlin`."""
        return f"{wall(self.local)} {self.timezone}"

    @property
    def echo(self) -> str:
        """The reading and the instant as a Discord timestamp (which each reader sees in their own zone)."""
        return f"{self.reading} → <t:{int(self.at.timestamp())}:F>"


def wall(local: datetime) -> str:
    return f"{local:%a} {local.day} {local:%b %Y %H:%M}"


def examples(timezone: str, now: datetime) -> str:
    """A line of valid inputs; the dated ones all mean tomorrow at the next full hour (the bare time is today's)."""
    zone = ZoneInfo(timezone)
    local = (now.astimezone(zone) + timedelta(days=1, hours=1)).replace(minute=0, second=0, microsecond=0)
    stamp = int(local.timestamp())
    return (
        f"`{local:%H:%M}`, `{local:%A %H:%M}`, `tomorrow 8pm`, `in 90 minutes`, `{local:%Y-%m-%d %H:%M}` "
        f"({timezone}), `{local.isoformat(timespec='minutes')}`, `<t:{stamp}:F>` or `in 2h30m`"
    )


def parse_when(text: str, *, timezone: str, now: datetime) -> ReadTime:
    """What `text` means, read in `timezone` relative to `now`; ValidationFailed (with examples) when it is
    unreadable, ambiguous, skipped or doubled by daylight saving, or not ahead."""
    timezone = check_timezone(timezone)
    value = " ".join((text or "").split())
    when = _read(value, timezone, now)
    if when is None:
        hint = "" if not value or _CLOCK.search(value) else " Add a time of day."
        raise ValidationFailed(
            f"I could not read `{value[:60]}` as a time.{hint} Use for example {examples(timezone, now)}.",
            field="when",
        )
    read = ReadTime(when, timezone)
    if when <= now:
        raise ValidationFailed(
            f"{read.reading} is in the past; pick a time ahead, for example {examples(timezone, now)}.", field="when"
        )
    if when - now > MAX_AHEAD:
        raise ValidationFailed("that time is more than five years ahead; pick a nearer one.", field="when")
    return read


@dataclass(frozen=True)
class ReadDay:
    """A date without a time of day (a template's race starts at the template's local time that day)."""

    day: date
    timezone: str

    @property
    def echo(self) -> str:
        return f"{self.day:%a} {self.day.day} {self.day:%b %Y} (at the template's start time)"


def parse_day(text: str, *, timezone: str, now: datetime) -> ReadDay | None:
    """`text` as a date alone (`2026-12-05`, `Saturday`, `5 Dec`, `tomorrow`), read in `timezone` relative to
    `now`; None when it names a time of day or is no date. A two-way numeric date is refused as `parse_when` does;
    a date before today is refused."""
    timezone = check_timezone(timezone)
    value = " ".join((text or "").split())
    if not value or _CLOCK.search(value) or _DISCORD_TIMESTAMP.fullmatch(value) or _RELATIVE.fullmatch(value):
        return None
    today = now.astimezone(ZoneInfo(timezone)).date()
    try:
        day: date | None = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None:
        _refuse_two_way_dates(value, timezone, now)
        parsed = _parse(value, _local_base(now, timezone))
        if parsed is None:
            return None
        day = parsed.date()
        named = _WEEKDAY.search(value)
        if named is not None and "next" not in value.lower() and day == today + timedelta(days=7):
            day = today  # `Saturday` typed on a Saturday is today (its start time may still be ahead)
    if day < today:
        raise ValidationFailed(f"{day:%a} {day.day} {day:%b %Y} is in the past; pick a date ahead.", field="when")
    if day - today > MAX_AHEAD:
        raise ValidationFailed("that date is more than five years ahead; pick a nearer one.", field="when")
    return ReadDay(day, timezone)


def _read(value: str, timezone: str, now: datetime) -> datetime | None:
    if match := _DISCORD_TIMESTAMP.fullmatch(value):
        try:
            return datetime.fromtimestamp(int(match.group(1)), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if match := _RELATIVE.fullmatch(value):
        return _relative(match.group(1), now)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    if parsed is not None and _LOCAL_DATETIME.fullmatch(value):
        return localize(parsed, timezone)
    _refuse_two_way_dates(value, timezone, now)
    if not _CLOCK.search(value):
        return None
    return _natural(value, timezone, now)


def _relative(duration: str, now: datetime) -> datetime | None:
    # Units are required: pytimeparse2 reads a bare `2:30` as minutes and seconds, which nobody means here.
    if not any(ch.isalpha() for ch in duration):
        return None
    seconds = pytimeparse2.parse(duration.strip())
    if seconds is None or seconds <= 0 or seconds > MAX_AHEAD.total_seconds():
        return None
    return now + timedelta(seconds=float(seconds))


@lru_cache(maxsize=1)
def _dateparser() -> Any:
    import dateparser

    return dateparser


def _local_base(now: datetime, timezone: str) -> datetime:
    """`now` as the wall clock of `timezone` shows it, to the minute: what relative words are read from."""
    return now.astimezone(ZoneInfo(timezone)).replace(tzinfo=None, second=0, microsecond=0)


def _parse(value: str, base: datetime) -> datetime | None:
    """dateparser's reading of `value` (English, relative to `base`), or None when it reads none."""
    settings = {**_PARSER_SETTINGS, "RELATIVE_BASE": base}
    try:
        return _dateparser().parse(value, languages=["en"], settings=settings)
    except (ValueError, OverflowError):
        return None


def _natural(value: str, timezone: str, now: datetime) -> datetime | None:
    base = _local_base(now, timezone)
    parsed = _parse(value, base)
    if parsed is None:
        return None
    if parsed.tzinfo is not None:  # the text named an offset or zone (`19:00 UTC`, `20:00 +0200`)
        return parsed.astimezone(UTC)
    return localize(_today_if_ahead(value, parsed, base), timezone)


def _today_if_ahead(value: str, parsed: datetime, base: datetime) -> datetime:
    """`Sat 20:00` typed on a Saturday at noon is tonight (dateparser reads it a week ahead); `next Sat` stays."""
    named = _WEEKDAY.search(value)
    if named is None or "next" in value.lower() or parsed.date() != base.date() + timedelta(days=7):
        return parsed
    if named.group(1).lower() != f"{base:%a}".lower():
        return parsed
    today = parsed - timedelta(days=7)
    return today if today > base else parsed


def localize(naive: datetime, timezone: str) -> datetime:
    """The instant a wall time of `timezone` names; ValidationFailed when the clocks skip it or pass it twice."""
    zone = ZoneInfo(timezone)
    first, second = naive.replace(tzinfo=zone, fold=0), naive.replace(tzinfo=zone, fold=1)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        shift = _hours(second.utcoffset() - first.utcoffset())  # type: ignore[operator]
        raise ValidationFailed(
            f"{wall(naive)} does not exist in {timezone} (the clocks jump forward {shift} then); pick another time.",
            field="when",
        )
    if first.utcoffset() != second.utcoffset():
        shift = _hours(first.utcoffset() - second.utcoffset())  # type: ignore[operator]
        readings = " or ".join(f"`{moment.isoformat(timespec='minutes')}`" for moment in (first, second))
        raise ValidationFailed(
            f"{wall(naive)} happens twice in {timezone} (the clocks go back {shift} then): first at "
            f"<t:{int(first.timestamp())}:F>, then at <t:{int(second.timestamp())}:F>. Say which with its offset: "
            f"{readings}.",
            field="when",
        )
    return first.astimezone(UTC)


def _hours(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return "an hour" if minutes == 60 else f"{minutes} minutes"


def _refuse_two_way_dates(value: str, timezone: str, now: datetime) -> None:
    """A numeric date whose day and month could swap (`5/6`) is refused with both readings."""
    for match in _NUMERIC_DATE.finditer(value):
        first, second, year = int(match.group(1)), int(match.group(3)), match.group(4)
        if first == second or first > 12 or second > 12 or first == 0 or second == 0:
            continue
        today = now.astimezone(ZoneInfo(timezone)).date()
        readings = [_next_date(today, day, month, year) for day, month in ((first, second), (second, first))]
        if None in readings:
            continue
        shown = " or ".join(f"{d:%a} {d.day} {d:%B %Y}" for d in readings)  # type: ignore[union-attr]
        rest = (value[: match.start()] + value[match.end() :]).strip()
        spelled = " or ".join(f"`{d.day} {d:%b}{' ' + rest if rest else ''}`" for d in readings)  # type: ignore[union-attr]
        raise ValidationFailed(
            f"`{match.group(0).strip()}` could mean {shown}; write the month as a word, like {spelled}.",
            field="when",
        )


def _next_date(today: date, day: int, month: int, year: str | None) -> date | None:
    try:
        if year is not None:
            return date(int(year) + (2000 if len(year) == 2 else 0), month, day)
        candidate = date(today.year, month, day)
        return candidate if candidate >= today else date(today.year + 1, month, day)
    except ValueError:
        return None
