"""RaceTime.gg's wire formats for durations and datetimes.

RaceTime.gg is a Django site: durations are ``django.utils.duration.duration_iso_string``
(``P0DT01H23M45.678901S``) and datetimes come from ``DjangoJSONEncoder`` (UTC, ``Z``, milliseconds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

# The same pattern rust-racetime uses; Django always emits every component.
_DURATION_RE = re.compile(r"(-?)P(\d+)DT(\d+)H(\d+)M(\d+)(?:\.(\d{1,6}))?S", re.ASCII)


def parse_duration(s: str) -> timedelta:
    """Parse a Django ISO-8601 duration exactly (microseconds kept).

    Raises ``ValueError`` for anything that is not in Django's format.
    """
    if not isinstance(s, str):
        raise ValueError(f"duration must be a string, not {type(s).__name__}")
    match = _DURATION_RE.fullmatch(s)
    if match is None:
        raise ValueError(f"not a RaceTime.gg duration: {s!r}")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    value = timedelta(
        days=int(days),
        hours=int(hours),
        minutes=int(minutes),
        seconds=int(seconds),
        # Pad rather than float-convert so that ".678901" stays exactly 678901 µs.
        microseconds=int((fraction or "0").ljust(6, "0")),
    )
    return -value if sign else value


def format_duration(td: timedelta) -> str:
    """Format like ``django.utils.duration.duration_iso_string``."""
    sign = ""
    if td < timedelta(0):
        sign = "-"
        td = -td
    seconds = td.seconds
    fraction = f".{td.microseconds:06d}" if td.microseconds else ""
    return f"{sign}P{td.days}DT{seconds // 3600:02d}H{seconds % 3600 // 60:02d}M{seconds % 60:02d}{fraction}S"


def parse_datetime(s: str | None) -> datetime | None:
    """Parse a RaceTime.gg datetime into an aware UTC datetime; ``None`` stays ``None``.

    Accepts ``Z`` or ``+00:00`` (the websocket envelope uses the latter), with or without a fraction.
    Raises ``ValueError`` for naive or malformed values.
    """
    if s is None:
        return None
    if not isinstance(s, str):
        raise ValueError(f"datetime must be a string, not {type(s).__name__}")
    value = datetime.fromisoformat(s)
    if value.tzinfo is None:
        raise ValueError(f"datetime without a timezone: {s!r}")
    return value.astimezone(UTC)


def format_datetime(dt: datetime) -> str:
    """Format like ``DjangoJSONEncoder``: UTC, ``Z`` suffix, microseconds truncated to milliseconds."""
    if dt.tzinfo is None:
        raise ValueError("format_datetime needs an aware datetime")
    text = dt.astimezone(UTC).isoformat()
    if dt.microsecond:
        text = text[:23] + text[26:]
    return text.removesuffix("+00:00") + "Z"
