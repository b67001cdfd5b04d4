"""Typed views of RaceTime.gg JSON, and the room settings Startline sends.

Every ``from_json`` reads only the keys it knows (extra keys are ignored) and raises ``KeyError``,
``TypeError`` or ``ValueError`` on a malformed object; the client turns those into
``RacetimeProtocolError``. URLs in RaceTime.gg JSON are root-relative, so every URL kept here is
joined to the site's base URL.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urljoin

from racetime.durations import parse_datetime, parse_duration


def absolute_url(base_url: str | None, path: str | None) -> str | None:
    """Join a root-relative RaceTime.gg path to the base URL (absolute URLs pass through)."""
    if path is None or base_url is None:
        return path
    return urljoin(base_url, path)


def split_race_name(name: str) -> tuple[str, str]:
    """``"alttpr/lawful-pit-3187"`` -> ``("alttpr", "lawful-pit-3187")``."""
    category, sep, slug = name.partition("/")
    if not sep or not category or not slug or "/" in slug:
        raise ValueError(f"not a race name: {name!r}")
    return category, slug


def _duration_or_none(value: str | None) -> timedelta | None:
    return None if value is None else parse_duration(value)


@dataclass(frozen=True)
class User:
    id: str
    name: str
    full_name: str
    discriminator: str | None
    url: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any], base_url: str | None = None) -> User:
        return cls(
            id=data["id"],
            name=data["name"],
            full_name=data.get("full_name") or data["name"],
            discriminator=data.get("discriminator"),
            url=absolute_url(base_url, data.get("url")),
        )


@dataclass(frozen=True)
class Entrant:
    user: User | None  # None only for a deleted account
    status: str  # done, dnf, dq, in_progress, ready, not_ready, invited, requested, declined, partitioned
    finish_time: timedelta | None
    finished_at: datetime | None
    place: int | None
    comment: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any], base_url: str | None = None) -> Entrant:
        user = data.get("user")
        return cls(
            user=User.from_json(user, base_url) if user is not None else None,
            status=data["status"]["value"],
            finish_time=_duration_or_none(data.get("finish_time")),
            finished_at=parse_datetime(data.get("finished_at")),
            place=data.get("place"),
            comment=data.get("comment"),
        )


def _shared_race_fields(data: dict[str, Any], base_url: str) -> dict[str, Any]:
    """The fields a full race and a race summary have in common.

    Summaries have no ``slug`` key; the slug and category come from ``name`` ("cat/slug").
    """
    category_slug, slug = split_race_name(data["name"])
    goal = data["goal"]
    return {
        "name": data["name"],
        "slug": slug,
        "category_slug": category_slug,
        "status": data["status"]["value"],
        "url": absolute_url(base_url, data["url"]),
        "data_url": absolute_url(base_url, data["data_url"]),
        "goal_name": goal["name"],
        "goal_custom": bool(goal["custom"]),
        "info": data.get("info") or "",
        "entrants_count": int(data["entrants_count"]),
        "opened_at": parse_datetime(data.get("opened_at")),
        "started_at": parse_datetime(data.get("started_at")),
    }


@dataclass(frozen=True)
class Race:
    """A full race (``/<cat>/<slug>/data``, or ``race`` in a websocket ``race.data``)."""

    name: str
    slug: str
    category_slug: str
    status: str
    url: str
    data_url: str
    goal_name: str
    goal_custom: bool
    info: str
    info_bot: str | None
    info_user: str | None
    entrants: tuple[Entrant, ...]
    entrants_count: int
    opened_at: datetime | None
    started_at: datetime | None  # set when the countdown begins, so in the future while "pending"
    ended_at: datetime | None
    cancelled_at: datetime | None
    start_delay: timedelta
    time_limit: timedelta
    auto_start: bool
    streaming_required: bool
    unlisted: bool
    version: int
    raw: dict[str, Any] = field(compare=False, hash=False, repr=False)

    @classmethod
    def from_json(cls, data: dict[str, Any], base_url: str) -> Race:
        return cls(
            **_shared_race_fields(data, base_url),
            info_bot=data.get("info_bot"),
            info_user=data.get("info_user"),
            entrants=tuple(Entrant.from_json(e, base_url) for e in data.get("entrants", ())),
            ended_at=parse_datetime(data.get("ended_at")),
            cancelled_at=parse_datetime(data.get("cancelled_at")),
            start_delay=parse_duration(data["start_delay"]),
            time_limit=parse_duration(data["time_limit"]),
            auto_start=bool(data["auto_start"]),
            streaming_required=bool(data["streaming_required"]),
            unlisted=bool(data["unlisted"]),
            version=int(data["version"]),
            raw=data,
        )


@dataclass(frozen=True)
class RaceSummary:
    """A race as listed in ``current_races`` (no ``slug`` key, no entrants, no websocket URLs)."""

    name: str
    slug: str
    category_slug: str
    status: str
    url: str
    data_url: str
    goal_name: str
    goal_custom: bool
    info: str
    entrants_count: int
    entrants_count_finished: int
    entrants_count_inactive: int
    opened_at: datetime | None
    started_at: datetime | None

    @classmethod
    def from_json(cls, data: dict[str, Any], base_url: str) -> RaceSummary:
        return cls(
            **_shared_race_fields(data, base_url),
            entrants_count_finished=int(data["entrants_count_finished"]),
            entrants_count_inactive=int(data["entrants_count_inactive"]),
        )


@dataclass(frozen=True)
class CategoryData:
    slug: str
    name: str
    short_name: str
    goals: tuple[str, ...]
    current_races: tuple[RaceSummary, ...]

    @classmethod
    def from_json(cls, data: dict[str, Any], base_url: str) -> CategoryData:
        return cls(
            slug=data["slug"],
            name=data["name"],
            short_name=data["short_name"],
            goals=tuple(data["goals"]),
            current_races=tuple(RaceSummary.from_json(r, base_url) for r in data["current_races"]),
        )


@dataclass(frozen=True)
class RoomRef:
    """The room a ``startrace`` created."""

    category: str
    slug: str
    url: str  # absolute

    @property
    def name(self) -> str:
        return f"{self.category}/{self.slug}"

    @property
    def data_url(self) -> str:
        return f"{self.url}/data"


@dataclass(frozen=True)
class UserToken:
    """A user's OAuth token from the authorization-code flow (``/racetime link``)."""

    access_token: str
    refresh_token: str | None
    expires_in: int
    scope: str

    def __repr__(self) -> str:  # keep tokens out of logs and tracebacks
        return f"UserToken(expires_in={self.expires_in}, scope={self.scope!r})"


