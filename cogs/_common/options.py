"""Options that name things, as `app_commands.Transformer`s: what Discord offers and what the callback receives.

Each transformer (in the manner of RoboDanny's `cogs/utils/time.py` and Red's converters) keeps its two halves
together: `autocomplete` offers choices scoped to the caller's guild (filtered, at most 25), and `transform` turns
the value given into the object the command works on, again within the caller's guild, since users may type a name
or a number without picking from the list. A command says `race: app_commands.Transform[LiveRaceView, RaceOption]`
and its callback starts with the race.

A value that names nothing raises the service's own error (`NotFound`, `ValidationFailed`); discord.py wraps it in
an `app_commands.TransformerError`, and the tree's error handler (`respond.error_text`) shows the original sentence,
ephemerally. Command checks run before any transformer, so nothing is resolved for someone who may not run it.

Options that depend on another read it from the interaction's namespace: a pool belongs to the tournament named
in the same command (or to the named race's), a seed to the named pool (or to the race's). What one option
resolved is kept on the interaction (`interaction.extras`), so a command looks each value up once.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import discord
from discord import app_commands

from bot.errors import DomainError, NotFound, ValidationFailed
from bot.services.common import RECORD_ID, ROOM_OPEN_LEAD_MINUTES, IntRange
from bot.services.guilds import check_timezone
from bot.services.live_race_views import LiveRaceView
from bot.services.live_races import ACTIVE_STATUSES, UPCOMING_STATUSES
from bot.services.tournaments import MAX_REATTEMPTS, RUNS_PER_POOL
from cogs._common.base import services_of
from cogs._common.checks import is_moderator
from cogs._common.formatting import STATE_WORDS, shorten
from cogs._common.timeparse import ReadDay, ReadTime, parse_day, parse_when
from db.models import Pool, RaceStatus, RoomProfile, Seed, Tournament

if TYPE_CHECKING:
    pass

MAX_CHOICES = 25
Choices = list[app_commands.Choice[str]]
T = TypeVar("T")
_RESOLVED = "startline.options"  # the interaction.extras key of what this command's options resolved to


# ---- numbers ----------------------------------------------------------------------------------------------------
def ranged(bounds: IntRange) -> Any:
    """A whole-number option with the range its service checks, which Discord shows and enforces."""
    return app_commands.Range[int, bounds.low, bounds.high]


RunsPerPool = ranged(RUNS_PER_POOL)
MaxReattempts = ranged(MAX_REATTEMPTS)
LeadMinutes = ranged(ROOM_OPEN_LEAD_MINUTES)
RecordNumber = ranged(RECORD_ID)


def given(**values: Any) -> dict[str, Any]:
    """Only the options the user filled in (Discord passes None for the others)."""
    return {key: value for key, value in values.items() if value is not None}


def _guild(interaction: discord.Interaction) -> int:
    # The tree refuses interactions outside a guild before any command, autocomplete or transformer runs.
    assert interaction.guild_id is not None
    return interaction.guild_id


def _choice(label: str, value: int | str) -> app_commands.Choice[str]:
    return app_commands.Choice(name=shorten(label, 100), value=str(value))


def _as_id(value: str) -> int | None:
    value = value.strip().lstrip("#")
    return int(value) if value.isdigit() and len(value) < 19 else None


def _sibling(interaction: discord.Interaction, name: str) -> str | None:
    """The raw value of another option of the same command, if it was filled in."""
    value = getattr(interaction.namespace, name, None)
    return str(value) if value else None


async def _once(interaction: discord.Interaction, key: tuple, resolve: Callable[[], Awaitable[T]]) -> T:
    resolved = interaction.extras.setdefault(_RESOLVED, {})
    if key not in resolved:
        resolved[key] = await resolve()
    return resolved[key]


def _pick(candidates: Iterable[T], matches: Callable[[T], bool], missing: str) -> T:
    """The candidate a typed value names; NotFound with `missing` (which says what to do) when none does."""
    for candidate in candidates:
        if matches(candidate):
            return candidate
    raise NotFound(missing)


def _same_name(typed: str) -> Callable[[Any], bool]:
    return lambda item: item.name.lower() == typed.lower()


async def _or_none(lookup: Awaitable[T]) -> T | None:
    """For autocomplete: an option that does not resolve (yet) means no choices, not an error."""
    try:
        return await lookup
    except DomainError:
        return None


class _GuildThing(app_commands.Transformer):
    """Something of the guild (a tournament, a room profile, a season), by id or by exact name: `_find` reads it,
    once an interaction."""

    kind = ""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> Any:
        return await _once(interaction, (self.kind, value), lambda: self._find(interaction, value.strip()))

    @staticmethod
    async def _find(interaction: discord.Interaction, value: str) -> Any:
        raise NotImplementedError


# ---- tournaments -----------------------------------------------------------------------------------------------
class TournamentOption(_GuildThing):
    """A tournament of the guild, by id (what autocomplete sends) or by exact name."""

    kind = "tournament"

    @staticmethod
    async def _find(interaction: discord.Interaction, value: str) -> Tournament:
        tournaments = services_of(interaction).tournaments
        tournament_id = _as_id(value)
        if tournament_id is not None:
            return await tournaments.get_tournament(_guild(interaction), tournament_id)
        page = await tournaments.list_tournaments(_guild(interaction), search=value, limit=200)
        missing = f"there is no tournament called {value!r} in this server; pick one from the list"
        return _pick(page.items, _same_name(value), missing)

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        page = await services_of(interaction).tournaments.list_tournaments(
            _guild(interaction), search=value.strip() or None, limit=MAX_CHOICES
        )
        return [_choice(t.name if t.active else f"{t.name} (inactive)", t.id) for t in page.items]


async def _named(interaction: discord.Interaction, option: str, transformer: app_commands.Transformer) -> Any:
    """The tournament or pool this command names: its own option, else the one of the race its `race` option names."""
    if (raw := _sibling(interaction, option)) is not None:
        return await transformer.transform(interaction, raw)
    if (race := _sibling(interaction, "race")) is not None:
        return getattr(await RaceOption().transform(interaction, race), option)
    raise ValidationFailed(f"pick the {option} first", field=option)


async def named_tournament(interaction: discord.Interaction) -> Tournament:
    return await _named(interaction, "tournament", TournamentOption())


# ---- pools -------------------------------------------------------------------------------------------------------
class PoolOption(app_commands.Transformer):
    """A pool of the tournament the command names, by id or by exact name."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> Pool:
        tournament = await named_tournament(interaction)
        key = ("pool", tournament.id, value)
        return await _once(interaction, key, lambda: self._find(interaction, tournament.id, value.strip()))

    @staticmethod
    async def _find(interaction: discord.Interaction, tournament_id: int, value: str) -> Pool:
        tournaments = services_of(interaction).tournaments
        pool_id = _as_id(value)
        if pool_id is not None:
            return await tournaments.get_pool(_guild(interaction), tournament_id, pool_id)
        pools = await tournaments.list_pools(_guild(interaction), tournament_id, search=value)
        return _pick(pools, _same_name(value), f"this tournament has no pool called {value!r}; pick one from the list")

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        tournament = await _or_none(named_tournament(interaction))
        if tournament is None:
            return []
        pools = await services_of(interaction).tournaments.list_pools(
            _guild(interaction), tournament.id, search=value.strip() or None
        )
        return [_choice(pool.name, pool.id) for pool in pools[:MAX_CHOICES]]


