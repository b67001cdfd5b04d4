"""Race templates: what a live race of a tournament is made from, by `/liverace create template:` and by series.

A template names its pools in rotation order (occurrence n races pool n mod len), a title pattern, a local start
time in a time zone, a room profile and room settings. The pattern's fields are `{n}` (the occurrence number, 1
for a race made directly), `{date}` (the local date), `{pool}`, `{tournament}` and `{series}`.
"""

from __future__ import annotations

import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import Actor
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import check_unique_in_tournament, clean_name, require_aware
from bot.services.live_race_views import LiveRaceView
from bot.services.live_races import LiveRaceService, check_race_defaults
from bot.services.recurrence import localize, parse_local_time, zone_of
from bot.services.room_profiles import profile_or_404, validate_room_settings
from bot.services.tournaments import pool_or_404, tournament_or_404
from db.models import Pool, RaceSeries, RaceTemplate, Tournament
from db.session import Database

PATTERN_FIELDS = ("n", "date", "pool", "tournament", "series")
MAX_PATTERN = 200
MAX_POOLS = 50
RACE_DEFAULTS = ("room_open_lead_minutes", "announcement_channel_id", "announcement_role_id")  # copied to its races
TEMPLATE_FIELDS = (
    "name",
    "pool_ids",
    "title_pattern",
    "start_time",
    "timezone",
    "room_profile_id",
    "room",
    *RACE_DEFAULTS,
)


def check_pattern(pattern: str | None) -> str | None:
    if pattern is None or not pattern.strip():
        return None
    pattern = pattern.strip()
    if len(pattern) > MAX_PATTERN:
        raise ValidationFailed(f"title_pattern must be at most {MAX_PATTERN} characters", field="title_pattern")
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None]
    except ValueError as exc:
        raise ValidationFailed(
            f"title_pattern is not a pattern ({exc}); write a brace as {{{{ or }}}}",
            field="title_pattern",
            example="Week {n} — {pool}",
        ) from None
    for name in names:
        if name not in PATTERN_FIELDS:
            raise ValidationFailed(
                f"title_pattern may use {', '.join('{' + f + '}' for f in PATTERN_FIELDS)}, not {{{name}}}",
                field="title_pattern",
                example="Week {n} — {pool}",
            )
    return pattern


def render_title(pattern: str | None, *, n: int, day: date, pool: str, tournament: str, series: str = "") -> str | None:
    if pattern is None:
        return None
    values = {"n": n, "date": day.isoformat(), "pool": pool, "tournament": tournament, "series": series}
    return pattern.format_map(values)[:200]


@dataclass(frozen=True)
class TemplatePlan:
    """What one occurrence of a template is: its pool, title and fields for `LiveRaceService.check_fields`."""

    pool: Pool
    title: str | None
    room_profile_id: int | None
    room: dict[str, Any]
    # The template's lead time, announcement channel and ping role, for the race (None: the tournament's).
    race_defaults: dict[str, int | None]


def template_pool(template: RaceTemplate, pools: dict[int, Pool], n: int) -> Pool:
    for offset in range(len(template.pool_ids)):
        pool = pools.get(template.pool_ids[(n - 1 + offset) % len(template.pool_ids)])
        if pool is not None:
            return pool
    raise Conflict(f"template {template.name!r} names no pool that still exists; edit its pools", field="pool_ids")


async def pools_of(session: AsyncSession, template: RaceTemplate) -> dict[int, Pool]:
    rows = await session.scalars(
        select(Pool).where(Pool.id.in_(template.pool_ids), Pool.tournament_id == template.tournament_id)
    )
    return {pool.id: pool for pool in rows}


def plan_for(
    template: RaceTemplate,
    pools: dict[int, Pool],
    tournament: Tournament,
    *,
    n: int,
    day: date,
    series: str = "",
) -> TemplatePlan:
    pool = template_pool(template, pools, n)
    title = render_title(
        template.title_pattern, n=n, day=day, pool=pool.name, tournament=tournament.name, series=series
    )
    defaults = {key: getattr(template, key) for key in RACE_DEFAULTS}
    return TemplatePlan(pool, title, template.room_profile_id, dict(template.room_settings or {}), defaults)


