"""Series: the job keeps the window's occurrences created exactly once; skip, move, change, pause; seeds run out."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bot.errors import Conflict, ValidationFailed
from bot.services import Services
from bot.services.recurrence import build
from bot.services.templates import local_start
from db.models import (
    AuditEntry,
    LiveRace,
    Notification,
    RaceSeries,
    RaceStatus,
    RaceTemplate,
    SeriesOccurrence,
    SeriesStatus,
)
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.lifecycle import Clock, World, make_world

# A Wednesday noon UTC, in winter (Berlin is UTC+1).
START = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def moved_clock(services: Services) -> Clock:
    clock = Clock(START)
    services.live_races.clock = clock
    return clock


async def _world(services: Services, seeds: int = 6) -> World:
    world = await make_world(services, seeds=seeds)
    for index in range(seeds):
        await services.tournaments.add_seed(
            GUILD, world.tournament.id, world.other_pool.id, MODERATOR, url=f"https://alttpr.com/h/b{index}"
        )
    return world


async def _series(services: Services, world: World, **fields) -> int:
    template = await services.templates.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        name="weekly",
        pool_ids=[world.pool.id, world.other_pool.id],
        title_pattern="Week {n} — {pool}",
        start_time="20:00",
        timezone="Europe/Berlin",
    )
    view = await services.series.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        name="Saturday night",
        template_id=template.id,
        rrule=fields.pop("rrule", "FREQ=WEEKLY;BYDAY=SA"),
        **fields,
    )
    return view.series.id


async def _occurrences(services: Services, series_id: int) -> list[tuple[date, str, datetime, str, str]]:
    async with services.db.read() as session:
        rows = (
            await session.execute(
                select(SeriesOccurrence, LiveRace)
                .outerjoin(LiveRace, LiveRace.id == SeriesOccurrence.live_race_id)
                .where(SeriesOccurrence.series_id == series_id)
                .order_by(SeriesOccurrence.occurrence_date)
            )
        ).all()
    return [
        (
            row.occurrence_date,
            row.kind.value,
            race.scheduled_at if race else None,
            race.title if race else None,
            race.status.value if race else None,
        )
        for row, race in rows
    ]


async def _race_count(services: Services) -> int:
    async with services.db.read() as session:
        return await session.scalar(select(func.count(LiveRace.id)))


async def test_the_job_fills_the_window_once_and_rotates_pools(services: Services, moved_clock: Clock) -> None:
    world = await _world(services)
    series_id = await _series(services, world)  # creating runs the first cycle
    made = await _occurrences(services, series_id)
    assert [(d, t) for d, _, _, t, _ in made] == [
        (date(2026, 1, 10), "Week 1 — Pool A"),
        (date(2026, 1, 17), "Week 2 — Pool B"),
    ]
    assert made[0][2] == datetime(2026, 1, 10, 19, tzinfo=UTC)
    again = await services.series.run_job()
    assert again.created == 0 and await _race_count(services) == 2
    moved_clock.advance(days=7)
    report = await services.series.run_job()
    assert report.created == 1
    assert [t for *_, t, _ in await _occurrences(services, series_id)][-1] == "Week 3 — Pool A"


async def test_two_job_runs_at_once_create_each_occurrence_once(services: Services, moved_clock: Clock) -> None:
    world = await _world(services)
    series_id = await _series(services, world, starts_on=date(2026, 1, 8))
    async with services.db.transaction() as session:  # forget what the first cycle made
        for race in (await session.scalars(select(LiveRace))).all():
            await session.delete(race)
        await session.execute(SeriesOccurrence.__table__.delete())
    await asyncio.gather(*(services.series.keep_series(series_id) for _ in range(4)))
    made = await _occurrences(services, series_id)
    assert [d for d, *_ in made] == [date(2026, 1, 10), date(2026, 1, 17)]
    assert await _race_count(services) == 2


async def test_skip_move_and_change_all_future(services: Services, moved_clock: Clock) -> None:
    world = await _world(services)
    series_id = await _series(services, world)
    tid = world.tournament.id
    await services.series.skip(GUILD, tid, series_id, MODERATOR, day=date(2026, 1, 10))
    with pytest.raises(Conflict):
        await services.series.skip(GUILD, tid, series_id, MODERATOR, day=date(2026, 1, 10))
    with pytest.raises(ValidationFailed, match="no occurrence on 2026-01-11"):
        await services.series.skip(GUILD, tid, series_id, MODERATOR, day=date(2026, 1, 11))
    # A date beyond the window: recorded, never made by the job.
    await services.series.skip(GUILD, tid, series_id, MODERATOR, day=date(2026, 1, 31))
    moved_to = datetime(2026, 1, 18, 18, tzinfo=UTC)
    await services.series.move(GUILD, tid, series_id, MODERATOR, day=date(2026, 1, 17), to=moved_to)
    moved_clock.advance(days=14)
    await services.series.run_job()
    moved_clock.advance(days=4)
    await services.series.run_job()
    made = {d: (kind, at, status) for d, kind, at, _, status in await _occurrences(services, series_id)}
    assert made[date(2026, 1, 10)][0] == "skipped" and made[date(2026, 1, 10)][2] == "cancelled"
    assert made[date(2026, 1, 17)] == ("moved", moved_to, "scheduled")
    assert made[date(2026, 1, 31)] == ("skipped", None, None)
    assert date(2026, 1, 24) in made and date(2026, 2, 7) in made
    # Every future occurrence made by the rule follows a new start time; the moved one stays where it was put.
    await services.templates.update(
        GUILD, tid, (await services.series.get(GUILD, tid, series_id)).template.id, MODERATOR, start_time="21:00"
    )
    await services.series.update(GUILD, tid, series_id, MODERATOR, rrule="FREQ=WEEKLY;BYDAY=SA")
    made = {d: (kind, at, status) for d, kind, at, _, status in await _occurrences(services, series_id)}
    assert made[date(2026, 2, 7)][1] == datetime(2026, 2, 7, 20, tzinfo=UTC)
    assert made[date(2026, 1, 17)][1] == moved_to
    # A new rule cancels the occurrences it no longer has.
    await services.series.update(GUILD, tid, series_id, MODERATOR, rrule="FREQ=WEEKLY;BYDAY=SU")
    made = {d: (kind, at, status) for d, kind, at, _, status in await _occurrences(services, series_id)}
    assert made[date(2026, 2, 7)][2] == "cancelled"
    assert made[date(2026, 2, 1)][2] == "scheduled"


async def test_pause_resume_and_bad_rules_change_nothing(services: Services, moved_clock: Clock) -> None:
    world = await _world(services)
    tid = world.tournament.id
    series_id = await _series(services, world)
    before = await _race_count(services)
    with pytest.raises(ValidationFailed, match="at most every"):
        await services.series.update(GUILD, tid, series_id, MODERATOR, rrule="FREQ=MINUTELY")
    with pytest.raises(ValidationFailed, match="not an iCalendar RRULE"):
        await services.series.create(
            GUILD,
            tid,
            MODERATOR,
            name="inline",
            rrule="FREQ=WEEKLY;BYDAY=XX",
            template={"pool_ids": [world.pool.id], "start_time": "20:00", "timezone": "Europe/Berlin"},
        )
    async with services.db.read() as session:
        assert (await session.get(RaceSeries, series_id)).rrule == "FREQ=WEEKLY;BYDAY=SA"
        assert await session.scalar(select(func.count(RaceSeries.id))) == 1
        assert await session.scalar(select(func.count(RaceTemplate.id))) == 1  # the inline template rolled back
    await services.series.update(GUILD, tid, series_id, MODERATOR, status="paused")
    moved_clock.advance(days=7)
    assert (await services.series.run_job()).created == 0
    await services.series.update(GUILD, tid, series_id, MODERATOR, status="active")
    assert await _race_count(services) == before + 1
    # Another guild sees no such series.
    with pytest.raises(Exception, match="not found"):
        await services.series.get(OTHER_GUILD, tid, series_id)


async def test_a_pool_without_seeds_pauses_the_series_with_one_alert(services: Services, moved_clock: Clock) -> None:
    world = await make_world(services, seeds=1)  # Pool A: one seed; Pool B: none
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    series_id = await _series(services, world)
    async with services.db.read() as session:
        series = await session.get(RaceSeries, series_id)
        alerts = (await session.scalars(select(Notification).where(Notification.channel_id == 555))).all()
    assert series.status is SeriesStatus.PAUSED
    assert "no unused seed left" in series.status_reason
    assert len(alerts) == 1 and "Series Saturday night is paused" in alerts[0].payload["alert"]["summary"]
    # The job in another cycle (or process) alerts no more, and makes nothing while paused.
    await services.series.run_job()
    async with services.db.read() as session:
        assert await session.scalar(select(func.count(Notification.id)).where(Notification.channel_id == 555)) == 1
    races = await _occurrences(services, series_id)
    assert all(status == RaceStatus.SCHEDULED.value for *_, status in races)


# ---- occurrences missed while no process ran the job ---------------------------------------------------------------


async def _alerts(services: Services) -> list[dict]:
    async with services.db.read() as session:
        rows = (await session.scalars(select(Notification).where(Notification.channel_id == 555))).all()
    return [row.payload for row in rows]


async def test_after_a_downtime_races_still_ahead_are_made_and_past_ones_reported_once(
    services: Services, moved_clock: Clock
) -> None:
    world = await _world(services)
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    series_id = await _series(services, world)  # made Wed 7 Jan: Sat 10 and 17 are in the window
    # Nothing runs until Sat 31 Jan, 19:55 Berlin: the 24th passed unmade; the 31st starts in 5 minutes.
    moved_clock.now = datetime(2026, 1, 31, 18, 55, tzinfo=UTC)
    report = await services.series.run_job()
    assert (report.created, report.missed) == (2, 1)  # the 31st (its room opens at once) and 7 Feb
    made = await _occurrences(services, series_id)
    assert [(d, kind) for d, kind, *_ in made] == [
        (date(2026, 1, 10), "created"),
        (date(2026, 1, 17), "created"),
        (date(2026, 1, 24), "missed"),
        (date(2026, 1, 31), "created"),
        (date(2026, 2, 7), "created"),
    ]
    assert made[3][2] == datetime(2026, 1, 31, 19, tzinfo=UTC)
    (alert,) = await _alerts(services)
    assert (
        "Series Saturday night missed 1 race while the bot was not running (Sat 24 Jan 20:00"
        in (alert["alert"]["summary"])
    )
    assert alert["race"]["scheduled_at"] == int(datetime(2026, 1, 31, 19, tzinfo=UTC).timestamp())
    # Another cycle, or two processes at once, report nothing more.
    moved_clock.advance(minutes=1)
    await asyncio.gather(*(services.series.run_job() for _ in range(3)))
    assert len(await _alerts(services)) == 1
    assert [d for d, kind, *_ in await _occurrences(services, series_id) if kind == "missed"] == [date(2026, 1, 24)]
    # A moderator may still hold the missed race later.
    await services.series.move(
        GUILD, world.tournament.id, series_id, MODERATOR, day=date(2026, 1, 24), to=datetime(2026, 2, 1, 18, tzinfo=UTC)
    )
    moved = {d: (kind, at) for d, kind, at, *_ in await _occurrences(services, series_id)}
    assert moved[date(2026, 1, 24)] == ("moved", datetime(2026, 2, 1, 18, tzinfo=UTC))


async def test_two_processes_reporting_the_same_missed_dates_commit_once(
    services: Services, moved_clock: Clock
) -> None:
    """Both read the series before either reports: the compare-and-set of checked_through lets one commit."""
    world = await _world(services)
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    series_id = await _series(services, world)
    moved_clock.now = datetime(2026, 2, 4, 12, tzinfo=UTC)  # the 24th and 31st passed unmade
    async with services.db.read() as session:
        checked = (await session.get(RaceSeries, series_id)).checked_through
    template = await services.templates.get(GUILD, world.tournament.id, (await _template_id(services, series_id)))
    view = await services.series.get(GUILD, world.tournament.id, series_id)
    recurrence = build(
        view.series.rrule,
        view.series.timezone,
        view.series.starts_on,
        local_start(template),
        min_interval=timedelta(hours=1),
    )
    missed = [o for o in recurrence.occurrences(after=checked, until=moved_clock.now) if o.local_date.day in (24, 31)]
    results = await asyncio.gather(
        *(services.series._report_missed(series_id, checked, missed, moved_clock.now) for _ in range(2)),
        return_exceptions=True,
    )
    assert sorted(r is True for r in results) == [False, True]
    assert [d for d, kind, *_ in await _occurrences(services, series_id) if kind == "missed"] == [
        date(2026, 1, 24),
        date(2026, 1, 31),
    ]
    async with services.db.read() as session:
        entries = await session.scalar(select(func.count(AuditEntry.id)).where(AuditEntry.action == "series.missed"))
    assert entries == 1


async def test_dates_before_a_series_was_made_or_resumed_are_never_missed(
    services: Services, moved_clock: Clock
) -> None:
    world = await _world(services)
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    # Starting from a date weeks ago: those dates were never due.
    series_id = await _series(services, world, starts_on=date(2025, 12, 1))
    tid = world.tournament.id
    await services.series.update(GUILD, tid, series_id, MODERATOR, status="paused")
    moved_clock.now = datetime(2026, 2, 4, 12, tzinfo=UTC)
    await services.series.update(GUILD, tid, series_id, MODERATOR, status="active")  # paused on purpose meanwhile
    report = await services.series.run_job()
    assert report.missed == 0 and await _alerts(services) == []
    assert "missed" not in {kind for _, kind, *_ in await _occurrences(services, series_id)}


async def test_a_series_from_before_the_upgrade_starts_counting_at_its_first_run(
    services: Services, moved_clock: Clock
) -> None:
    world = await _world(services)
    series_id = await _series(services, world)
    async with services.db.transaction() as session:
        (await session.get(RaceSeries, series_id)).checked_through = None  # as migrated
    moved_clock.now = datetime(2026, 2, 4, 12, tzinfo=UTC)
    report = await services.series.run_job()
    assert report.missed == 0
    async with services.db.read() as session:
        assert (await session.get(RaceSeries, series_id)).checked_through == moved_clock.now


async def _template_id(services: Services, series_id: int) -> int:
    async with services.db.read() as session:
        return (await session.get(RaceSeries, series_id)).template_id


async def test_a_series_that_cannot_make_its_next_race_pauses_and_tells_moderators_once(
    services: Services, moved_clock: Clock
) -> None:
    world = await _world(services)
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    series_id = await _series(services, world)  # Sat 10 and 17 made
    await services.tournaments.update_tournament(GUILD, world.tournament.id, MODERATOR, active=False)
    moved_clock.advance(days=7)  # the 24th is due: an inactive tournament refuses new races
    await asyncio.gather(*(services.series.run_job() for _ in range(2)))
    async with services.db.read() as session:
        series = await session.get(RaceSeries, series_id)
    assert series.status is SeriesStatus.PAUSED and "is not active" in series.status_reason
    (alert,) = await _alerts(services)
    assert alert["alert"]["summary"].startswith("Series Saturday night is paused and makes no more races:")
    assert alert["race"]["title"] == "Week 2 — Pool B"  # its next race, already made
    assert "resume" in alert["alert"]["action"]


async def test_the_seed_alert_names_the_pool_of_the_rotation(services: Services, moved_clock: Clock) -> None:
    world = await make_world(services, seeds=1)  # Pool A: one seed; Pool B (second in the rotation): none
    await services.guilds.update(GUILD, MODERATOR, moderator_channel_id=555)
    series_id = await _series(services, world)
    (alert,) = await _alerts(services)
    assert "no unused seed in pool Pool B, the next pool of its rotation" in alert["alert"]["summary"]
    assert alert["alert"]["action"].startswith("Add seeds to pool Pool B")
    async with services.db.read() as session:
        reason = (await session.get(RaceSeries, series_id)).status_reason
    assert reason.startswith("no unused seed left in pool Pool B for race") and "Sat 17 Jan 20:00" in reason