_ZERO = "P0DT00H00M00S"

# Ranges enforced by RaceTime.gg's race form, in the units of the form fields.
_INT_RANGES: dict[str, tuple[int, int, str]] = {
    "start_delay": (10, 60, "seconds"),
    "time_limit": (1, 72, "hours"),
    "chat_message_delay": (0, 90, "seconds"),
}


@dataclass
class RoomSettings:
    """Room settings with Startline's product defaults (not RaceTime.gg's model defaults).

    ``start_delay`` and ``chat_message_delay`` are seconds, ``time_limit`` is hours, as on the wire.
    """

    start_delay: int = 15
    time_limit: int = 24
    streaming_required: bool = False
    auto_start: bool = True
    allow_comments: bool = True
    hide_comments: bool = False
    allow_prerace_chat: bool = True
    allow_midrace_chat: bool = True
    allow_non_entrant_chat: bool = True
    chat_message_delay: int = 0
    invitational: bool = False
    unlisted: bool = False
    ranked: bool = True
    time_limit_auto_complete: bool = False
    require_even_teams: bool = False
    team_race: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field (same ranges as the server)."""
        for name, (low, high, unit) in _INT_RANGES.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number of {unit}, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"{name} must be between {low} and {high} {unit}, got {value}")
        for name in _BOOL_FIELDS:
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")

    @classmethod
    def from_race(cls, race: Race) -> RoomSettings:
        """The settings a room currently has (to build a full-replace edit that changes one thing)."""
        raw = race.raw
        return cls(
            start_delay=int(race.start_delay.total_seconds()),
            time_limit=int(race.time_limit.total_seconds() // 3600),
            streaming_required=race.streaming_required,
            auto_start=race.auto_start,
            allow_comments=bool(raw.get("allow_comments", True)),
            hide_comments=bool(raw.get("hide_comments", False)),
            allow_prerace_chat=bool(raw.get("allow_prerace_chat", True)),
            allow_midrace_chat=bool(raw.get("allow_midrace_chat", True)),
            allow_non_entrant_chat=bool(raw.get("allow_non_entrant_chat", True)),
            chat_message_delay=int(parse_duration(raw.get("chat_message_delay", _ZERO)).total_seconds()),
            invitational=race.status == "invitational",
            unlisted=race.unlisted,
            ranked=bool(raw.get("ranked", True)),
            time_limit_auto_complete=bool(raw.get("time_limit_auto_complete", False)),
            require_even_teams=bool(raw.get("require_even_teams", False)),
            team_race=bool(raw.get("team_race", False)),
        )


_BOOL_FIELDS = tuple(f.name for f in fields(RoomSettings) if isinstance(f.default, bool))

# Form fields that only startrace accepts; the edit form rejects nothing but ignores these.
_START_ONLY_FIELDS = ("team_race", "invitational", "partitionable", "hide_entrants")

_MAX_CUSTOM_GOAL = 255
_MAX_INFO = 1000


def _wire_bool(value: bool) -> str:
    # Django's CheckboxInput treats every non-empty string except "false" as true ("0" and "no" too).
    return "true" if value else "false"


@dataclass
class StartRaceRequest:
    """Everything ``startrace`` and ``edit`` need; exactly one of ``goal``/``custom_goal``."""

    settings: RoomSettings = field(default_factory=RoomSettings)
    goal: str | None = None  # the NAME of an active goal of the category
    custom_goal: str | None = None
    info_user: str = ""
    info_bot: str = ""

    def validate(self) -> None:
        if bool(self.goal) == bool(self.custom_goal):
            raise ValueError("exactly one of goal or custom_goal must be set")
        if self.custom_goal and len(self.custom_goal) > _MAX_CUSTOM_GOAL:
            raise ValueError(f"custom_goal must be at most {_MAX_CUSTOM_GOAL} characters")
        for name in ("info_user", "info_bot"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name} must be a string, got {value!r}")
            if len(value) > _MAX_INFO:
                raise ValueError(f"{name} must be at most {_MAX_INFO} characters")
        self.settings.validate()

    def to_form(self) -> dict[str, str]:
        """The ``startrace`` form: every field explicit, because omitted ones get RaceTime.gg's defaults."""
        self.validate()
        s = self.settings
        form = {"goal": self.goal} if self.goal else {"custom_goal": self.custom_goal or ""}
        form.update(
            team_race=_wire_bool(s.team_race),
            invitational=_wire_bool(s.invitational),
            unlisted=_wire_bool(s.unlisted),
            ranked=_wire_bool(s.ranked),
            # Features Startline never uses; sent so a changed server default cannot switch them on.
            partitionable="false",
            hide_entrants="false",
            # The server recomputes this (ranked and not a custom goal); sent consistent with that.
            recordable=_wire_bool(s.ranked and not self.custom_goal),
            info_user=self.info_user,
            info_bot=self.info_bot,
            require_even_teams=_wire_bool(s.require_even_teams),
            start_delay=str(s.start_delay),
            time_limit=str(s.time_limit),
            time_limit_auto_complete=_wire_bool(s.time_limit_auto_complete),
            streaming_required=_wire_bool(s.streaming_required),
            auto_start=_wire_bool(s.auto_start),
            allow_comments=_wire_bool(s.allow_comments),
            hide_comments=_wire_bool(s.hide_comments),
            allow_prerace_chat=_wire_bool(s.allow_prerace_chat),
            allow_midrace_chat=_wire_bool(s.allow_midrace_chat),
            allow_non_entrant_chat=_wire_bool(s.allow_non_entrant_chat),
            chat_message_delay=str(s.chat_message_delay),
        )
        return form

    def to_edit_form(self) -> dict[str, str]:
        """The ``edit`` form. Edit is a full replace: every field is sent, omitted ones would reset."""
        form = self.to_form()
        for name in _START_ONLY_FIELDS:
            del form[name]
        return form

    @classmethod
    def from_race(cls, race: Race) -> StartRaceRequest:
        """A request that reproduces the room as it is now; change a field and pass it to ``edit_race``."""
        return cls(
            settings=RoomSettings.from_race(race),
            goal=None if race.goal_custom else race.goal_name,
            custom_goal=race.goal_name if race.goal_custom else None,
            info_user=race.info_user or "",
            info_bot=race.info_bot or "",
        )