async def template_or_404(session: AsyncSession, guild_id: int, tournament_id: int, template_id: int) -> RaceTemplate:
    template = await session.get(RaceTemplate, template_id)
    if template is None or template.guild_id != guild_id or template.tournament_id != tournament_id:
        raise NotFound(f"template {template_id} not found in this tournament", field="template_id")
    return template


class TemplateService:
    def __init__(self, db: Database, live_races: LiveRaceService) -> None:
        self.db = db
        self.live_races = live_races
        # Called after a template changed, with (guild_id, tournament_id, template_id, actor): the series service
        # brings the future races of the series that use it in line (set by `SeriesService`).
        self.on_change: Callable[[int, int, int, Actor], Awaitable[None]] | None = None

    async def _clean(self, session: AsyncSession, guild_id: int, tournament_id: int, values: dict[str, Any]) -> dict:
        unknown = set(values) - set(TEMPLATE_FIELDS)
        if unknown:
            key = sorted(unknown)[0]
            raise ValidationFailed(f"{key} is not a template field", field=key)
        clean: dict[str, Any] = {}
        if "name" in values:
            clean["name"] = clean_name(values["name"], "name")
        if "pool_ids" in values:
            pool_ids = list(values["pool_ids"] or [])
            if not pool_ids or len(pool_ids) > MAX_POOLS:
                raise ValidationFailed(f"pool_ids must name 1 to {MAX_POOLS} pools", field="pool_ids")
            for pool_id in pool_ids:
                await pool_or_404(session, guild_id, tournament_id, pool_id)
            clean["pool_ids"] = pool_ids
        if "title_pattern" in values:
            clean["title_pattern"] = check_pattern(values["title_pattern"])
        if "start_time" in values:
            given = values["start_time"]
            clean["start_time"] = None if given is None else parse_local_time(given).strftime("%H:%M")
        if "timezone" in values:
            clean["timezone"] = None if values["timezone"] is None else zone_of(values["timezone"]).key
        if "room_profile_id" in values:
            if values["room_profile_id"] is not None:
                await profile_or_404(session, guild_id, values["room_profile_id"])
            clean["room_profile_id"] = values["room_profile_id"]
        if "room" in values:
            clean["room_settings"] = validate_room_settings(values["room"], field_prefix="room.")
        clean.update(check_race_defaults({key: values[key] for key in RACE_DEFAULTS if key in values}))
        return clean

    async def create(self, guild_id: int, tournament_id: int, actor: Actor, **values: Any) -> RaceTemplate:
        """Create a race template of the guild's tournament (validated, audited)."""
        async with self.db.transaction() as session:
            template = await self.create_in(session, guild_id, tournament_id, actor, values)
        return template

    async def create_in(
        self, session: AsyncSession, guild_id: int, tournament_id: int, actor: Actor, values: dict[str, Any]
    ) -> RaceTemplate:
        """Create a race template in the caller's transaction."""
        await tournament_or_404(session, guild_id, tournament_id)
        if "name" not in values or "pool_ids" not in values:
            missing = "name" if "name" not in values else "pool_ids"
            raise ValidationFailed(f"a template needs {missing}", field=missing)
        clean = await self._clean(session, guild_id, tournament_id, values)
        await check_unique_in_tournament(session, RaceTemplate, tournament_id, clean["name"], "template")
        template = RaceTemplate(guild_id=guild_id, tournament_id=tournament_id, **clean)
        session.add(template)
        await session.flush()
        await audit.record(
            session,
            guild_id=guild_id,
            actor=actor,
            action="template.create",
            target_type="race_template",
            target_id=template.id,
            details={key: getattr(template, key) for key in clean},
        )
        return template

    async def update(
        self, guild_id: int, tournament_id: int, template_id: int, actor: Actor, **changes: Any
    ) -> RaceTemplate:
        """Change a race template (validated, audited); ValidationFailed when nothing is given."""
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        if ("name" in changes and changes["name"] is None) or ("pool_ids" in changes and changes["pool_ids"] is None):
            raise ValidationFailed("name and pool_ids cannot be removed", field="name")
        async with self.db.transaction() as session:
            template = await template_or_404(session, guild_id, tournament_id, template_id)
            clean = await self._clean(session, guild_id, tournament_id, changes)
            if "name" in clean:
                await check_unique_in_tournament(
                    session, RaceTemplate, tournament_id, clean["name"], "template", own_id=template.id
                )
            before = {key: getattr(template, key) for key in clean}
            for key, value in clean.items():
                setattr(template, key, value)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="template.edit",
                target_type="race_template",
                target_id=template.id,
                details={"before": before, "after": clean},
            )
            await session.flush()
        if self.on_change is not None:
            await self.on_change(guild_id, tournament_id, template.id, actor)
        return template

    async def delete(self, guild_id: int, tournament_id: int, template_id: int, actor: Actor) -> None:
        """Delete a race template (audited)."""
        async with self.db.transaction() as session:
            template = await template_or_404(session, guild_id, tournament_id, template_id)
            used = await session.scalar(select(RaceSeries.name).where(RaceSeries.template_id == template.id).limit(1))
            if used is not None:
                raise Conflict(f"template {template.name!r} is used by series {used!r}; delete that series first")
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="template.delete",
                target_type="race_template",
                target_id=template.id,
                details={"name": template.name},
            )
            await session.delete(template)

    async def get(self, guild_id: int, tournament_id: int, template_id: int) -> RaceTemplate:
        """One race template of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            return await template_or_404(session, guild_id, tournament_id, template_id)

    async def list(self, guild_id: int, tournament_id: int, *, search: str | None = None) -> list[RaceTemplate]:
        """The race templates of the guild's tournament, optionally matching a search."""
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            query = select(RaceTemplate).where(RaceTemplate.tournament_id == tournament_id)
            if search:
                query = query.where(RaceTemplate.name.ilike(f"%{search.strip()[:100]}%"))
            return list((await session.scalars(query.order_by(RaceTemplate.id))).all())

    async def create_race(
        self,
        guild_id: int,
        tournament_id: int,
        template_id: int,
        actor: Actor,
        *,
        when: datetime | date,
        **overrides: Any,
    ) -> LiveRaceView:
        """`/liverace create template:`: a race from the template, on a date (at the template's local time) or at
        an instant; the fields given override the template's."""
        async with self.db.read() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            template = await template_or_404(session, guild_id, tournament_id, template_id)
            plan = plan_for(
                template, await pools_of(session, template), tournament, n=1, day=_local_day(when, template.timezone)
            )
        scheduled_at = starts_at(template, when)
        fields = {
            "pool_id": plan.pool.id,
            "scheduled_at": scheduled_at,
            "title": plan.title,
            "room_profile_id": plan.room_profile_id,
            "room": plan.room or None,
            **plan.race_defaults,
        }
        room = {**(plan.room or {}), **(overrides.pop("room", None) or {})}
        fields.update({key: value for key, value in overrides.items() if value is not None})
        fields["room"] = room or None
        return await self.live_races.create(guild_id, tournament_id, actor, **fields)


def _local_day(when: datetime | date, timezone: str | None) -> date:
    if not isinstance(when, datetime):
        return when
    return when.astimezone(zone_of(timezone)).date() if timezone and when.tzinfo else when.date()


def starts_at(template: RaceTemplate, when: datetime | date) -> datetime:
    """An instant stays; a date gets the template's local start time in its time zone."""
    if isinstance(when, datetime):
        return require_aware(when, "when")
    if template.start_time is None or template.timezone is None:
        raise ValidationFailed(
            f"template {template.name!r} has no start time and time zone; give a date and time", field="when"
        )
    local = datetime.combine(when, parse_local_time(template.start_time))
    instant = localize(local, zone_of(template.timezone))
    if instant is None:
        raise ValidationFailed(
            f"{template.start_time} does not exist in {template.timezone} on {when} (the clocks go forward then)",
            field="when",
        )
    return instant


def local_start(template: RaceTemplate) -> time:
    if template.start_time is None:
        raise ValidationFailed(f"template {template.name!r} needs a start_time for a series", field="start_time")
    return parse_local_time(template.start_time)
