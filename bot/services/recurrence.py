"""Recurrence rules of race series: iCalendar RRULE through python-dateutil's `rrule`, kept in local time.

A rule is expanded in naive local time from DTSTART (the first occurrence's local date and the template's local
start time), then each occurrence is placed in the series' time zone: "every Saturday 20:00 Europe/Berlin" stays
20:00 local across daylight-saving changes, so its UTC time moves by an hour twice a year. An occurrence is named
by its local date (the key of `series_occurrences`) and numbered from 1 in the rule's order.

Refused with a message that says why: a rule that does not parse, one that never occurs (from its start on), one
whose occurrences come closer together than the configured minimum, and a local start time that does not exist in
the zone on an occurrence's date (the hour skipped when clocks go forward). A local time that happens twice (clocks
go back) is the first of the two.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil.rrule import rrule, rrulestr

from bot.errors import ValidationFailed

MAX_RULE_LENGTH = 500
CHECKED_OCCURRENCES = 200  # the frequency and DST-gap checks look at this many occurrences ahead
_TIME = re.compile(r"^([01]?[0-9]|2[0-3]):([0-5][0-9])$")
_FORBIDDEN_PARTS = ("DTSTART", "RDATE", "EXRULE", "EXDATE")


def parse_local_time(value: str | None, field: str = "start_time") -> time:
    text = (value or "").strip()
    match = _TIME.match(text)
    if match is None:
        raise ValidationFailed(f"{field} must be a local time like 20:00 (24-hour clock)", field=field, example="20:00")
    return time(int(match.group(1)), int(match.group(2)))


def zone_of(name: str | None, field: str = "timezone") -> ZoneInfo:
    try:
        if not name or ("/" not in name and name != "UTC"):
            raise ZoneInfoNotFoundError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationFailed(
            f"{field} must be an IANA time zone like Europe/Berlin", field=field, example="Europe/Berlin"
        ) from None


def localize(local: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a naive local time in `zone`; None when that local time does not exist there."""
    aware = local.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != local:
        return None  # in the gap when clocks go forward
    return instant


@dataclass(frozen=True)
class Occurrence:
    number: int
    local_date: date
    starts_at: datetime  # UTC


@dataclass(frozen=True)
class Recurrence:
    """A checked rule: `rule` yields naive local datetimes from DTSTART on."""

    text: str
    zone: ZoneInfo
    rule: rrule
    dtstart: datetime

    def occurrences(self, *, after: datetime | None = None, until: datetime | None = None) -> Iterator[Occurrence]:
        """Occurrences in order (numbered from the rule's first), those starting after `after` and at or before
        `until` (UTC instants). A local time that does not exist is left out (creation refuses such rules)."""
        for number, local in enumerate(self.rule, start=1):
            instant = localize(local, self.zone)
            if instant is None:
                continue
            if until is not None and instant > until:
                return
            if after is not None and instant <= after:
                continue
            yield Occurrence(number, local.date(), instant)

    def occurrence_on(self, local_date: date) -> Occurrence | None:
        """The occurrence on a local date, or None."""
        for occurrence in self.occurrences():
            if occurrence.local_date == local_date:
                return occurrence
            if occurrence.local_date > local_date:
                return None
        return None


def normalize_rule(text: str | None) -> str:
    rule = (text or "").strip()
    if rule.upper().startswith("RRULE:"):
        rule = rule[6:].strip()
    if not rule:
        raise ValidationFailed("rrule must not be empty", field="rrule", example="FREQ=WEEKLY;BYDAY=SA")
    if len(rule) > MAX_RULE_LENGTH or "\n" in rule:
        raise ValidationFailed(
            f"rrule must be one RRULE line of at most {MAX_RULE_LENGTH} characters",
            field="rrule",
            example="FREQ=WEEKLY;BYDAY=SA",
        )
    parts = {part.split("=", 1)[0].strip().upper() for part in rule.split(";") if part.strip()}
    for forbidden in _FORBIDDEN_PARTS:
        if forbidden in parts:
            raise ValidationFailed(
                f"rrule must not contain {forbidden}: the series' start date and its skips say that",
                field="rrule",
                example="FREQ=WEEKLY;BYDAY=SA",
            )
    return rule.upper()


def build(
    text: str,
    timezone: str,
    starts_on: date,
    start_time: time,
    *,
    until: datetime | None = None,
    count: int | None = None,
    min_interval: timedelta,
) -> Recurrence:
    """Parse and check a rule; raises ValidationFailed (field `rrule`, `timezone`, `until` or `count`)."""
    rule_text = normalize_rule(text)
    zone = zone_of(timezone)
    dtstart = datetime.combine(starts_on, start_time)
    try:
        rule = rrulestr(rule_text, dtstart=dtstart, forceset=False, cache=False)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise ValidationFailed(
            f"rrule is not an iCalendar RRULE ({exc})", field="rrule", example="FREQ=WEEKLY;BYDAY=SA"
        ) from None
    if not isinstance(rule, rrule):
        raise ValidationFailed("rrule must be a single RRULE", field="rrule", example="FREQ=WEEKLY;BYDAY=SA")
    if count is not None:
        rule = rule.replace(count=count, until=None)
    elif until is not None:
        local_until = until.astimezone(zone).replace(tzinfo=None)
        if local_until < dtstart:
            raise ValidationFailed("until must be after the series' first occurrence", field="until")
        rule = rule.replace(until=local_until, count=None)
    recurrence = Recurrence(rule_text, zone, rule, dtstart)
    _check(recurrence, min_interval)
    return recurrence


def _check(recurrence: Recurrence, min_interval: timedelta) -> None:
    previous: datetime | None = None
    seen = 0
    for local in recurrence.rule:
        seen += 1
        if localize(local, recurrence.zone) is None:
            raise ValidationFailed(
                f"{local:%H:%M} does not exist in {recurrence.zone.key} on {local:%Y-%m-%d} (the clocks go forward "
                "then); pick another start time",
                field="start_time",
            )
        if previous is not None and local - previous < min_interval:
            raise ValidationFailed(
                f"rrule repeats every {_span(local - previous)}; series may repeat at most every {_span(min_interval)}",
                field="rrule",
                example="FREQ=WEEKLY;BYDAY=SA",
            )
        previous = local
        if seen >= CHECKED_OCCURRENCES:
            break
    if seen == 0:
        raise ValidationFailed(
            "rrule never occurs from the series' start on (check BYDAY, BYMONTHDAY, UNTIL and COUNT)",
            field="rrule",
            example="FREQ=WEEKLY;BYDAY=SA",
        )


def _span(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day(s)"
    if minutes % 60 == 0:
        return f"{minutes // 60} hour(s)"
    return f"{minutes} minute(s)"
