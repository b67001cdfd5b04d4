"""Reading the times moderators type into slash commands.

Accepted, in this order:
- a Discord timestamp `<t:1764612000>` with any style suffix (`<t:1764612000:F>`);
- a relative time `in 2h30m`, `in 90m`, `in 1h` (the duration is read by pytimeparse2);
- ISO 8601 with an offset, `2026-12-01T19:00+01:00` or `...Z`;
- `YYYY-MM-DD HH:MM` (or with `T`, or with seconds) in the given timezone: the server's, or the one the user picked.
Anything else, and any time not in the future, is refused with examples built around the current time.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytimeparse2

from bot.errors import ValidationFailed
from bot.services.guilds import check_timezone

_DISCORD_TIMESTAMP = re.compile(r"<t:(-?\d{1,13})(?::[tTdDfFRsS])?>")
_RELATIVE = re.compile(r"in\s+(.+)", re.IGNORECASE)
_LOCAL_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
# The latest time a race may be scheduled; also keeps `datetime` arithmetic far from its limits.
MAX_AHEAD = timedelta(days=366 * 5)


def examples(timezone: str, now: datetime) -> str:
    """A line of valid inputs, all meaning tomorrow at the next full hour."""
    zone = ZoneInfo(timezone)
    local = (now.astimezone(zone) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    stamp = int(local.timestamp())
    return (
        f"`{local:%Y-%m-%d %H:%M}` ({timezone}), `{local.isoformat(timespec='minutes')}`, `<t:{stamp}:F>` or `in 2h30m`"
    )


def parse_when(text: str, *, timezone: str, now: datetime) -> datetime:
    """The aware UTC datetime `text` means; ValidationFailed (with examples) when it is unreadable or not ahead."""
    timezone = check_timezone(timezone)
    value = (text or "").strip()
    when = _read(value, timezone, now)
    if when is None:
        raise ValidationFailed(
            f"I could not read `{value[:60]}` as a time. Use for example {examples(timezone, now)}.", field="when"
        )
    if when <= now:
        raise ValidationFailed(
            f"{_format(when, timezone)} is in the past; pick a time ahead, for example {examples(timezone, now)}.",
            field="when",
        )
    if when - now > MAX_AHEAD:
        raise ValidationFailed("that time is more than five years ahead; pick a nearer one.", field="when")
    return when


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
        return None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    if not _LOCAL_DATETIME.fullmatch(value):  # a date alone, or some other partial form
        return None
    return _localize(parsed, timezone)


def _relative(duration: str, now: datetime) -> datetime | None:
    # Units are required: pytimeparse2 reads a bare `2:30` as minutes and seconds, which nobody means here.
    if not any(ch.isalpha() for ch in duration):
        return None
    seconds = pytimeparse2.parse(duration.strip())
    if seconds is None or seconds <= 0 or seconds > MAX_AHEAD.total_seconds():
        return None
    return now + timedelta(seconds=float(seconds))


def _localize(naive: datetime, timezone: str) -> datetime:
    zone = ZoneInfo(timezone)
    aware = naive.replace(tzinfo=zone)
    # A wall time skipped by a daylight-saving jump does not survive a round trip through UTC.
    if aware.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        raise ValidationFailed(
            f"{naive:%Y-%m-%d %H:%M} does not exist in {timezone} (the clocks jump forward then); pick another time.",
            field="when",
        )
    return aware.astimezone(UTC)


def _format(when: datetime, timezone: str) -> str:
    return f"{when.astimezone(ZoneInfo(timezone)):%Y-%m-%d %H:%M} ({timezone})"
