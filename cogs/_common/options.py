"""Options that name things: autocomplete (scoped to the guild, filtered, at most 25) and resolution.

An autocomplete choice carries the id as its value, but users may also type a name (or a number) without
picking from the list, so every option is resolved again in the callback, always within the caller's guild.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands

from bot.errors import NotFound, ValidationFailed
from bot.services.guilds import check_timezone
from cogs._common.checks import is_moderator
from cogs._common.formatting import shorten
from db.models import Permalink, Pool, RoomProfile, Tournament

if TYPE_CHECKING:
    from bot.services import Services

MAX_CHOICES = 25
Choices = list[app_commands.Choice[str]]


def services_of(interaction: discord.Interaction) -> Services:
    return interaction.client.app.services  # type: ignore[attr-defined]


def _choice(label: str, value: int | str) -> app_commands.Choice[str]:
    return app_commands.Choice(name=shorten(label, 100), value=str(value))


def _as_id(value: str) -> int | None:
    value = value.strip().lstrip("#")
    return int(value) if value.isdigit() and len(value) < 19 else None


# ---- resolution ------------------------------------------------------------------------------------------------
async def tournament_from(services: Services, guild_id: int, value: str) -> Tournament:
    tournament_id = _as_id(value)
    if tournament_id is not None:
        return await services.tournaments.get_tournament(guild_id, tournament_id)
    page = await services.tournaments.list_tournaments(guild_id, search=value.strip(), limit=200)
    for tournament in page.items:
        if tournament.name.lower() == value.strip().lower():
            return tournament
    raise NotFound(f"there is no tournament called {value.strip()!r} in this server; pick one from the list")


async def pool_from(services: Services, guild_id: int, tournament_id: int, value: str) -> Pool:
    pool_id = _as_id(value)
    if pool_id is not None:
        return await services.tournaments.get_pool(guild_id, tournament_id, pool_id)
    for pool in await services.tournaments.list_pools(guild_id, tournament_id, search=value.strip()):
        if pool.name.lower() == value.strip().lower():
            return pool
    raise NotFound(f"this tournament has no pool called {value.strip()!r}; pick one from the list")


async def seed_from(services: Services, guild_id: int, tournament_id: int, pool_id: int, value: str) -> Permalink:
    seed_id = _as_id(value)
    if seed_id is not None:
        return await services.tournaments.get_permalink(guild_id, tournament_id, pool_id, seed_id)
    for permalink in await services.tournaments.list_permalinks(guild_id, tournament_id, pool_id):
        if permalink.url == value.strip():
            return permalink
    raise NotFound("that seed is not in this pool; pick one from the list")


async def room_profile_from(services: Services, guild_id: int, value: str) -> RoomProfile:
    profile_id = _as_id(value)
    if profile_id is not None:
        return await services.room_profiles.get(guild_id, profile_id)
    for profile in await services.room_profiles.list(guild_id, search=value.strip()):
        if profile.name.lower() == value.strip().lower():
            return profile
    raise NotFound(f"there is no room profile called {value.strip()!r}; pick one from the list")


def given(**values: Any) -> dict[str, Any]:
    """Only the options the user filled in (Discord passes None for the others)."""
    return {key: value for key, value in values.items() if value is not None}


def race_id_from(value: str) -> int:
    race_id = _as_id(value)
    if race_id is None:
        raise ValidationFailed("pick a race from the list, or give its number (like 12)", field="race")
    return race_id


def timezone_from(value: str | None, default: str) -> str:
    if value is None or not value.strip():
        return default
    return check_timezone(value.strip())


# ---- autocomplete ------------------------------------------------------------------------------------------------
async def tournament_autocomplete(interaction: discord.Interaction, current: str) -> Choices:
    page = await services_of(interaction).tournaments.list_tournaments(
        interaction.guild_id,  # type: ignore[arg-type]
        search=current.strip() or None,
        limit=MAX_CHOICES,
    )
    return [_choice(t.name if t.active else f"{t.name} (inactive)", t.id) for t in page.items]


async def _race_in_namespace(interaction: discord.Interaction):
    race = getattr(interaction.namespace, "race", None)
    if not race:
        return None
    try:
        return await services_of(interaction).live_races.get(interaction.guild_id, race_id_from(str(race)))  # type: ignore[arg-type]
    except (NotFound, ValidationFailed):
        return None


async def _tournament_in_namespace(interaction: discord.Interaction) -> Tournament | None:
    """The tournament chosen in another option of the same command, else the one of the chosen race."""
    raw = getattr(interaction.namespace, "tournament", None)
    if raw:
        try:
            return await tournament_from(services_of(interaction), interaction.guild_id, str(raw))  # type: ignore[arg-type]
        except NotFound:
            return None
    view = await _race_in_namespace(interaction)
    return view.tournament if view else None


async def _pool_in_namespace(interaction: discord.Interaction, tournament: Tournament) -> Pool | None:
    """The pool chosen in another option, else the one of the chosen race."""
    raw = getattr(interaction.namespace, "pool", None)
    if raw:
        try:
            return await pool_from(services_of(interaction), interaction.guild_id, tournament.id, str(raw))  # type: ignore[arg-type]
        except NotFound:
            return None
    view = await _race_in_namespace(interaction)
    return view.pool if view else None


async def pool_autocomplete(interaction: discord.Interaction, current: str) -> Choices:
    tournament = await _tournament_in_namespace(interaction)
    if tournament is None:
        return []
    pools = await services_of(interaction).tournaments.list_pools(
        interaction.guild_id,  # type: ignore[arg-type]
        tournament.id,
        search=current.strip() or None,
    )
    return [_choice(pool.name, pool.id) for pool in pools[:MAX_CHOICES]]


async def seed_autocomplete(interaction: discord.Interaction, current: str) -> Choices:
    # Seeds are secret until raced, and autocomplete runs no command checks: moderators only.
    if not await is_moderator(interaction):
        return []
    tournament = await _tournament_in_namespace(interaction)
    pool = await _pool_in_namespace(interaction, tournament) if tournament else None
    if tournament is None or pool is None:
        return []
    needle = current.strip().lower()
    choices = []
    seeds = await services_of(interaction).tournaments.list_permalinks(interaction.guild_id, tournament.id, pool.id)  # type: ignore[arg-type]
    for permalink in seeds:
        label = f"#{permalink.id} {permalink.url}" + (f" — {permalink.notes}" if permalink.notes else "")
        if needle in label.lower():
            choices.append(_choice(label, permalink.id))
    return choices[:MAX_CHOICES]


async def room_profile_autocomplete(interaction: discord.Interaction, current: str) -> Choices:
    profiles = await services_of(interaction).room_profiles.list(
        interaction.guild_id,  # type: ignore[arg-type]
        search=current.strip() or None,
    )
    return [_choice(profile.name, profile.id) for profile in profiles[:MAX_CHOICES]]


async def race_autocomplete(interaction: discord.Interaction, current: str) -> Choices:
    views = await services_of(interaction).live_races.search(
        interaction.guild_id,  # type: ignore[arg-type]
        current.strip(),
        limit=MAX_CHOICES,
    )
    choices = []
    for view in views[:MAX_CHOICES]:
        race = view.race
        start = race.scheduled_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        choices.append(_choice(f"#{race.id} {race.title} · {race.status.value} · {start}", race.id))
    return choices


@lru_cache(maxsize=1)
def _timezones() -> tuple[str, ...]:
    return tuple(sorted(zoneinfo.available_timezones()))


async def timezone_autocomplete(_interaction: discord.Interaction, current: str) -> Choices:
    needle = current.strip().lower().replace(" ", "_")
    matches = [zone for zone in _timezones() if needle in zone.lower()]
    return [_choice(zone, zone) for zone in matches[:MAX_CHOICES]]
