"""Recurring race series and the job that keeps their next occurrences created.

A series is a template plus an RRULE in a time zone (`recurrence.py`). Each occurrence is a normal live race made
through `LiveRaceService.create` (every rule of `/liverace create` applies), linked to its series by a
`series_occurrences` row with the primary key (series, local date), inserted in the race's own transaction.

**Exactly once.** The job may run in two processes at once, or be killed anywhere: a second insert of the same
occurrence fails on that key and rolls back its race (insert-or-ignore by the database, never "only one process
may run"); a kill before the commit leaves nothing, after it the row. The job reads the table every cycle and keeps
nothing in memory. Skips and moves leave their row, so the rule never makes them again.

**Seeds.** After creating, the job counts the unused seeds each pool still has against the races waiting for one;
the first occurrence of a series that would find none pauses the series (a compare-and-set, so one process does it)
and sends moderators an alert through the opener's moderator alert, days before the race rather than at T−15.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.actors import SYSTEM, Actor
from bot.errors import Conflict, DomainError, InvalidTransition, NotFound, ValidationFailed
from bot.events import LiveRaceOpenFailed
from bot.services import audit
from bot.services.common import Keyset, Page, check_unique_in_tournament, clean_name
from bot.services.live_races import LiveRaceService
from bot.services.recurrence import Occurrence, Recurrence, build, zone_of
from bot.services.templates import TemplateService, local_start, plan_for, pools_of, template_or_404
from bot.services.tournaments import tournament_or_404
from bot.settings import Settings
from db.models import (
    LiveRace,
    OccurrenceKind,
    Pool,
    RaceSeries,
    RaceStatus,
    RaceTemplate,
    Seed,
    SeriesOccurrence,
    SeriesStatus,
    Tournament,
)
from db.session import Database

log = logging.getLogger(__name__)

SERIES_FIELDS = ("name", "rrule", "timezone", "starts_on", "until", "count", "status", "template_id")
MAX_COUNT = 1000


@dataclass
class SeriesView:
    series: RaceSeries
    template: RaceTemplate
    next_occurrences: list[Occurrence] = field(default_factory=list)


@dataclass
class SeriesJobReport:
    series: int = 0
    created: int = 0
    already_there: int = 0
    paused: int = 0
    ended: int = 0
    missed: int = 0
    errors: int = 0


def _recurrence(series: RaceSeries, template: RaceTemplate, settings: Settings) -> Recurrence:
    return build(
        series.rrule,
        series.timezone,
        series.starts_on,
        local_start(template),
        until=series.until,
        count=series.count,
        min_interval=timedelta(minutes=settings.series.min_interval_minutes),
    )


async def series_or_404(session: AsyncSession, guild_id: int, tournament_id: int, series_id: int) -> RaceSeries:
    series = await session.get(RaceSeries, series_id)
    if series is None or series.guild_id != guild_id or series.tournament_id != tournament_id:
        raise NotFound(f"series {series_id} not found in this tournament", field="series_id")
    return series


class SeriesService:
    def __init__(
        self, db: Database, settings: Settings, live_races: LiveRaceService, templates: TemplateService
    ) -> None:
        self.db = db
        self.settings = settings
        self.live_races = live_races
        self.templates = templates
        templates.on_change = self.follow_template

    @property
    def clock(self) -> Callable[[], datetime]:
        """The clock the series share with the live races."""
        return self.live_races.clock  # one movable clock for races and series

    def _window_end(self, now: datetime) -> datetime:
        return now + timedelta(days=self.settings.series.window_days)

    def _view(self, series: RaceSeries, template: RaceTemplate, limit: int = 5) -> SeriesView:
        view = SeriesView(series, template)
        if series.status is not SeriesStatus.ENDED:
            try:
                upcoming = _recurrence(series, template, self.settings).occurrences(after=self.clock())
                view.next_occurrences = [occurrence for _, occurrence in zip(range(limit), upcoming, strict=False)]
            except DomainError:
                pass
        return view

    # ---- create / read / change ----------------------------------------------------------------------------
    async def create(
        self,
        guild_id: int,
        tournament_id: int,
        actor: Actor,
        *,
        name: str,
        rrule: str,
        timezone: str | None = None,
        template_id: int | None = None,
        template: dict[str, Any] | None = None,
        starts_on: date | None = None,
        until: datetime | None = None,
        count: int | None = None,
    ) -> SeriesView:
        """A series of an existing template (`template_id`) or of template fields given here (a template named
        after the series is made with it). The first cycle of the job runs at once."""
        name = clean_name(name, "name")
        if (template_id is None) == (template is None):
            raise ValidationFailed("give either template_id or template fields", field="template_id")
        if count is not None and until is not None:
            raise ValidationFailed("give until or count, not both", field="count")
        if count is not None and not 1 <= count <= MAX_COUNT:
            raise ValidationFailed(f"count must be from 1 to {MAX_COUNT}", field="count")
        async with self.db.transaction() as session:
            tournament = await tournament_or_404(session, guild_id, tournament_id)
            await check_unique_in_tournament(session, RaceSeries, tournament.id, name, "series")
            if template_id is not None:
                chosen = await template_or_404(session, guild_id, tournament_id, template_id)
            else:
                fields = {"name": f"{name} (series)", **(template or {})}
                chosen = await self.templates.create_in(session, guild_id, tournament_id, actor, fields)
            zone = timezone or chosen.timezone
            if zone is None:
                raise ValidationFailed("a series needs a timezone (or a template with one)", field="timezone")
            series = RaceSeries(
                guild_id=guild_id,
                tournament_id=tournament.id,
                template_id=chosen.id,
                name=name,
                rrule=rrule,
                timezone=zone,
                starts_on=starts_on or self.clock().astimezone(zone_of(zone)).date(),
                until=until,
                count=count,
                status=SeriesStatus.ACTIVE,
                created_by=actor.label,
                checked_through=self.clock(),  # dates before now were never due: none is reported missed
            )
            recurrence = _recurrence(series, chosen, self.settings)
            series.rrule, series.timezone = recurrence.text, recurrence.zone.key
            if next(recurrence.occurrences(after=self.clock()), None) is None:
                raise ValidationFailed("rrule has no occurrence after now", field="rrule")
            session.add(series)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="series.create",
                target_type="race_series",
                target_id=series.id,
                details={
                    "name": name,
                    "template_id": chosen.id,
                    "rrule": series.rrule,
                    "timezone": series.timezone,
                    "starts_on": series.starts_on.isoformat(),
                    "until": until,
                    "count": count,
                },
            )
            series_id = series.id
        await self.keep_series(series_id)
        return await self.get(guild_id, tournament_id, series_id)

    async def get(self, guild_id: int, tournament_id: int, series_id: int) -> SeriesView:
        """One series of the guild's tournament; NotFound otherwise."""
        async with self.db.read() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            template = await session.get(RaceTemplate, series.template_id)
            assert template is not None
        return self._view(series, template)

    async def list(
        self,
        guild_id: int,
        tournament_id: int,
        *,
        limit: int | None = None,
        cursor: str | None = None,
        search: str | None = None,
    ) -> Page[SeriesView]:
        """The series of the guild's tournament, filtered as given."""
        window = Keyset.of(limit, cursor)
        async with self.db.read() as session:
            await tournament_or_404(session, guild_id, tournament_id)
            query = (
                select(RaceSeries, RaceTemplate)
                .join(RaceTemplate, RaceTemplate.id == RaceSeries.template_id)
                .where(RaceSeries.tournament_id == tournament_id, RaceSeries.guild_id == guild_id)
            )
            if search:
                query = query.where(RaceSeries.name.ilike(f"%{search.strip()[:100]}%"))
            rows = (await session.execute(window.select(query, RaceSeries.id))).all()
        page = window.page(rows, lambda row: row[0].id)
        return Page([self._view(series, template, limit=1) for series, template in page.items], page.next_cursor)

    async def update(
        self, guild_id: int, tournament_id: int, series_id: int, actor: Actor, **changes: Any
    ) -> SeriesView:
        """Change the series and every future occurrence not moved by hand: pause or resume (`status`), a new rule,
        time zone, start, end (`until` or `count`) or template. Occurrences the new rule no longer has are cancelled,
        the others follow the new time, title and pool; the job creates what is new."""
        unknown = set(changes) - set(SERIES_FIELDS)
        if unknown:
            key = sorted(unknown)[0]
            raise ValidationFailed(f"{key} cannot be changed; fields: {', '.join(SERIES_FIELDS)}", field=key)
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        if changes.get("status") not in (None, SeriesStatus.ACTIVE, SeriesStatus.PAUSED):
            raise ValidationFailed("status must be active or paused (delete a series to end it)", field="status")
        async with self.db.transaction() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            if series.status is SeriesStatus.ENDED and changes.get("status") is not None:
                raise InvalidTransition(f"series {series.name!r} has ended; change its until or count to extend it")
            before = {key: getattr(series, key) for key in changes}
            if changes.get("name") is not None:
                changes["name"] = clean_name(changes["name"], "name")
                await check_unique_in_tournament(
                    session, RaceSeries, tournament_id, changes["name"], "series", own_id=series.id
                )
            if changes.get("template_id") is not None:
                await template_or_404(session, guild_id, tournament_id, changes["template_id"])
            if "count" in changes and changes["count"] is not None:
                if not 1 <= changes["count"] <= MAX_COUNT:
                    raise ValidationFailed(f"count must be from 1 to {MAX_COUNT}", field="count")
                changes["until"] = None
            elif changes.get("until") is not None:
                changes["count"] = None
            for key, value in changes.items():
                if value is None and key in ("name", "rrule", "timezone", "starts_on", "template_id", "status"):
                    continue
                setattr(series, key, SeriesStatus(value) if key == "status" else value)
            if "status" in changes and series.status is SeriesStatus.ACTIVE:
                series.status_reason = None
            elif "status" in changes:
                series.status_reason = f"paused by {actor.name}"
            template = await session.get(RaceTemplate, series.template_id)
            assert template is not None
            recurrence = _recurrence(series, template, self.settings)
            series.rrule, series.timezone = recurrence.text, recurrence.zone.key
            if series.status is SeriesStatus.ENDED:
                series.status = SeriesStatus.ACTIVE  # a new end (until, count) may leave occurrences to make
            # A new rule, start or a resume: dates already past under it were never due, none is reported missed.
            series.checked_through = self.clock()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="series.edit",
                target_type="race_series",
                target_id=series.id,
                details={"before": before, "after": {key: getattr(series, key) for key in changes}},
            )
        await self._replan(guild_id, tournament_id, series_id, actor)
        await self.keep_series(series_id)
        return await self.get(guild_id, tournament_id, series_id)

    async def follow_template(self, guild_id: int, tournament_id: int, template_id: int, actor: Actor) -> None:
        """A template changed: the future races of every series made from it follow (time, title, pool, lead time,
        announcement channel and role), as after a change of the series itself."""
        async with self.db.read() as session:
            ids = (
                await session.scalars(
                    select(RaceSeries.id).where(
                        RaceSeries.guild_id == guild_id,
                        RaceSeries.tournament_id == tournament_id,
                        RaceSeries.template_id == template_id,
                        RaceSeries.status != SeriesStatus.ENDED,
                    )
                )
            ).all()
        for series_id in ids:
            try:
                await self._replan(guild_id, tournament_id, series_id, actor)
            except DomainError as exc:  # e.g. the new start time does not exist on a date: the series pauses
                await self._pause(series_id, f"its template changed and its races could not follow: {exc.message}")

    async def _replan(self, guild_id: int, tournament_id: int, series_id: int, actor: Actor) -> None:
        """Bring future, still scheduled occurrences created by the rule in line with the series as it now is."""
        now = self.clock()
        async with self.db.read() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            template = await session.get(RaceTemplate, series.template_id)
            tournament = await session.get(Tournament, tournament_id)
            assert template is not None and tournament is not None
            pools = await pools_of(session, template)
            rows = (
                await session.execute(
                    select(SeriesOccurrence, LiveRace)
                    .join(LiveRace, LiveRace.id == SeriesOccurrence.live_race_id)
                    .where(
                        SeriesOccurrence.series_id == series_id,
                        SeriesOccurrence.kind == OccurrenceKind.CREATED,
                        LiveRace.status == RaceStatus.SCHEDULED,
                        LiveRace.scheduled_at > now,
                    )
                )
            ).all()
        if not rows:
            return
        recurrence = _recurrence(series, template, self.settings)
        last = max(race.scheduled_at for _, race in rows) + timedelta(days=2)
        planned = {occurrence.local_date: occurrence for occurrence in recurrence.occurrences(after=now, until=last)}
        for occurrence_row, race in rows:
            occurrence = planned.get(occurrence_row.occurrence_date)
            if occurrence is None:
                await self.live_races.cancel(
                    guild_id, race.id, actor, reason=f"series {series.name!r} changed: no race on this date any more"
                )
                async with self.db.transaction() as session:
                    await session.execute(
                        update(SeriesOccurrence)
                        .where(
                            SeriesOccurrence.series_id == series_id,
                            SeriesOccurrence.occurrence_date == occurrence_row.occurrence_date,
                        )
                        .values(kind=OccurrenceKind.SKIPPED)
                    )
                continue
            plan = plan_for(
                template, pools, tournament, n=occurrence.number, day=occurrence.local_date, series=series.name
            )
            changes: dict[str, Any] = {}
            if race.scheduled_at != occurrence.starts_at:
                changes["scheduled_at"] = occurrence.starts_at
            if plan.pool.id != race.pool_id:
                changes["pool_id"] = plan.pool.id
            if plan.title is not None and plan.title != race.title:
                changes["title"] = plan.title
            for key, value in plan.race_defaults.items():  # the template's lead time, channel and role
                if getattr(race, key) != value:
                    changes[key] = value
            if changes:
                await self.live_races.edit(guild_id, race.id, actor, **changes)

    async def delete(self, guild_id: int, tournament_id: int, series_id: int, actor: Actor) -> None:
        """Delete the series: its future scheduled occurrences are cancelled (players are told); past races stay."""
        now = self.clock()
        async with self.db.transaction() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            series.status = SeriesStatus.ENDED  # the job stops at once, also in another process
            name = series.name
        async with self.db.read() as session:
            race_ids = (
                await session.scalars(
                    select(LiveRace.id)
                    .join(SeriesOccurrence, SeriesOccurrence.live_race_id == LiveRace.id)
                    .where(
                        SeriesOccurrence.series_id == series_id,
                        LiveRace.status == RaceStatus.SCHEDULED,
                        LiveRace.scheduled_at > now,
                    )
                )
            ).all()
        for race_id in race_ids:
            try:
                await self.live_races.cancel(guild_id, race_id, actor, reason=f"series {name!r} was deleted")
            except InvalidTransition:
                pass  # it opened meanwhile: it takes place
        async with self.db.transaction() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="series.delete",
                target_type="race_series",
                target_id=series.id,
                details={"name": name, "cancelled": list(race_ids)},
            )
            await session.delete(series)

    # ---- one occurrence ------------------------------------------------------------------------------------
    async def _occurrence(
        self, guild_id: int, tournament_id: int, series_id: int, day: date
    ) -> tuple[RaceSeries, Occurrence, SeriesOccurrence | None]:
        if not isinstance(day, date) or isinstance(day, datetime):
            raise ValidationFailed("date must be a date like 2026-12-05", field="date")
        async with self.db.read() as session:
            series = await series_or_404(session, guild_id, tournament_id, series_id)
            template = await session.get(RaceTemplate, series.template_id)
            assert template is not None
            row = await session.get(SeriesOccurrence, (series_id, day))
        occurrence = _recurrence(series, template, self.settings).occurrence_on(day)
        if occurrence is None:
            raise ValidationFailed(f"series {series.name!r} has no occurrence on {day}", field="date")
        return series, occurrence, row

    async def skip(self, guild_id: int, tournament_id: int, series_id: int, actor: Actor, *, day: date) -> SeriesView:
        """Skip one occurrence: its race, if made, is cancelled (players are told); the job never makes it again."""
        series, occurrence, row = await self._occurrence(guild_id, tournament_id, series_id, day)
        if row is not None and row.kind is OccurrenceKind.SKIPPED:
            raise Conflict(f"the occurrence of {day} is already skipped", field="date")
        if row is not None and row.live_race_id is not None:
            await self.live_races.cancel(
                guild_id, row.live_race_id, actor, reason=f"skipped: no {series.name} race on {day}"
            )
        async with self.db.transaction() as session:
            existing = await session.get(SeriesOccurrence, (series_id, day))
            if existing is None:
                session.add(
                    SeriesOccurrence(
                        series_id=series_id, occurrence_date=day, number=occurrence.number, kind=OccurrenceKind.SKIPPED
                    )
                )
            else:
                existing.kind = OccurrenceKind.SKIPPED
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="series.skip",
                target_type="race_series",
                target_id=series_id,
                details={"date": day.isoformat(), "live_race_id": existing.live_race_id if existing else None},
            )
        return await self.get(guild_id, tournament_id, series_id)

    async def move(
        self, guild_id: int, tournament_id: int, series_id: int, actor: Actor, *, day: date, to: datetime
    ) -> SeriesView:
        """Move one occurrence to another time: its race is rescheduled, or made now if the job has not yet."""
        series, occurrence, row = await self._occurrence(guild_id, tournament_id, series_id, day)
        if row is not None and row.kind is OccurrenceKind.SKIPPED:
            raise Conflict(f"the occurrence of {day} is skipped; it cannot move", field="date")
        if row is not None and row.live_race_id is not None:
            await self.live_races.edit(guild_id, row.live_race_id, actor, scheduled_at=to)
            async with self.db.transaction() as session:
                await session.execute(
                    update(SeriesOccurrence)
                    .where(SeriesOccurrence.series_id == series_id, SeriesOccurrence.occurrence_date == day)
                    .values(kind=OccurrenceKind.MOVED)
                )
        else:
            await self._create_occurrence(series.id, occurrence, actor=actor, at=to)
        return await self.get(guild_id, tournament_id, series_id)

    # ---- the job -------------------------------------------------------------------------------------------
    async def run_job(self) -> SeriesJobReport:
        """Series job: every active series keeps its occurrences of the window created."""
        async with self.db.read() as session:
            ids = (await session.scalars(select(RaceSeries.id).where(RaceSeries.status == SeriesStatus.ACTIVE))).all()
        report = SeriesJobReport()
        for series_id in ids:
            report.series += 1
            try:
                await self.keep_series(series_id, report)
            except Exception:
                report.errors += 1
                log.exception("series job failed on series %s", series_id)
        if report.created or report.paused or report.errors:
            log.info("series job: %s", report)
        return report

    async def keep_series(self, series_id: int, report: SeriesJobReport | None = None) -> SeriesJobReport:
        """One pass of the series job over one active series: schedule its occurrences due within the window."""
        report = report or SeriesJobReport()
        now = self.clock()
        async with self.db.read() as session:
            series = await session.get(RaceSeries, series_id)
            if series is None or series.status is not SeriesStatus.ACTIVE:
                return report
            template = await session.get(RaceTemplate, series.template_id)
            assert template is not None
            known = set(
                (
                    await session.scalars(
                        select(SeriesOccurrence.occurrence_date).where(SeriesOccurrence.series_id == series_id)
                    )
                ).all()
            )
        try:
            recurrence = _recurrence(series, template, self.settings)
        except ValidationFailed as exc:  # its template changed (no start time any more, …)
            await self._pause(series.id, f"the series' rule cannot be used: {exc.message}")
            report.paused += 1
            return report
        # Every occurrence still ahead is made, even one inside its room's lead (after a downtime): its room opens
        # at once. One whose start passed while no process ran the job is reported to moderators, never made.
        due = list(recurrence.occurrences(after=now, until=self._window_end(now)))
        for occurrence in due:
            if occurrence.local_date in known:
                continue
            created = await self._create_occurrence(series_id, occurrence, actor=SYSTEM)
            if created:
                report.created += 1
            else:
                report.already_there += 1
        missed = [
            occurrence
            for occurrence in recurrence.occurrences(after=series.checked_through or now, until=now)
            if occurrence.local_date not in known
        ]
        if series.checked_through is None or missed:
            try:
                if await self._report_missed(series_id, series.checked_through, missed, now):
                    report.missed += len(missed)
            except _AlreadyReported:
                pass  # another process recorded them (and told moderators) first
        if next(recurrence.occurrences(after=now), None) is None:
            if await self._set_status(series_id, SeriesStatus.ENDED, "its last occurrence has passed"):
                report.ended += 1
            return report
        if await self._check_seeds(series_id):
            report.paused += 1
        return report

    async def _create_occurrence(
        self, series_id: int, occurrence: Occurrence, *, actor: Actor, at: datetime | None = None
    ) -> bool:
        """Create the occurrence's race with its `series_occurrences` row, exactly once; False if it exists."""
        async with self.db.read() as session:
            series = await session.get(RaceSeries, series_id)
            if series is None:
                return False
            template = await session.get(RaceTemplate, series.template_id)
            tournament = await session.get(Tournament, series.tournament_id)
            assert template is not None and tournament is not None
            pools = await pools_of(session, template)
        plan = plan_for(template, pools, tournament, n=occurrence.number, day=occurrence.local_date, series=series.name)
        kind = OccurrenceKind.CREATED if at is None else OccurrenceKind.MOVED

        async def link(session: AsyncSession, race: LiveRace) -> None:
            # Re-read inside the race's transaction: a pause or a delete that committed meanwhile wins.
            status = await session.scalar(select(RaceSeries.status).where(RaceSeries.id == series_id))
            if status is not SeriesStatus.ACTIVE and at is None:
                raise _SeriesStopped()
            moved = None
            if at is not None:  # a missed occurrence a moderator moves: its row gets the race
                moved = await session.execute(
                    update(SeriesOccurrence)
                    .where(
                        SeriesOccurrence.series_id == series_id,
                        SeriesOccurrence.occurrence_date == occurrence.local_date,
                        SeriesOccurrence.kind == OccurrenceKind.MISSED,
                    )
                    .values(kind=kind, live_race_id=race.id)
                    .execution_options(synchronize_session=False)
                )
            if moved is None or moved.rowcount != 1:
                session.add(
                    SeriesOccurrence(
                        series_id=series_id,
                        occurrence_date=occurrence.local_date,
                        number=occurrence.number,
                        kind=kind,
                        live_race_id=race.id,
                    )
                )
            await session.flush()  # the primary key decides: a second creator fails here, and its race rolls back

        try:
            await self.live_races.create(
                series.guild_id,
                series.tournament_id,
                actor,
                pool_id=plan.pool.id,
                scheduled_at=at or occurrence.starts_at,
                title=plan.title,
                room_profile_id=plan.room_profile_id,
                room=plan.room or None,
                link=link,
                **plan.race_defaults,
            )
        except IntegrityError:
            return False  # made by another process (or a run before a crash): nothing to do
        except _SeriesStopped:
            return False
        except DomainError as exc:
            if at is not None:
                raise
            await self._pause(series_id, f"the occurrence of {occurrence.local_date} could not be made: {exc.message}")
            return False
        return True

    async def _report_missed(
        self, series_id: int, checked: datetime | None, missed: list[Occurrence], now: datetime
    ) -> bool:
        """Record the occurrences whose start passed unmade (kind `missed`) and tell moderators once, in one
        transaction with a compare-and-set of `checked_through` from the value this cycle read: of two processes
        (or a run repeated after a crash) exactly one commits; the other changes nothing. The alert rides on the
        series' next scheduled race (the moderator alert, as for a series out of seeds); without one, the audit
        entry `series.missed` is the record. A first run over a series made before this existed only sets
        `checked_through`."""
        async with self.db.transaction() as session:
            changed = await session.execute(
                update(RaceSeries)
                .where(
                    RaceSeries.id == series_id,
                    RaceSeries.status == SeriesStatus.ACTIVE,
                    RaceSeries.checked_through.is_(None) if checked is None else RaceSeries.checked_through == checked,
                )
                .values(checked_through=now)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount != 1 or not missed:
                return False
            series = await session.get(RaceSeries, series_id)
            assert series is not None
            for occurrence in missed:
                session.add(
                    SeriesOccurrence(
                        series_id=series_id,
                        occurrence_date=occurrence.local_date,
                        number=occurrence.number,
                        kind=OccurrenceKind.MISSED,
                    )
                )
            try:
                await session.flush()
            except IntegrityError:
                raise _AlreadyReported() from None
            zone = zone_of(series.timezone)
            when = ", ".join(f"{o.starts_at.astimezone(zone):%a %d %b %H:%M}" for o in missed[:10])
            more = f" and {len(missed) - 10} more" if len(missed) > 10 else ""
            summary = (
                f"Series {series.name} missed {len(missed)} race{'s' if len(missed) != 1 else ''} while the bot was "
                f"not running ({when}{more} {series.timezone}); they were not made. This is its next race."
            )
            await audit.record(
                session,
                guild_id=series.guild_id,
                actor=SYSTEM,
                action="series.missed",
                target_type="race_series",
                target_id=series_id,
                details={"dates": [o.local_date.isoformat() for o in missed], "summary": summary},
            )
            await self._alert_on_next_race(
                session,
                series,
                now,
                error=f"missed: {', '.join(o.local_date.isoformat() for o in missed)}",
                headline="Series races were missed",
                summary=summary,
                action="Nothing to do if that is fine; to hold a missed race later, "
                "/series-admin move it to a new time.",
            )
        log.warning("series %s missed %d occurrence(s): %s", series_id, len(missed), [o.local_date for o in missed])
        return True

    async def _set_status(self, series_id: int, status: SeriesStatus, reason: str, *, alert: bool = False) -> bool:
        """Compare-and-set from active: True for the one caller whose update changed the row. `alert`: tell
        moderators in the same transaction, on the series' next scheduled race (the moderator alert)."""
        async with self.db.transaction() as session:
            changed = await session.execute(
                update(RaceSeries)
                .where(RaceSeries.id == series_id, RaceSeries.status == SeriesStatus.ACTIVE)
                .values(status=status, status_reason=reason, updated_at=self.clock())
            )
            if changed.rowcount != 1:
                return False
            series = await session.get(RaceSeries, series_id)
            assert series is not None
            await audit.record(
                session,
                guild_id=series.guild_id,
                actor=SYSTEM,
                action=f"series.{status.value}",
                target_type="race_series",
                target_id=series_id,
                details={"reason": reason},
            )
            if alert:
                await self._alert_on_next_race(
                    session,
                    series,
                    self.clock(),
                    error=reason,
                    headline="Series paused",
                    summary=f"Series {series.name} is paused and makes no more races: {reason}. "
                    "This is its next race, already made.",
                    action="Fix the cause, then resume the series with /series-admin resume.",
                )
        return True

    async def _alert_on_next_race(
        self,
        session: AsyncSession,
        series: RaceSeries,
        now: datetime,
        *,
        error: str,
        headline: str,
        summary: str,
        action: str,
    ) -> None:
        """Tell the moderators (the moderator alert, in the caller's transaction) on the series' next scheduled race;
        a series with no race still to come has nowhere to show it, and the audit entry carries it."""
        upcoming = await session.scalar(
            select(LiveRace.id)
            .join(SeriesOccurrence, SeriesOccurrence.live_race_id == LiveRace.id)
            .where(
                SeriesOccurrence.series_id == series.id,
                LiveRace.status == RaceStatus.SCHEDULED,
                LiveRace.scheduled_at > now,
            )
            .order_by(LiveRace.scheduled_at)
            .limit(1)
        )
        if upcoming is None:
            return
        await self.live_races.events.publish(
            session,
            LiveRaceOpenFailed(
                guild_id=series.guild_id,
                tournament_id=series.tournament_id,
                live_race_id=upcoming,
                occurred_at=now,
                error=error,
                attempts=0,
                headline=headline,
                summary=summary,
                action=action,
            ),
        )

    async def _pause(self, series_id: int, reason: str) -> None:
        """Pause the series for a reason moderators must fix; they are told (if a race of it is still to come)."""
        if await self._set_status(series_id, SeriesStatus.PAUSED, reason, alert=True):
            log.warning("series %s paused: %s", series_id, reason)

    async def _check_seeds(self, series_id: int) -> bool:
        """Pause the series, and alert moderators, when one of its upcoming races will find no unused seed.

        A pool's unused seeds (never shown in a room, not pinned to a live race) are handed out to the scheduled
        races of that pool that have none, soonest first, as the opener will; the series' first race past the
        supply is the one that would fail.
        """
        now = self.clock()
        async with self.db.transaction() as session:
            series = await session.get(RaceSeries, series_id)
            if series is None or series.status is not SeriesStatus.ACTIVE:
                return False
            ours = select(SeriesOccurrence.live_race_id).where(SeriesOccurrence.series_id == series_id)
            waiting = (
                await session.execute(
                    select(LiveRace.id, LiveRace.pool_id, LiveRace.id.in_(ours))
                    .where(
                        LiveRace.pool_id.in_(
                            select(LiveRace.pool_id).where(
                                LiveRace.id.in_(ours), LiveRace.status == RaceStatus.SCHEDULED
                            )
                        ),
                        LiveRace.status == RaceStatus.SCHEDULED,
                        LiveRace.seed_id.is_(None),
                        LiveRace.scheduled_at > now,
                    )
                    .order_by(LiveRace.scheduled_at, LiveRace.id)
                )
            ).all()
            if not waiting:
                return False
            pinned = select(LiveRace.seed_id).where(
                LiveRace.seed_id.is_not(None), LiveRace.status != RaceStatus.CANCELLED
            )
            supply = dict(
                (
                    await session.execute(
                        select(Seed.pool_id, func.count(Seed.id))
                        .where(
                            Seed.pool_id.in_({pool_id for _, pool_id, _ in waiting}),
                            Seed.used_in_live_race.is_(False),
                            Seed.id.not_in(pinned),
                        )
                        .group_by(Seed.pool_id)
                    )
                ).all()
            )
            handed: dict[int, int] = {}
            short: int | None = None
            for race_id, pool_id, is_ours in waiting:
                handed[pool_id] = handed.get(pool_id, 0) + 1
                if handed[pool_id] > supply.get(pool_id, 0) and is_ours:
                    short = race_id
                    break
            if short is None:
                return False
            race = await session.get(LiveRace, short)
            assert race is not None
            pool = await session.get(Pool, race.pool_id)
            pool_name = pool.name if pool is not None else f"#{race.pool_id}"
            starts = race.scheduled_at.astimezone(zone_of(series.timezone))
            reason = (
                f"no unused seed left in pool {pool_name} for race {race.id} ({race.title}, "
                f"{starts:%a %d %b %H:%M} {series.timezone}); add seeds to pool {pool_name}, then resume the series"
            )
            changed = await session.execute(
                update(RaceSeries)
                .where(RaceSeries.id == series_id, RaceSeries.status == SeriesStatus.ACTIVE)
                .values(status=SeriesStatus.PAUSED, status_reason=reason, updated_at=self.clock())
            )
            if changed.rowcount != 1:
                return False
            await audit.record(
                session,
                guild_id=series.guild_id,
                actor=SYSTEM,
                action="series.paused",
                target_type="race_series",
                target_id=series_id,
                details={"reason": reason, "live_race_id": race.id},
            )
            await self.live_races.events.publish(
                session,
                LiveRaceOpenFailed(
                    guild_id=series.guild_id,
                    tournament_id=series.tournament_id,
                    live_race_id=race.id,
                    occurred_at=now,
                    error=reason,
                    attempts=0,
                    headline="Series paused",
                    summary=f"Series {series.name} is paused: this race will find no unused seed in pool "
                    f"{pool_name}, the next pool of its rotation.",
                    action=f"Add seeds to pool {pool_name}, then resume the series with /series-admin resume.",
                ),
            )
        log.warning("series %s paused: %s", series_id, reason)
        return True


class _AlreadyReported(Exception):
    """Another process recorded these missed occurrences first: this transaction rolls back."""


class _SeriesStopped(Exception):
    """The series was paused or deleted while an occurrence was being made: the race is rolled back."""
