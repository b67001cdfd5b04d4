"""The race form of RaceTime.gg (app:racetime/forms.py): fields, defaults, validation, and the fake's
constants and errors."""

from __future__ import annotations

import re
import string
from datetime import datetime, timedelta
from typing import Any

RACE_STATUSES = {
    "open": ("Open", "Anyone may join this race"),
    "invitational": ("Invitational", "Only invitees may join this race"),
    "pending": ("Getting ready", "Waiting for race to begin"),
    "in_progress": ("In progress", "Race is in progress"),
    "finished": ("Finished", "This race has been completed"),
    "cancelled": ("Cancelled", "This race has been cancelled"),
    "partitioned": ("Partitioned", "Race has been partitioned into separate 1v1 races"),
}
ENTRANT_STATUSES = {
    "requested": ("Join request", "Wishes to join the race."),
    "invited": ("Invited", "Invited to join the race."),
    "declined": ("Declined", "Declined invitation to join."),
    "partitioned": ("Partitioned", "Moved to partitioned race room."),
    "dnf": ("DNF", "Did not finish the race."),
    "dq": ("DQ", "Disqualified by a category moderator."),
    "done": ("Finished", "Finished the race."),
    "in_progress": ("In progress", "Still flyin'."),
    "ready": ("Ready", "Ready to begin the race."),
    "not_ready": ("Not ready", "Not ready to begin yet."),
}
# RaceTime.gg lists entrants in this order (then by place, finish time, -score, name).
_ENTRANT_ORDER = {
    "done": 0,
    "in_progress": 1,
    "ready": 1,
    "not_ready": 2,
    "invited": 3,
    "requested": 4,
    "dnf": 5,
    "dq": 6,
    "declined": 7,
    "partitioned": 8,
}
PREPARING = frozenset({"open", "invitational"})
CURRENT = frozenset({"pending", "in_progress"})
DONE = frozenset({"finished", "cancelled", "partitioned"})

ALL_SCOPES = ("read", "chat_message", "race_action", "create_race")
TOKEN_CHARS = string.ascii_letters + string.digits
HASHID_CHARS = string.ascii_letters + string.digits
GUID_RE = re.compile(r"^[0-9a-z\-]+$")
_MARKUP_RE = re.compile(r"##(\w+?)##(.*?)##")
_SLUG_ADJECTIVES = (
    "lawful",
    "gentle",
    "banzai",
    "messy",
    "clumsy",
    "curious",
    "dynamic",
    "graceful",
    "hungry",
    "odd",
    "perfect",
    "speedy",
    "sublime",
    "virtual",
    "amazing",
    "chaotic",
    "classic",
    "good",
    "grumpy",
    "helpful",
)
_SLUG_NOUNS = (
    "pit",
    "pokey",
    "sun",
    "samus",
    "terry",
    "lyra",
    "cuphead",
    "mario",
    "raichu",
    "rikku",
    "slime",
    "kirby",
    "toadstool",
    "knuckles",
    "fez",
    "spaceman",
    "rayman",
    "corrin",
    "bahamut",
    "cid",
)

DJANGO_404 = (
    '<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
    "  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n"
)
PERMISSION_DENIED = "Permission denied. Check your authorization token."

