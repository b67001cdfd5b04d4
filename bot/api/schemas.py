"""Pydantic models of every request body, query and response of the REST API.

The same models validate input, serialise output and, through the route registry, make the OpenAPI document:
the contract cannot drift from the code. Conventions:
- times out are ISO 8601 UTC with `Z`; times in must carry an offset (`AwareDatetime`);
- Discord ids (users, channels, roles) go out as strings, since they exceed JavaScript's safe integers, and
  come in as a string or an integer;
- every input model forbids unknown fields, and every number and string is bounded so nothing out of range
  reaches the database.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    computed_field,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from bot.services.common import MAX_PAGE_SIZE, ROOM_OPEN_LEAD_MINUTES
from bot.services.room_profiles import ROOM_SETTINGS, RoomSetting
from bot.services.seed_import import MAX_IMPORT_LINES
from bot.services.tournaments import MAX_REATTEMPTS, RUNS_PER_POOL
from db.models import EventType, NotificationKind, NotificationStatus, RaceStatus, RunStatus

MAX_ID = 2**63 - 1
_SNOWFLAKE = re.compile(r"^[0-9]{1,19}$")

T = TypeVar("T")


def iso_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _to_snowflake(value: Any) -> Any:
    """A Discord id given as a JSON string or integer; range checks follow in the field constraints."""
    if isinstance(value, str) and _SNOWFLAKE.match(value.strip()):
        return int(value.strip())
    if isinstance(value, bool):  # bool is an int in Python, never a Discord id
        raise ValueError("must be a Discord id (digits, as a string or an integer)")
    if isinstance(value, int):
        return value
    raise ValueError("must be a Discord id (digits, as a string or an integer)")


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
UtcDateTime = Annotated[
    datetime,
    PlainSerializer(iso_utc, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-01T19:00:00Z"]}),
]
InstantIn = Annotated[
    AwareDatetime, WithJsonSchema({"type": "string", "format": "date-time", "examples": ["2026-12-01T19:00:00Z"]})
]
SnowflakeOut = Annotated[
    str, BeforeValidator(str), WithJsonSchema({"type": "string", "pattern": "^[0-9]+$", "examples": ["81234567890"]})
]
SnowflakeIn = Annotated[
    int,
    BeforeValidator(_to_snowflake),
    Field(ge=1, le=MAX_ID),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            ],
            "examples": ["81234567890123456"],
        }
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Text = Annotated[str, Field(max_length=2000)]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class OutputModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- old names --------------------------------------------------------------------------------------------
# Seeds were called permalinks in the API: the old field names stay accepted in requests and present in answers
# (same value) so existing scripts keep working. See "Aliases" in docs/api.md.

OLD_NAME = "old name of `{new}`, still accepted; send `{new}`"


def old_name(new: str, **options: Any) -> Any:
    """A request field kept under its old name: read as `new` (see `renamed`), never dumped."""
    return Field(
        default=None,
        exclude=True,
        description=OLD_NAME.format(new=new),
        json_schema_extra={"deprecated": True},
        **options,
    )


def renamed(**new_by_old: str) -> Any:
    """A model validator that reads each old field name as its new one; both given and different is refused."""

    def read_old_names(cls: type[BaseModel], data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for old, new in new_by_old.items():
            if old in data:
                data = dict(data)
                value = data.pop(old)
                if new in data and data[new] != value:
                    raise PydanticCustomError(
                        "renamed_field_conflict",
                        "{new} and {old} (its old name) are both given and differ; send {new} only",
                        {"new": new, "old": old},
                    )
                data[new] = value
        return data

    return model_validator(mode="before")(read_old_names)  # type: ignore[arg-type]


def either_required(new: str, old: str) -> Any:
    """The JSON schema of a model whose required field `new` may come under its old name `old` instead."""

    def adjust(schema: dict[str, Any]) -> None:
        schema["required"] = [name for name in schema.get("required", []) if name != new]
        if not schema["required"]:
            del schema["required"]
        schema["anyOf"] = [{"required": [new]}, {"required": [old]}]

    return adjust


# ---- shared shapes ------------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(examples=["validation_error"])
    message: str
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorBody


class ItemsPage(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(description="pass as `cursor` to get the next page; null on the last page")


class PageQuery(InputModel):
    limit: int | None = Field(default=None, ge=1, le=MAX_PAGE_SIZE, description="page size (default 50)")
    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the previous page")


class Ref(OutputModel):
    id: int
    name: str


# ---- health ---------------------------------------------------------------------------------------------


class JobHealth(BaseModel):
    runs: int
    failures: int
    last_error: str | None


class RacetimeBotHealth(BaseModel):
    """One category bot's token health as this process saw it (`credentials`: `default` for one bot serving every
    category)."""

    credentials: str
    last_token_at: UtcDateTime | None
    last_success_at: UtcDateTime | None
    last_error: str | None
    last_error_at: UtcDateTime | None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: str
    discord: str
    racetime: str
    racetime_bots: dict[str, RacetimeBotHealth]
    jobs: dict[str, JobHealth]


# ---- status (GET /api/v1/status) ----------------------------------------------------------------------------
class ProcessOut(BaseModel):
    id: str
    hostname: str
    pid: int
    version: str
    discord: str
    started_at: UtcDateTime
    seen_at: UtcDateTime
    this_process: bool


class JobStateOut(BaseModel):
    name: str
    interval_seconds: float
    last_run_at: UtcDateTime | None
    last_success_at: UtcDateTime | None
    lag_seconds: float
    last_error: str | None
    behind: bool


class OutboxOut(BaseModel):
    depth: int
    oldest_created_at: UtcDateTime | None
    failed_dms_last_day: int


class CategoryHealthOut(BaseModel):
    category: str
    credentials: str
    healthy: bool
    last_token_at: UtcDateTime | None
    last_success_at: UtcDateTime | None
    last_error: str | None
    last_error_at: UtcDateTime | None


class ChannelCheckOut(BaseModel):
    channel_id: SnowflakeOut
    purpose: str
    missing: list[str]


class PermissionsOut(BaseModel):
    source: Literal["gateway", "last check", "needs gateway"]
    checked_at: UtcDateTime | None
    channels: list[ChannelCheckOut]


class StatusOut(BaseModel):
    generated_at: UtcDateTime
    process_count: int
    processes: list[ProcessOut]
    jobs: list[JobStateOut]
    outbox: OutboxOut
    racetime: list[CategoryHealthOut]
    permissions: PermissionsOut
    problems: list[str]


# ---- room settings and profiles ---------------------------------------------------------------------------


def room_setting_field(setting: RoomSetting) -> tuple[Any, Any]:
    """The pydantic field of a room setting: its type, range or choices, and its description."""
    about = f"{setting.help_text}; built-in: {setting.default_text}"
    if setting.kind is bool:
        return (bool | None, Field(default=None, description=about))
    if setting.kind is str:
        return (Literal[setting.choices] | None, Field(default=None, description=about))  # type: ignore[valid-type]
    return (int | None, Field(default=None, ge=setting.low, le=setting.high, description=about))


_ROOM_FIELDS = {name: room_setting_field(setting) for name, setting in ROOM_SETTINGS.items()}

RoomSettings = create_model(
    "RoomSettings",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Per-race RaceTime.gg room settings; an absent or null field inherits from the profiles.",
    **_ROOM_FIELDS,
)
RoomProfileCreate = create_model(
    "RoomProfileCreate", __config__=ConfigDict(extra="forbid"), name=(Name, ...), **_ROOM_FIELDS
)
RoomProfileUpdate = create_model(
    "RoomProfileUpdate",
    __config__=ConfigDict(extra="forbid"),
    __doc__="Only the fields given change; a setting given as null goes back to inheriting.",
    name=(Name | None, None),
    **_ROOM_FIELDS,
)
RoomProfileOut = create_model(
    "RoomProfileOut",
    __base__=OutputModel,
    id=(int, ...),
    name=(str, ...),
    created_at=(UtcDateTime, ...),
    updated_at=(UtcDateTime, ...),
    **{name: (field_type, None) for name, (field_type, _) in _ROOM_FIELDS.items()},
)


# ---- tournaments, pools, seeds --------------------------------------------------------------------------


class TournamentOut(OutputModel):
    id: int
    name: str
    description: str
    active: bool
    runs_per_pool: int
    max_reattempts: int = Field(description="-1 means unlimited")
    racetime_category: str | None
    racetime_goal: str | None
    custom_goal: str | None
    announcement_channel_id: SnowflakeOut | None
    announcement_role_id: SnowflakeOut | None
    room_profile_id: int | None
    room_open_lead_minutes: int | None
    scheduled_events: bool | None = Field(
        default=None, description="Mirror races as Discord Scheduled Events: null follows the server's setting"
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime


class TournamentFields(InputModel):
    description: Text | None = None
    active: bool | None = None
    runs_per_pool: int | None = Field(default=None, ge=RUNS_PER_POOL.low, le=RUNS_PER_POOL.high)
    max_reattempts: int | None = Field(default=None, ge=MAX_REATTEMPTS.low, le=MAX_REATTEMPTS.high)
    racetime_category: str | None = Field(default=None, max_length=50)
    racetime_goal: str | None = Field(default=None, max_length=255)
    custom_goal: str | None = Field(default=None, max_length=255)
    announcement_channel_id: SnowflakeIn | None = None
    announcement_role_id: SnowflakeIn | None = None
    room_profile_id: Id | None = None
    room_open_lead_minutes: int | None = Field(
        default=None, ge=ROOM_OPEN_LEAD_MINUTES.low, le=ROOM_OPEN_LEAD_MINUTES.high
    )
    scheduled_events: bool | None = None


class TournamentCreate(TournamentFields):
    name: Name


class TournamentUpdate(TournamentFields):
    name: Name | None = None


class TournamentQuery(PageQuery):
    active: bool | None = None
    search: str | None = Field(default=None, max_length=100)


class PoolOut(OutputModel):
    id: int
    tournament_id: int
    name: str
    description: str
    created_at: UtcDateTime


class PoolCreate(InputModel):
    name: Name
    description: Text = ""


class PoolUpdate(InputModel):
    name: Name | None = None
    description: Text | None = None


class SeedOut(OutputModel):
    id: int
    pool_id: int
    url: str | None = Field(description="null for read tokens until the seed has been raced in an opened room")
    notes: str
    par_time: float | None = Field(description="seconds")
    used_in_live_race: bool
    created_at: UtcDateTime


class SeedCreate(InputModel):
    url: str = Field(min_length=1, max_length=500, examples=["https://alttpr.com/h/abc123"])
    notes: str = Field(default="", max_length=1000)


class SeedBatchCreate(InputModel):
    model_config = ConfigDict(json_schema_extra=either_required("seeds", "permalinks"))

    seeds: list[SeedCreate] = Field(
        min_length=1,
        max_length=MAX_IMPORT_LINES,
        description="every seed is added, or none: a refusal lists each bad one by its position (`line`, from 1)",
    )
    permalinks: list[SeedCreate] | None = old_name("seeds", min_length=1, max_length=MAX_IMPORT_LINES)

    _old_names = renamed(permalinks="seeds")


class SeedList(BaseModel):
    items: list[SeedOut]


class SeedUpdate(InputModel):
    url: str | None = Field(default=None, min_length=1, max_length=500)
    notes: str | None = Field(default=None, max_length=1000)


# ---- live races -----------------------------------------------------------------------------------------


class SeedRef(OutputModel):
    id: int
    url: str


class RacetimeRoom(BaseModel):
    slug: str
    url: str | None
    status: str | None


class LiveRaceOut(OutputModel):
    id: int
    tournament_id: int
    pool: Ref
    seed: SeedRef | None = Field(description="visible to manage tokens, and to read tokens once the room opened")
    title: str
    episode_id: str | None
    status: RaceStatus
    scheduled_at: UtcDateTime
    room_opens_at: UtcDateTime
    racetime: RacetimeRoom | None
    room_profile_id: int | None
    room: dict[str, Any] = Field(description="the race's own room settings (overrides)")
    room_opened_at: UtcDateTime | None
    started_at: UtcDateTime | None
    ended_at: UtcDateTime | None
    entrant_count: int = Field(description="RaceTime.gg entrants in the room at the start, counted or not")
    participant_count: int = Field(description="players who got a run (entrants the race counts)")
    finisher_count: int = Field(description="participants who finished")
    cancel_reason: str | None
    last_error: str | None
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @computed_field(description="old name of `seed`, kept for existing scripts")  # type: ignore[prop-decorator]
    @property
    def permalink(self) -> SeedRef | None:
        return self.seed


class LiveRaceCreate(InputModel):
    pool_id: Id
    scheduled_at: InstantIn
    title: str | None = Field(default=None, min_length=1, max_length=200)
    seed_id: Id | None = None
    permalink_id: Id | None = old_name("seed_id")
    episode_id: str | None = Field(default=None, min_length=1, max_length=100)
    room_profile_id: Id | None = None
    room: RoomSettings | None = None  # type: ignore[valid-type]

    _old_names = renamed(permalink_id="seed_id")


class LiveRaceUpdate(InputModel):
    """Only the fields given change. While the room is open only `title` may change."""

    pool_id: Id | None = None
    scheduled_at: InstantIn | None = None
    title: str | None = Field(default=None, min_length=1, max_length=200)
    seed_id: Id | None = None
    permalink_id: Id | None = old_name("seed_id")
    episode_id: str | None = Field(default=None, min_length=1, max_length=100)
    room_profile_id: Id | None = None
    room: RoomSettings | None = None  # type: ignore[valid-type]

    _old_names = renamed(permalink_id="seed_id")


class LiveRaceQuery(PageQuery):
    status: list[RaceStatus] | None = Field(default=None, description="repeat to filter on several statuses")


class ScheduledQuery(PageQuery):
    tournament_id: Id | None = None


class CancelBody(InputModel):
    reason: str = Field(min_length=1, max_length=500)


class RecordBody(InputModel):
    force: bool = Field(
        default=False, description="record a room still running as it stands, or reconcile a recorded race"
    )


class Candidate(OutputModel):
    discord_user_id: SnowflakeOut
    display_name: str
    racetime_id: str | None
    racetime_name: str | None


class Ineligible(BaseModel):
    player: Candidate
    reason: str


class EligibilityOut(BaseModel):
    race_id: int
    tournament_id: int
    pool_id: int
    eligible: list[Candidate]
    ineligible: list[Ineligible]


class EntrantOut(OutputModel):
    racetime_id: str
    racetime_name: str
    discord_user_id: SnowflakeOut | None
    display_name: str | None
    counted: bool
    reason: str | None = Field(description="why no run was given (not eligible)")
    status: str
    place: int | None
    elapsed_seconds: float | None
    finished_at: UtcDateTime | None
    run_id: int | None
    score: float | None


class ResultsOut(BaseModel):
    race: LiveRaceOut
    entrants: list[EntrantOut]


def _event_types_described() -> str:
    types = "; ".join(f"`{e.code}` `{e.value}` ({e.spec.label})" for e in sorted(EventType, key=lambda e: e.code))
    return f"The notification type: {types}. Null for a moderator alert (a room that would not open)."


class NotificationOut(OutputModel):
    id: int
    kind: NotificationKind
    # Both null for a moderator alert (a room that would not open), which is no subscribable event.
    event_type: EventType | None = Field(description=_event_types_described())
    event_code: int | None = Field(description="The number of `event_type`, as `/notify` shows it.")
    player_id: int | None
    channel_id: SnowflakeOut | None
    status: NotificationStatus = Field(
        description="`expired`: not sent because it had gone stale (the race moved on); `error` says why."
    )
    attempts: int
    next_attempt_at: UtcDateTime
    error: str | None
    created_at: UtcDateTime
    sent_at: UtcDateTime | None


class NotificationQuery(PageQuery):
    status: NotificationStatus | None = None


class ResentOut(BaseModel):
    requeued: int = Field(description="failed notifications queued again")
    expired: int = Field(description="failed notifications that had gone stale meanwhile: now `expired`, not resent")


# ---- players and runs -----------------------------------------------------------------------------------


class PlayerOut(OutputModel):
    """A player as the token's guild sees them. Players are global (one per Discord user), but the name, a
    moderator-set RaceTime.gg link and the membership are this guild's own: no other guild can change them."""

    id: int
    discord_user_id: SnowflakeOut
    display_name: str = Field(description="this guild's name for the player")
    racetime_id: str | None = Field(
        description="the RaceTime.gg account that counts in this guild: the player's verified link, else this "
        "guild's unverified one"
    )
    racetime_name: str | None
    racetime_verified: bool = Field(
        description="true: the player proved the link through RaceTime.gg; theirs in every guild, it wins over "
        "any guild's link and no moderator can replace it"
    )
    dm_blocked: bool
    joined_at: UtcDateTime = Field(description="when the player joined this guild's roster")
    left_at: UtcDateTime | None = Field(
        description="when the member left the server or was banned (not eligible, no DMs); null while a member"
    )
    created_at: UtcDateTime
    updated_at: UtcDateTime