async def named_pool(interaction: discord.Interaction) -> Pool:
    return await _named(interaction, "pool", PoolOption())


# ---- seeds -------------------------------------------------------------------------------------------------------
class SeedOption(app_commands.Transformer):
    """A seed of the pool the command names, by id or by its exact URL. Suggested to moderators only."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> Seed:
        pool = await named_pool(interaction)
        return await _once(interaction, ("seed", pool.id, value), lambda: self._find(interaction, pool, value.strip()))

    @staticmethod
    async def _find(interaction: discord.Interaction, pool: Pool, value: str) -> Seed:
        tournaments = services_of(interaction).tournaments
        seed_id = _as_id(value)
        if seed_id is not None:
            return await tournaments.get_seed(_guild(interaction), pool.tournament_id, pool.id, seed_id)
        seeds = await tournaments.list_seeds(_guild(interaction), pool.tournament_id, pool.id)
        return _pick(seeds, lambda seed: seed.url == value, "that seed is not in this pool; pick one from the list")

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        # Seeds are secret until raced, and autocomplete runs no command checks: moderators only.
        if not await is_moderator(interaction):
            return []
        pool = await _or_none(named_pool(interaction))
        if pool is None:
            return []
        needle = value.strip().lower()
        choices = []
        seeds = await services_of(interaction).tournaments.list_seeds(_guild(interaction), pool.tournament_id, pool.id)
        for seed in seeds:
            label = f"#{seed.id} {seed.url}" + (f" — {seed.notes}" if seed.notes else "")
            if needle in label.lower():
                choices.append(_choice(label, seed.id))
        return choices[:MAX_CHOICES]


# ---- room profiles -------------------------------------------------------------------------------------------
class RoomProfileOption(_GuildThing):
    """A room profile of the guild, by id or by exact name."""

    kind = "room_profile"

    @staticmethod
    async def _find(interaction: discord.Interaction, value: str) -> RoomProfile:
        profiles = services_of(interaction).room_profiles
        profile_id = _as_id(value)
        if profile_id is not None:
            return await profiles.get(_guild(interaction), profile_id)
        listed = await profiles.list(_guild(interaction), search=value)
        return _pick(listed, _same_name(value), f"there is no room profile called {value!r}; pick one from the list")

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        profiles = await services_of(interaction).room_profiles.list(_guild(interaction), search=value.strip() or None)
        return [_choice(profile.name, profile.id) for profile in profiles[:MAX_CHOICES]]


# ---- live races --------------------------------------------------------------------------------------------------
def race_number(value: str) -> int:
    race_id = _as_id(value)
    if race_id is None:
        raise ValidationFailed("pick a race from the list, or give its number (like 12)", field="race")
    return race_id


def race_label(race: Any, zone: ZoneInfo) -> str:
    """An autocomplete line: number, title, state in plain words, start in the reader's zone (`Sat 28 Mar 20:00
    CET`); a choice is plain text, so no Discord timestamp can show it in the reader's own zone."""
    local = race.scheduled_at.astimezone(zone)
    start = f"{local:%a} {local.day} {local:%b %H:%M %Z}"
    return f"#{race.id} {shorten(race.title, 50)} · {STATE_WORDS[RaceStatus(race.status)]} · {start}"


class RaceOption(app_commands.Transformer):
    """A live race of the guild, by number, as the service's `LiveRaceView` (race, tournament, pool, seed).

    `statuses` are the races autocomplete offers (unfinished ones first, soonest first); a command that acts on
    races in some states only offers those. Any race can still be typed: the service judges it.
    """

    statuses: tuple[RaceStatus, ...] | None = None  # None: every race

    async def transform(self, interaction: discord.Interaction, value: str, /) -> LiveRaceView:
        race_id = race_number(value)
        live_races = services_of(interaction).live_races
        return await _once(interaction, ("race", race_id), lambda: live_races.get(_guild(interaction), race_id))

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        services = services_of(interaction)
        zones = await services.timezones.zones(_guild(interaction), interaction.user.id)
        listings = await services.live_races.search(
            _guild(interaction), value.strip(), limit=MAX_CHOICES, statuses=self.statuses
        )
        zone = ZoneInfo(zones.effective)
        return [_choice(race_label(listing.race, zone), listing.race.id) for listing in listings[:MAX_CHOICES]]


class UnfinishedRaceOption(RaceOption):
    """Races that can still be cancelled."""

    statuses = ACTIVE_STATUSES


class EditableRaceOption(RaceOption):
    """Races that can be edited (everything while scheduled, the title while the room is open)."""

    statuses = UPCOMING_STATUSES


class ScheduledRaceOption(RaceOption):
    """Races whose room can be opened."""

    statuses = (RaceStatus.SCHEDULED,)


class RecordableRaceOption(RaceOption):
    """Races whose room is open or running (a finished one can still be typed, to re-record it with force)."""

    statuses = (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS)


class DeletableRaceOption(RaceOption):
    """Races that can be deleted."""

    statuses = (RaceStatus.SCHEDULED, RaceStatus.CANCELLED)


class RaceNumberOption(RaceOption):
    """A race's number, not looked up: for what outlives the race (its audit trail). Same suggestions."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> int:  # type: ignore[override]
        return race_number(value)


# ---- times -------------------------------------------------------------------------------------------------------
# Offered first (after the server's zone and the user's own) when the user has typed nothing or little.
COMMON_TIMEZONES = (
    "UTC",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Helsinki",
    "Europe/Moscow",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Asia/Kolkata",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Asia/Seoul",
    "Australia/Sydney",
    "Pacific/Auckland",
)


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


def _offset(zone: str, now: datetime) -> str:
    offset = now.astimezone(ZoneInfo(zone)).strftime("%z")
    return f"UTC{offset[:3]}:{offset[3:]}"


class TimezoneOption(app_commands.Transformer):
    """An IANA timezone name, like Europe/Berlin. Suggests the server's zone, the user's own and common ones first."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> str:
        return check_timezone(value.strip())

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        zones = await services_of(interaction).timezones.zones(_guild(interaction), interaction.user.id)
        notes = {zones.server: "this server's zone"}
        if zones.own:
            notes[zones.own] = "your zone" if zones.own != zones.server else "your zone and this server's"
        first = list(dict.fromkeys([zones.server, *([zones.own] if zones.own else []), *COMMON_TIMEZONES]))
        needle = value.strip().lower().replace(" ", "_")
        matches = [zone for zone in first if needle in zone.lower()]
        matches += [zone for zone in _timezones() if needle in zone.lower() and zone not in notes and zone not in first]
        now = services_of(interaction).clock()
        choices = []
        for zone in matches[:MAX_CHOICES]:
            note = f" · {notes[zone]}" if zone in notes else ""
            choices.append(_choice(f"{zone} ({_offset(zone, now)}){note}", zone))
        return choices


async def input_timezone(interaction: discord.Interaction) -> str:
    """The zone a typed time is read in: the command's `timezone` option, the user's own, else the server's."""
    zone = _sibling(interaction, "timezone")
    if zone and zone.strip():
        return check_timezone(zone.strip())
    zones = await services_of(interaction).timezones.zones(_guild(interaction), interaction.user.id)
    return zones.effective


class WhenOption(app_commands.Transformer):
    """A start time as `timeparse.parse_when` reads it (`ReadTime`: the instant and how it was read), in the
    command's `timezone` option, else the user's own zone, else the server's."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> ReadTime:
        return parse_when(value, timezone=await input_timezone(interaction), now=services_of(interaction).clock())


class StartOption(WhenOption):
    """`when` of `/liverace-admin create`: a time as `WhenOption` reads it or, when the command names a `template`,
    also a date alone (`ReadDay`), at which the template's local start time applies."""

    async def transform(self, interaction: discord.Interaction, value: str, /) -> ReadTime | ReadDay:  # type: ignore[override]
        timezone = await input_timezone(interaction)
        now = services_of(interaction).clock()
        try:
            return parse_when(value, timezone=timezone, now=now)
        except ValidationFailed:
            template = _sibling(interaction, "template")
            day = parse_day(value, timezone=timezone, now=now) if template else None
            if day is None:
                raise
            return day


# ---- templates, series, phases, seasons (issue 15) -------------------------------------------------------------
class _TournamentChild(app_commands.Transformer):
    """Something of the tournament the command names (a template, a series, a phase), by id or by exact name."""

    kind = ""

    async def _items(self, interaction: discord.Interaction, tournament_id: int, search: str | None) -> list:
        raise NotImplementedError

    @staticmethod
    def _label(item: Any) -> str:
        return item.name

    @staticmethod
    def _id(item: Any) -> int:
        return item.id

    async def transform(self, interaction: discord.Interaction, value: str, /) -> Any:
        tournament = await named_tournament(interaction)
        key = (self.kind, tournament.id, value)
        return await _once(interaction, key, lambda: self._find(interaction, tournament.id, value.strip()))

    async def _find(self, interaction: discord.Interaction, tournament_id: int, value: str) -> Any:
        items = await self._items(interaction, tournament_id, None)
        wanted = _as_id(value)
        missing = f"this tournament has no {self.kind} called {value!r}; pick one from the list"
        return _pick(
            items, lambda item: self._id(item) == wanted or self._label(item).lower() == value.lower(), missing
        )

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        tournament = await _or_none(named_tournament(interaction))
        if tournament is None:
            return []
        items = await self._items(interaction, tournament.id, value.strip() or None)
        typed = value.strip().lower()
        return [_choice(self._label(item), self._id(item)) for item in items if typed in self._label(item).lower()][
            :MAX_CHOICES
        ]


class TemplateOption(_TournamentChild):
    kind = "template"

    async def _items(self, interaction: discord.Interaction, tournament_id: int, search: str | None) -> list:
        return await services_of(interaction).templates.list(_guild(interaction), tournament_id)


class SeriesOption(_TournamentChild):
    kind = "series"

    async def _items(self, interaction: discord.Interaction, tournament_id: int, search: str | None) -> list:
        page = await services_of(interaction).series.list(_guild(interaction), tournament_id, limit=200)
        return page.items

    @staticmethod
    def _label(item: Any) -> str:
        return item.series.name

    @staticmethod
    def _id(item: Any) -> int:
        return item.series.id


class PhaseOption(_TournamentChild):
    kind = "phase"

    async def _items(self, interaction: discord.Interaction, tournament_id: int, search: str | None) -> list:
        return await services_of(interaction).phases.list(_guild(interaction), tournament_id)

    @staticmethod
    def _label(item: Any) -> str:
        return f"{item.phase.position}. {item.phase.name}"

    @staticmethod
    def _id(item: Any) -> int:
        return item.phase.id

    async def _find(self, interaction: discord.Interaction, tournament_id: int, value: str) -> Any:
        items = await self._items(interaction, tournament_id, None)
        wanted = _as_id(value)
        missing = f"this tournament has no phase called {value!r}; pick one from the list"
        return _pick(items, lambda v: v.phase.id == wanted or v.phase.name.lower() == value.lower(), missing)


class SeasonOption(_GuildThing):
    """A season of the guild, by id or by exact name."""

    kind = "season"

    @staticmethod
    async def _find(interaction: discord.Interaction, value: str) -> Any:
        seasons = services_of(interaction).seasons
        page = await seasons.list(_guild(interaction), search=value, limit=200)
        for view in page.items:  # a name first: seasons are often called by a year
            if view.season.name.lower() == value.lower():
                return view
        season_id = _as_id(value)
        if season_id is not None:
            return await seasons.get(_guild(interaction), season_id)
        raise NotFound(f"there is no season called {value!r} in this server; pick one from the list")

    async def autocomplete(self, interaction: discord.Interaction, value: str, /) -> Choices:  # type: ignore[override]
        page = await services_of(interaction).seasons.list(
            _guild(interaction), search=value.strip() or None, limit=MAX_CHOICES
        )
        return [_choice(view.season.name, view.season.id) for view in page.items]