# --- the race form (app:racetime/forms.py), in field order, with the model defaults ---------------
# A field missing from the POST gets the model default before validation (not the category default).
FORM_DEFAULTS: dict[str, Any] = {
    "team_race": False,
    "invitational": False,
    "unlisted": False,
    "ranked": True,
    "partitionable": False,
    "hide_entrants": False,
    "info_user": "",
    "info_bot": "",
    "recordable": True,
    "require_even_teams": False,
    "start_delay": 15,
    "time_limit": 24,
    "time_limit_auto_complete": False,
    "streaming_required": True,
    "auto_start": True,
    "allow_comments": True,
    "hide_comments": False,
    "allow_prerace_chat": True,
    "allow_midrace_chat": True,
    "allow_non_entrant_chat": True,
    "chat_message_delay": 0,
}
# Integer fields: (unit, minimum, maximum); Django validates them as timedeltas, hence the messages.
_DURATION_FIELDS = {
    "start_delay": (timedelta(seconds=1), timedelta(seconds=10), timedelta(seconds=60)),
    "time_limit": (timedelta(hours=1), timedelta(hours=1), timedelta(hours=72)),
    "chat_message_delay": (timedelta(seconds=1), timedelta(0), timedelta(seconds=90)),
}
_TEXT_FIELDS = {"info_user": 1000, "info_bot": 1000}
START_FIELDS = ("goal", "custom_goal", *FORM_DEFAULTS)
_START_ONLY_FIELDS = ("team_race", "invitational", "partitionable", "hide_entrants")
EDIT_FIELDS = tuple(f for f in START_FIELDS if f not in _START_ONLY_FIELDS)
STARTED_EDIT_FIELDS = (
    "unlisted",
    "info_user",
    "allow_comments",
    "hide_comments",
    "allow_midrace_chat",
    "allow_non_entrant_chat",
    "chat_message_delay",
)


class FakeRacetimeError(ValueError):
    """A test asked the fake for something the real site would not do."""


class _ActionError(Exception):
    """A websocket action failed; the message goes to the sender only."""


def _checkbox(value: Any) -> bool:
    # Django's CheckboxInput: only "false" (any case) and "" are false; "0" and "no" are TRUE.
    if isinstance(value, str):
        value = {"true": True, "false": False}.get(value.lower(), value)
    return bool(value)


def _iso_now_exact(now: datetime) -> str:
    return now.isoformat()  # websocket envelopes and X-Date-Exact use isoformat, not the JSON encoder


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _format_race_time(td: timedelta) -> str:
    total = int(td.total_seconds())
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}.{td.microseconds // 100000}"


def _too_long(limit: int, text: str) -> str:
    return f"Ensure this value has at most {limit} characters (it has {len(text)})."


def clean_race_form(
    data: Any, goals: list[str], fields: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """Validate a race form like Django would: returns (cleaned values, ``form.errors``)."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name in fields:
        if name in ("goal", "custom_goal"):
            continue
        raw = data[name] if name in data else FORM_DEFAULTS[name]
        if name in _DURATION_FIELDS:
            unit, low, high = _DURATION_FIELDS[name]
            text = re.sub(r"\.0*\s*$", "", str(raw).strip())
            if text == "":
                errors[name] = ["This field is required."]
                continue
            try:
                value = int(text) * unit
            except ValueError:
                errors[name] = ["Enter a whole number."]
                continue
            if value < low:
                errors[name] = [f"Ensure this value is greater than or equal to {low}."]
            elif value > high:
                errors[name] = [f"Ensure this value is less than or equal to {high}."]
            else:
                cleaned[name] = value
        elif name in _TEXT_FIELDS:
            text = str(raw).strip()
            if len(text) > _TEXT_FIELDS[name]:
                errors[name] = [_too_long(_TEXT_FIELDS[name], text)]
            else:
                cleaned[name] = text
        else:
            cleaned[name] = _checkbox(raw)
    if "goal" in fields:
        goal_name = str(data.get("goal", ""))
        custom_goal = str(data.get("custom_goal", "")).strip()
        if len(custom_goal) > 255:
            errors["custom_goal"] = [_too_long(255, custom_goal)]
            custom_goal = ""  # an invalid field is missing from cleaned_data when clean() runs
        # Only an active goal NAME counts; an unknown name is treated as no goal at all.
        goal = goal_name if goal_name in goals else None
        general = []
        if goal is None and not custom_goal:
            general.append("You need to set a goal for this race.")
        elif goal is not None and custom_goal:
            general.append("The race must only have one goal.")
        if general:
            errors["__all__"] = general
        cleaned["goal"], cleaned["custom_goal"] = goal, custom_goal or None
    return cleaned, errors