class PlayerUpsert(InputModel):
    display_name: Name = Field(description="this guild's name for the player")
    racetime_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        examples=["7BzeW5ErWom9Xgpb"],
        description="an unverified link, for this guild only",
    )
    racetime_name: str | None = Field(default=None, min_length=1, max_length=100)


class PlayerQuery(PageQuery):
    linked: bool | None = Field(default=None, description="only players with (true) or without (false) a link")
    left: bool | None = Field(default=None, description="only players who left (true) or who are members (false)")
    search: str | None = Field(default=None, max_length=100)


class PlayerRef(BaseModel):
    discord_user_id: SnowflakeOut
    display_name: str


class RunOut(BaseModel):
    id: int
    tournament_id: int
    pool: Ref
    seed_id: int
    player: PlayerRef
    live_race_id: int | None
    status: RunStatus
    start_time: UtcDateTime | None
    end_time: UtcDateTime | None
    elapsed_seconds: float | None
    place: int | None
    reattempted: bool
    score: float | None
    source: str
    created_at: UtcDateTime
    updated_at: UtcDateTime

    @computed_field(description="old name of `seed_id`, kept for existing scripts")  # type: ignore[prop-decorator]
    @property
    def permalink_id(self) -> int:
        return self.seed_id


class RunImport(InputModel):
    model_config = ConfigDict(json_schema_extra=either_required("seed_id", "permalink_id"))

    discord_user_id: SnowflakeIn
    seed_id: Id
    permalink_id: Id | None = old_name("seed_id")
    status: RunStatus
    elapsed_seconds: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    finished_at: InstantIn | None = None
    reattempted: bool = False

    _old_names = renamed(permalink_id="seed_id")


class RunQuery(PageQuery):
    discord_user_id: SnowflakeIn | None = None
    pool_id: Id | None = None
    seed_id: Id | None = None
    permalink_id: Id | None = old_name("seed_id")
    live_race_id: Id | None = None
    status: RunStatus | None = None

    _old_names = renamed(permalink_id="seed_id")


class PoolScores(BaseModel):
    pool_id: int
    scores: list[float]


class LeaderboardEntryOut(BaseModel):
    rank: int
    discord_user_id: SnowflakeOut
    display_name: str
    score: float
    runs_counted: int
    pools: list[PoolScores]


class LeaderboardOut(BaseModel):
    tournament_id: int
    runs_per_pool: int
    pools: list[Ref]
    entries: list[LeaderboardEntryOut]


# ---- audit and calendar ---------------------------------------------------------------------------------


class ActorOut(BaseModel):
    type: Literal["player", "token", "system"]
    id: str | None
    name: str


class AuditEntryOut(BaseModel):
    id: int
    actor: ActorOut
    action: str
    target_type: str
    target_id: int | None
    details: dict[str, Any]
    created_at: UtcDateTime


class AuditQuery(PageQuery):
    target_type: str | None = Field(default=None, max_length=32)
    target_id: Id | None = None
    action: str | None = Field(default=None, max_length=64)


class CalendarOut(BaseModel):
    url: str = Field(description="subscribe to this URL in a calendar app; whoever has it can read the schedule")


class CalendarQuery(InputModel):
    key: str = Field(min_length=1, max_length=100)


# ---- race templates, series, batches ---------------------------------------------------------------------

# Strict: a JSON `true` is no count or id (pydantic's lax mode would read it as 1).
StrictId = Annotated[int, Field(strict=True, ge=1, le=MAX_ID)]


def _count(low: int, high: int, **extra: Any) -> Any:
    return Field(default=None, strict=True, ge=low, le=high, **extra)


LocalTime = Annotated[str, Field(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$", examples=["20:00"])]
ZoneName = Annotated[str, Field(min_length=1, max_length=64, examples=["Europe/Berlin"])]
TitlePattern = Annotated[
    str,
    Field(
        min_length=1,
        max_length=200,
        description="fields: {n} occurrence number, {date} local date, {pool}, {tournament}, {series}",
        examples=["Week {n} — {pool}"],
    ),
]


class TemplateFields(InputModel):
    pool_ids: list[StrictId] | None = Field(default=None, min_length=1, max_length=50, description="rotated in order")
    title_pattern: TitlePattern | None = None
    start_time: LocalTime | None = None
    timezone: ZoneName | None = None
    room_profile_id: Id | None = None
    room: RoomSettings | None = None  # type: ignore[valid-type]
    room_open_lead_minutes: int | None = Field(
        default=None,
        ge=ROOM_OPEN_LEAD_MINUTES.low,
        le=ROOM_OPEN_LEAD_MINUTES.high,
        description="its races' room opens this long before the start (null: the tournament's)",
    )
    announcement_channel_id: SnowflakeIn | None = Field(
        default=None, description="its races are announced here (null: the tournament's channel)"
    )
    announcement_role_id: SnowflakeIn | None = Field(
        default=None, description="the role pinged in its races' announcements (null: the tournament's)"
    )


class TemplateCreate(TemplateFields):
    name: Name
    pool_ids: list[StrictId] = Field(min_length=1, max_length=50, description="rotated in order")


class TemplateUpdate(TemplateFields):
    name: Name | None = None


class TemplateOut(OutputModel):
    id: int
    tournament_id: int
    name: str
    pool_ids: list[int]
    title_pattern: str | None
    start_time: str | None
    timezone: str | None
    room_profile_id: int | None
    room: dict[str, Any]
    room_open_lead_minutes: int | None
    announcement_channel_id: SnowflakeOut | None
    announcement_role_id: SnowflakeOut | None
    created_at: UtcDateTime
    updated_at: UtcDateTime


class TemplateRaceCreate(InputModel):
    """`when`: a date (the template's local start time) or an instant with an offset."""

    when: InstantIn | date = Field(examples=["2026-12-05", "2026-12-05T20:00:00+01:00"])
    title: str | None = Field(default=None, min_length=1, max_length=200)
    episode_id: str | None = Field(default=None, min_length=1, max_length=100)
    seed_id: Id | None = None
    permalink_id: Id | None = old_name("seed_id")

    _old_names = renamed(permalink_id="seed_id")


class OccurrenceOut(BaseModel):
    number: int
    date: str
    starts_at: UtcDateTime


class SeriesOut(BaseModel):
    id: int
    tournament_id: int
    name: str
    template: TemplateOut
    rrule: str
    timezone: str
    starts_on: str
    until: UtcDateTime | None
    count: int | None
    status: Literal["active", "paused", "ended"]
    status_reason: str | None
    next_occurrences: list[OccurrenceOut]
    created_by: str
    created_at: UtcDateTime
    updated_at: UtcDateTime


# A rule is walked from its first date on: one from centuries ago took seconds to answer (the contract test found it).
FIRST_SERIES_DATE = date(2000, 1, 1)


class SeriesCreate(InputModel):
    name: Name
    rrule: str = Field(min_length=1, max_length=500, examples=["FREQ=WEEKLY;BYDAY=SA"])
    timezone: ZoneName | None = Field(default=None, description="default: the template's")
    template_id: Id | None = None
    template: TemplateFields | None = Field(default=None, description="template fields, instead of template_id")
    starts_on: date | None = Field(
        default=None, ge=FIRST_SERIES_DATE, description="the rule's first local date (default: today)"
    )
    until: InstantIn | None = None
    count: int | None = _count(1, 1000)


class SeriesUpdate(InputModel):
    name: Name | None = None
    rrule: str | None = Field(default=None, min_length=1, max_length=500)
    timezone: ZoneName | None = None
    template_id: Id | None = None
    starts_on: date | None = Field(default=None, ge=FIRST_SERIES_DATE)
    until: InstantIn | None = None
    count: int | None = _count(1, 1000)
    status: Literal["active", "paused"] | None = None


class SeriesSkip(InputModel):
    date: date


class SeriesMove(InputModel):
    date: date
    to: InstantIn


class BatchCreate(InputModel):
    races: list[LiveRaceCreate] = Field(min_length=1, max_length=10000)
    dry_run: bool = Field(default=False, strict=True)


class BatchPlanned(BaseModel):
    line: int
    pool: Ref
    scheduled_at: UtcDateTime
    title: str
    seed_id: int | None
    episode_id: str | None
    room_profile_id: int | None

    @computed_field(description="old name of `seed_id`, kept for existing scripts")  # type: ignore[prop-decorator]
    @property
    def permalink_id(self) -> int | None:
        return self.seed_id


class BatchOut(BaseModel):
    dry_run: bool
    planned: list[BatchPlanned]
    created: list[LiveRaceOut]


# ---- phases and seasons ----------------------------------------------------------------------------------


class PhaseCreate(InputModel):
    name: Name
    advance_count: int | None = _count(1, 10000)
    pool_ids: list[StrictId] = Field(default_factory=list, max_length=50)


class PhaseUpdate(InputModel):
    name: Name | None = None
    advance_count: int | None = _count(1, 10000)
    pool_ids: list[StrictId] | None = Field(default=None, max_length=50)


class PhaseOut(BaseModel):
    id: int
    tournament_id: int
    name: str
    position: int
    status: Literal["open", "closed"]
    advance_count: int | None
    pools: list[Ref]
    closed_at: UtcDateTime | None


class PhaseClose(InputModel):
    top: int | None = _count(1, 10000, description="default: the phase's advance_count")
    players: list[SnowflakeIn] | None = Field(
        default=None, max_length=10000, description="Discord ids to advance instead of the top"
    )


class StandingOut(BaseModel):
    discord_user_id: SnowflakeOut
    display_name: str
    rank: int | None
    score: float | None
    advanced: bool


class StandingsOut(BaseModel):
    phase_id: int
    standings: list[StandingOut]


class SeasonCreate(InputModel):
    name: Name
    description: Text = ""
    rule: Literal["sum", "best"] = "sum"
    best_of: int | None = _count(1, 100, description="with rule best: how many tournaments count")
    tournament_ids: list[StrictId] = Field(default_factory=list, max_length=100)


class SeasonUpdate(InputModel):
    name: Name | None = None
    description: Text | None = None
    rule: Literal["sum", "best"] | None = None
    best_of: int | None = _count(1, 100)
    tournament_ids: list[StrictId] | None = Field(default=None, max_length=100)


class SeasonOut(BaseModel):
    id: int
    name: str
    description: str
    rule: Literal["sum", "best"]
    best_of: int | None
    tournaments: list[Ref]
    created_at: UtcDateTime
    updated_at: UtcDateTime


class SeasonEntryOut(BaseModel):
    rank: int
    discord_user_id: SnowflakeOut
    display_name: str
    score: float
    tournament_scores: dict[str, float] = Field(description="by tournament id")
    counted: list[int] = Field(description="the tournaments the rule kept")


class SeasonLeaderboardOut(BaseModel):
    season_id: int
    rule: Literal["sum", "best"]
    best_of: int | None
    tournaments: list[Ref]
    entries: list[SeasonEntryOut]


# ---- reminders and RSVPs ----------------------------------------------------------------------------------


class RemindersIn(InputModel):
    offsets_minutes: list[int] = Field(
        max_length=3,
        examples=[[1440, 60, 10]],
        description="minutes before the start, each one of 10, 30, 60, 180, 720, 1440; at most 3; [] for none",
    )


class RemindersOut(BaseModel):
    offsets_minutes: list[int] = Field(description="the reminders chosen in this guild, largest first")


class GuildRemindersOut(BaseModel):
    offsets_minutes: list[int] = Field(
        description="the guild's default reminders for players who chose none, largest first ([]: no default)"
    )


class RsvpOut(BaseModel):
    discord_user_id: str = Field(description="as a string: Discord ids exceed JavaScript's safe integers")
    display_name: str = Field(description="this guild's name for the player (the Discord id when it has none)")


class RsvpChange(BaseModel):
    changed: bool = Field(description="false when the player had already RSVP'd (PUT) or had not (DELETE)")


class RsvpList(BaseModel):
    items: list[RsvpOut]
    interested: list[RsvpOut] = Field(
        default_factory=list,
        description="who pressed Interested on the race's Discord Scheduled Event, oldest first: they get its "
        "reminders too",
    )
