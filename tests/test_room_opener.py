"""The room opener against the fake RaceTime.gg: one room per race across crashes and processes, backoff,
failures moderators must see, and the seed choice."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update
from sqlalchemy import event as sa_event

from bot.app import Application
from bot.errors import Conflict, ValidationFailed
from bot.events import LiveRaceOpenFailed, LiveRaceRoomOpened
from bot.services.race_locks import lock_races
from bot.services.room_opener import ClaimRefused, OpenFailure, OpenPlan, RoomOpener
from db.models import (
    AuditEntry,
    EventType,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    RaceStatus,
    Run,
    RunStatus,
    Seed,
)
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms, poll, running_app
from tests.fakes.notifications import outbox_shape
from tests.fakes.racetime_server import FakeRacetime, HeldRequest


@pytest.fixture
def app_settings(settings):
    settings.api.enabled = False
    return settings


async def _race(app: Application, race_id: int) -> LiveRace:
    return (await app.services.live_races.get(GUILD, race_id)).race


async def _schedule(app: Application, world, clock: Clock, minutes: float, **kwargs) -> int:
    view = await app.services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id,
        scheduled_at=clock.now + timedelta(minutes=minutes), **kwargs,
    )  # fmt: skip
    return view.race.id


def _rooms_of(rt: FakeRacetime, race: LiveRace) -> list[dict]:
    return rt.rooms_with_marker(f"sl:{race.marker}")


# ---- when rooms open ------------------------------------------------------------------------------------
async def test_rooms_open_at_their_lead_time(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    world = await make_world(services)
    early = await make_world(services, name="Early Cup", room_open_lead_minutes=60)
    inside = await _schedule(app, world, clock, 5)  # created inside the lead window
    later = await _schedule(app, world, clock, 40)
    early_race = await _schedule(app, early, clock, 40)
    report = await open_rooms(app)
    assert (report.due, report.opened) == (2, 2)
    assert (await _race(app, inside)).status is RaceStatus.ROOM_OPEN
    assert (await _race(app, early_race)).status is RaceStatus.ROOM_OPEN
    assert (await _race(app, later)).status is RaceStatus.SCHEDULED

    # Rescheduling moves the open time: the opener reads the table.
    await services.live_races.edit(GUILD, later, MODERATOR, scheduled_at=clock.now + timedelta(hours=5))
    clock.advance(minutes=30)
    assert (await open_rooms(app)).due == 0
    clock.advance(hours=4, minutes=16)
    assert (await open_rooms(app)).opened == 1
    assert (await _race(app, later)).status is RaceStatus.ROOM_OPEN
    assert (await open_rooms(app)).due == 0
    assert rt.count("POST", "/startrace") == 3


async def test_open_now_opens_a_race_that_is_not_due(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 24 * 60)
    view = await app.services.live_races.open_now(GUILD, race_id, MODERATOR)
    assert view.race.status is RaceStatus.ROOM_OPEN and view.race.room_opened_at == clock.now
    assert len(_rooms_of(rt, view.race)) == 1
    [event] = [e for e in app.events.published if isinstance(e, LiveRaceRoomOpened)]
    assert event.live_race_id == race_id
    async with app.db.read() as session:
        entry = (
            await session.execute(
                AuditEntry.__table__.select().where(
                    AuditEntry.action == "live_race.open", AuditEntry.target_id == race_id
                )
            )
        ).one()
    assert entry.actor_id == MODERATOR.id


# ---- exactly one room -------------------------------------------------------------------------------------
async def test_restart_between_claim_and_record_adopts_the_room(
    app_settings, rt: FakeRacetime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_app(app_settings, rt, clock) as first:
        world = await make_world(first.services)
        race_id = await _schedule(first, world, clock, 5)

        async def die(*args, **kwargs):  # the process is killed right after RaceTime.gg created the room
            raise asyncio.CancelledError

        monkeypatch.setattr(first.services.live_races.opener, "_record_opened", die)
        with pytest.raises(asyncio.CancelledError):
            await first.services.live_races.opener.run_cycle()
        claimed = await _race(first, race_id)
        assert claimed.status is RaceStatus.SCHEDULED and claimed.open_claim_id is not None
        assert len(_rooms_of(rt, claimed)) == 1

    async with running_app(app_settings, rt, clock) as second:
        assert (await open_rooms(second)).due == 0  # the claim's lease still holds
        clock.advance(seconds=app_settings.scheduler.open_claim_lease_seconds + 1)
        report = await open_rooms(second)
        assert (report.adopted, report.opened) == (1, 0)
        race = await _race(second, race_id)
        [room] = _rooms_of(rt, race)
        assert race.status is RaceStatus.ROOM_OPEN and race.racetime_slug == room["slug"]
        assert race.open_claim_id is None
        assert rt.count("POST", "/startrace") == 1
        assert (await open_rooms(second)).due == 0


async def _startrace_outlives_the_client(app: Application, rt: FakeRacetime, clock: Clock) -> tuple[int, HeldRequest]:
    """A race's first attempt: RaceTime.gg holds its startrace until our client gave up (the test releases it)."""
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    hold = rt.hold("POST", "/startrace")
    cycle = asyncio.create_task(open_rooms(app, expect_errors=True))
    startrace = await hold.arrival()
    assert (await cycle).failed == 1  # our client timed out waiting
    return race_id, startrace


async def test_room_created_after_the_client_gave_up_is_adopted(app_settings, rt: FakeRacetime, clock: Clock) -> None:
    app_settings.scheduler.open_backoff_base_seconds = 1  # the listing cache, not the backoff, sets the wait
    async with running_app(app_settings, rt, clock, request_timeout=0.3) as app:
        cache = app.settings.racetime.listing_cache_seconds
        race_id, startrace = await _startrace_outlives_the_client(app, rt, clock)
        race = await _race(app, race_id)
        assert race.status is RaceStatus.SCHEDULED and race.open_attempts == 1
        assert "RaceTime.gg did not open the room" in race.last_error and "timed out" in race.last_error
        # RaceTime.gg may still create it: no attempt before its listing, cached that long, can show the room.
        assert race.next_open_attempt_at == race.room_search_after == clock.now + timedelta(seconds=cache)
        startrace.release()
        await startrace.handled()  # ... and it does, after the client gave up
        assert len(_rooms_of(rt, race)) == 1
        clock.advance(seconds=cache - 1)
        assert (await open_rooms(app)).due == 0
        with pytest.raises(Conflict, match=r"may have created the room of race .* its race list shows it only from"):
            await app.services.live_races.open_now(GUILD, race_id, MODERATOR)  # a moderator waits too
        clock.advance(seconds=1)
        assert (await open_rooms(app)).adopted == 1
        race = await _race(app, race_id)
        assert race.status is RaceStatus.ROOM_OPEN and race.last_error is None and race.room_search_after is None
        assert len(_rooms_of(rt, race)) == 1 and race.racetime_slug == _rooms_of(rt, race)[0]["slug"]
        assert rt.count("POST", "/startrace") == 1


async def test_a_second_room_the_listing_did_not_show_is_cancelled(
    app_settings, rt: FakeRacetime, clock: Clock
) -> None:
    """RaceTime.gg completes a startrace so late that even the retry's listing misses the room: two rooms carry
    the marker. The poller cancels the one the race did not record (its players were sent the other)."""
    app_settings.scheduler.open_backoff_base_seconds = 1  # the listing cache, not the backoff, sets the wait
    async with running_app(app_settings, rt, clock, request_timeout=0.3) as app:
        cache = app.settings.racetime.listing_cache_seconds
        race_id, late = await _startrace_outlives_the_client(app, rt, clock)
        clock.advance(seconds=cache)
        await app.racetime.category_data("alttpr")  # the listing is cached now, without the room
        late.release()
        await late.handled()
        assert (await open_rooms(app)).opened == 1  # its listing was the cached one: a second room
        race = await _race(app, race_id)
        first = next(room["slug"] for room in _rooms_of(rt, race) if room["slug"] != race.racetime_slug)
        assert len(_rooms_of(rt, race)) == 2

        report = await poll(app)  # once the cache expired the listing shows both
        assert report.strays == 1
        assert rt.room(first)["status"]["value"] == "cancelled"
        assert rt.room(race.racetime_slug)["status"]["value"] == "open"
        async with app.db.read() as session:
            [entry] = await session.scalars(
                select(AuditEntry).where(AuditEntry.action == "live_race.stray_room_cancelled")
            )
        assert entry.target_id == race_id and entry.details["racetime_slug"] == first and entry.details["cancelled"]
        assert "second room" in entry.details["reason"]
        assert (await poll(app, fresh=False)).strays == 1  # the cached listing still shows it: not cancelled twice
        async with app.db.read() as session:
            entries = await session.scalars(select(AuditEntry).where(AuditEntry.action == entry.action))
            assert len(list(entries)) == 1
        assert [e.live_race_id for e in app.events.published if isinstance(e, LiveRaceRoomOpened)] == [race_id]


async def test_dropped_startrace_that_created_nothing_is_retried(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    await app.racetime.category_data("alttpr")  # a token first, so the drop hits startrace itself
    rt.drop_next(1, "/startrace")
    assert (await open_rooms(app, expect_errors=True)).failed == 1
    clock.advance(seconds=60)
    report = await open_rooms(app)
    assert (report.opened, report.adopted) == (1, 0)  # looked for the marker first, found none
    race = await _race(app, race_id)
    assert len(_rooms_of(rt, race)) == 1 and race.status is RaceStatus.ROOM_OPEN
    assert rt.count("GET", "/o/alttpr/data") == 2


async def test_two_processes_on_one_database_open_each_room_once(app_settings, rt: FakeRacetime, clock: Clock) -> None:
    async with running_app(app_settings, rt, clock) as one, running_app(app_settings, rt, clock) as two:
        world = await make_world(one.services, seeds=8)
        race_ids = [await _schedule(one, world, clock, 1 + index) for index in range(8)]
        rt.set_delay(0.02, "/startrace")  # widen the window between claim and record
        for _ in range(3):
            reports = await asyncio.gather(open_rooms(one), open_rooms(two))
            clock.advance(seconds=1)
        races = [await _race(one, race_id) for race_id in race_ids]
        assert all(race.status is RaceStatus.ROOM_OPEN for race in races)
        assert all(len(_rooms_of(rt, race)) == 1 for race in races)
        assert rt.count("POST", "/startrace") == 8
        assert len({race.seed_id for race in races}) == 8  # each room got its own seed
        opened = [
            e.live_race_id for app in (one, two) for e in app.events.published if isinstance(e, LiveRaceRoomOpened)
        ]
        assert sorted(opened) == sorted(race_ids)
        assert reports  # both ran


# ---- failures ---------------------------------------------------------------------------------------------
async def test_backoff_then_give_up_then_open_now(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    other_id = await _schedule(app, world, clock, 6)
    scheduler = app.settings.scheduler
    rt.down()
    delays = []
    for _ in range(scheduler.open_max_attempts):
        report = await open_rooms(app, expect_errors=True)
        assert report.failed == 2
        race = await _race(app, race_id)
        assert race.status is RaceStatus.SCHEDULED and race.open_claim_id is None
        assert "503" in race.last_error
        assert (await open_rooms(app)).due == 0  # nothing before the next attempt time
        if race.next_open_attempt_at is None:
            break
        delays.append((race.next_open_attempt_at - clock.now).total_seconds())
        clock.now = race.next_open_attempt_at
    # RaceTime.gg is down before the POST goes out (the token): no room can exist, so base × 2^(n−1).
    assert delays == [15.0, 30.0, 60.0, 120.0, 240.0]
    assert race.open_attempts == scheduler.open_max_attempts and race.next_open_attempt_at is None
    failed = [e for e in app.events.published if isinstance(e, LiveRaceOpenFailed)]
    assert sorted(e.live_race_id for e in failed) == [race_id, other_id]  # told once per race
    rt.up()
    clock.advance(minutes=10)
    assert (await open_rooms(app)).due == 0  # given up: only a moderator restarts it

    view = await app.services.live_races.open_now(GUILD, race_id, MODERATOR)
    assert view.race.status is RaceStatus.ROOM_OPEN and view.race.last_error is None
    await app.services.live_races.edit(GUILD, other_id, MODERATOR, title="Retry please")  # an edit re-arms it
    assert (await open_rooms(app)).opened == 1
    assert rt.count("POST", "/startrace") == 2


async def test_catch_up_after_racetime_was_down(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    app.settings.scheduler.open_backoff_base_seconds = 1
    cache = app.settings.racetime.listing_cache_seconds
    rt.fail_next(2, 503, "/startrace")
    for _ in range(2):
        assert (await open_rooms(app, expect_errors=True)).failed == 1
        race = await _race(app, race_id)
        # startrace failed, so a room may exist: no attempt before the listing cache time passed
        assert race.next_open_attempt_at == race.room_search_after == clock.now + timedelta(seconds=cache)
        clock.advance(seconds=cache)
    assert (await open_rooms(app)).opened == 1
    race = await _race(app, race_id)
    assert race.status is RaceStatus.ROOM_OPEN and race.last_error is None and race.open_attempts == 2
    assert len(_rooms_of(rt, race)) == 1


async def test_validation_error_fails_at_once_with_a_readable_message(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    world = await make_world(app.services, racetime_goal="Any% NMG")  # not a goal of the category
    race_id = await _schedule(app, world, clock, 5)
    assert (await open_rooms(app, expect_errors=True)).failed == 1
    race = await _race(app, race_id)
    assert race.last_error == "RaceTime.gg refused to open the room: You need to set a goal for this race."
    assert race.open_attempts == app.settings.scheduler.open_max_attempts and race.next_open_attempt_at is None
    assert [e.live_race_id for e in app.events.published if isinstance(e, LiveRaceOpenFailed)] == [race_id]
    with pytest.raises(ValidationFailed, match="You need to set a goal"):
        await app.services.live_races.open_now(GUILD, race_id, MODERATOR)
    assert rt.count("POST", "/startrace") == 2


async def test_open_now_while_another_process_opens_it(app: Application, clock: Clock) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 60)
    async with app.db.transaction() as session:
        await session.execute(
            update(LiveRace).where(LiveRace.id == race_id).values(open_claim_id="other", open_claimed_at=clock.now)
        )
    with pytest.raises(Conflict, match="being opened right now"):
        await app.services.live_races.open_now(GUILD, race_id, MODERATOR)


async def test_cancel_while_the_room_is_being_created_leaves_no_room(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    rt.set_delay(0.3, "/startrace")
    cycle = asyncio.create_task(open_rooms(app))
    for _ in range(100):
        if rt.count("POST", "/startrace"):
            break
        await asyncio.sleep(0.01)
    cancelled = await app.services.live_races.cancel(GUILD, race_id, MODERATOR, reason="Changed plans")
    assert cancelled.race.status is RaceStatus.CANCELLED
    await cycle
    race = await _race(app, race_id)
    [room] = _rooms_of(rt, race)
    assert race.status is RaceStatus.CANCELLED and race.racetime_slug is None
    assert room["status"]["value"] == "cancelled"


# ---- the seed ----------------------------------------------------------------------------------------------
async def test_seed_choice_fewest_runs_unused_unreserved(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    world = await make_world(services, seeds=5)
    seeds = world.seeds
    player = await add_player(services, 1, "Runner", "aaaaaaaaaaaa0001")
    async with app.db.transaction() as session:
        for seed, count in ((seeds[0], 2), (seeds[2], 1), (seeds[3], 1), (seeds[4], 1)):
            for _ in range(count):
                session.add(
                    Run(tournament_id=world.tournament.id, seed_id=seed.id, player_id=player.id,
                        status=RunStatus.FINISHED, elapsed_us=1, reattempted=True)
                )  # fmt: skip
        await session.execute(update(Seed).where(Seed.id == seeds[1].id).values(used_in_live_race=True))
    reserved = await _schedule(app, world, clock, 120, seed_id=seeds[2].id)  # a moderator's pick
    first = await _schedule(app, world, clock, 5)
    second = await _schedule(app, world, clock, 6)
    third = await _schedule(app, world, clock, 7)
    fourth = await _schedule(app, world, clock, 8)
    report = await open_rooms(app, expect_errors=True)
    assert (report.opened, report.failed) == (3, 1)
    one, two, three, four = [await _race(app, race_id) for race_id in (first, second, third, fourth)]
    # seeds[1] is used and seeds[2] reserved; then fewest runs first, lowest id on ties
    assert (one.seed_id, two.seed_id, three.seed_id) == (seeds[3].id, seeds[4].id, seeds[0].id)
    assert seeds[3].url in rt.room(one.racetime_slug)["info_user"]
    assert four.status is RaceStatus.SCHEDULED and four.seed_id is None
    assert four.last_error.startswith("pool Pool A has no seed left")
    assert (await _race(app, reserved)).seed_id == seeds[2].id
    # A new seed, then open-now: the moderator fixed it.
    new_seed = await services.tournaments.add_seed(
        GUILD, world.tournament.id, world.pool.id, MODERATOR, url="https://alttpr.com/h/fresh"
    )
    view = await services.live_races.open_now(GUILD, fourth, MODERATOR)
    assert view.seed is not None and view.seed.id == new_seed.id


async def test_a_retry_keeps_the_seed_of_the_first_attempt(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    rt.fail_next(1, 503, "/startrace")
    await open_rooms(app, expect_errors=True)
    chosen = (await _race(app, race_id)).seed_id
    assert chosen == world.seeds[0].id
    async with app.db.transaction() as session:  # seed 0 gains runs meanwhile; the race keeps it anyway
        player = await add_player(app.services, 1, "P", "aaaaaaaaaaaa0001")
        session.add(Run(tournament_id=world.tournament.id, seed_id=chosen, player_id=player.id, reattempted=True))
    clock.advance(minutes=2)
    await open_rooms(app)
    race = await _race(app, race_id)
    assert race.seed_id == chosen and world.seeds[0].url in rt.room(race.racetime_slug)["info_user"]


async def test_opener_claim_is_compare_and_set(app: Application, clock: Clock) -> None:
    """Two openers built on one database: the second's claim of the same race is refused."""
    world = await make_world(app.services)
    race_id = await _schedule(app, world, clock, 5)
    opener = app.services.live_races.opener
    plan = await opener._claim(race_id, actor=MODERATOR, manual=False)
    rival = RoomOpener(app.db, app.events, app.settings, app.racetime, clock=clock)
    with pytest.raises(Exception, match=r"being opened right now|not due"):
        await rival._claim(race_id, actor=MODERATOR, manual=False)
    assert plan.reconcile is False
    race = await _race(app, race_id)
    assert race.open_claim_id == plan.claim_id


async def test_a_category_the_bot_does_not_belong_to_is_explained(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    rt.add_category("smr", ["Beat both games"])
    world = await make_world(app.services, racetime_category="smr", racetime_goal="Beat both games")
    race_id = await _schedule(app, world, clock, 5)
    assert (await open_rooms(app, expect_errors=True)).failed == 1
    race = await _race(app, race_id)
    assert race.last_error.startswith("RaceTime.gg refused the bot in category 'smr'")
    # wrong credentials for the category do not heal by waiting: the opener gives up at once
    assert race.status is RaceStatus.SCHEDULED and race.open_attempts == app.settings.scheduler.open_max_attempts
    assert race.next_open_attempt_at is None


# ---- many rooms due at once -----------------------------------------------------------------------------
async def test_rooms_due_together_open_with_bounded_concurrency(app_settings, rt: FakeRacetime, clock: Clock) -> None:
    """Seven rooms due at once with `open_concurrency` 3: RaceTime.gg never has more than three startraces of ours
    in flight (counted at the fake when each arrives), no more races are claimed than those and one round ahead,
    every room opens once, soonest first."""
    limit, due = 3, 7
    app_settings.scheduler.open_concurrency = limit
    async with running_app(app_settings, rt, clock) as app:
        world = await make_world(app.services, seeds=due)
        race_ids = [await _schedule(app, world, clock, 5 + index) for index in range(due)]
        hold = rt.hold("POST", "/startrace", count=None)
        in_flight_at_arrival: list[int] = []
        take = hold.take

        def counting_take(method: str, path: str) -> HeldRequest:
            in_flight_at_arrival.append(sum(1 for held in hold.held if not held._released.is_set()) + 1)
            return take(method, path)

        hold.take = counting_take  # type: ignore[method-assign]
        cycle = asyncio.create_task(open_rooms(app))
        claimed_at_full: list[int] = []
        for _ in range(due):
            await hold.arrival()
            outstanding = [held for held in hold.held if not held._released.is_set()]
            if len(outstanding) >= limit or len(hold.held) == due:
                async with app.db.read() as session:  # races claimed while `limit` startraces are held
                    claimed = select(LiveRace.id).where(LiveRace.open_claim_id.is_not(None))
                    claimed_at_full.append(len((await session.execute(claimed)).all()))
                for held in outstanding[: len(outstanding) - limit + 1] if len(hold.held) < due else outstanding:
                    held.release()
        report = await cycle
        assert (report.due, report.opened) == (due, due)
        assert max(in_flight_at_arrival) == limit and len(in_flight_at_arrival) == due
        # Claimed: the ones in flight and at most one round ahead (the next `limit` races, claimed together).
        assert max(claimed_at_full) <= 2 * limit - 1
        opened = [await _race(app, race_id) for race_id in race_ids]
        assert all(race.status is RaceStatus.ROOM_OPEN and len(_rooms_of(rt, race)) == 1 for race in opened)
        assert rt.count("POST", "/startrace") == due


# ---- claims in batches --------------------------------------------------------------------------------------
async def test_a_cancel_between_the_batch_claim_and_startrace_leaves_no_room(
    app_settings, rt: FakeRacetime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three races due at once are claimed in one transaction; a moderator cancels the second while its startrace
    is held at the fake. Its room is cancelled on RaceTime.gg and the race stays cancelled; the others open."""
    app_settings.scheduler.open_concurrency = 3
    async with running_app(app_settings, rt, clock) as app:
        world = await make_world(app.services, seeds=3)
        race_ids = [await _schedule(app, world, clock, 5 + index) for index in range(3)]
        opener = app.services.live_races.opener
        batches: list[list[int]] = []
        claim_batch = opener._claim_batch

        async def recorded_batch(ids: list[int], **kwargs):
            batches.append(list(ids))
            return await claim_batch(ids, **kwargs)

        monkeypatch.setattr(opener, "_claim_batch", recorded_batch)
        hold = rt.hold("POST", "/startrace", count=None)
        cycle = asyncio.create_task(open_rooms(app))
        held = [await hold.arrival() for _ in race_ids]
        assert batches == [race_ids]  # one claim transaction for the three, soonest first
        async with app.db.read() as session:
            claims = (await session.execute(select(LiveRace.open_claim_id).where(LiveRace.id.in_(race_ids)))).all()
        assert all(claim is not None for (claim,) in claims)
        cancelled = await app.services.live_races.cancel(GUILD, race_ids[1], MODERATOR, reason="Changed plans")
        assert cancelled.race.status is RaceStatus.CANCELLED
        for request in held:
            request.release()
        report = await cycle
        assert (report.due, report.opened, report.skipped) == (3, 2, 1)
        races = [await _race(app, race_id) for race_id in race_ids]
        assert [race.status for race in races] == [RaceStatus.ROOM_OPEN, RaceStatus.CANCELLED, RaceStatus.ROOM_OPEN]
        [room] = _rooms_of(rt, races[1])
        assert room["status"]["value"] == "cancelled" and races[1].racetime_slug is None
        assert all(len(_rooms_of(rt, race)) == 1 for race in races)
        assert rt.count("POST", "/startrace") == 3
        assert (await open_rooms(app)).due == 0


async def test_openings_finished_during_a_record_are_recorded_together(
    app_settings, rt: FakeRacetime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first room's record is held; meanwhile a moderator cancels the second race and the two other rooms
    arrive: they are recorded in one transaction after it, each race checked on its own (the cancelled race's room
    is cancelled on RaceTime.gg, the third race's recorded)."""
    app_settings.scheduler.open_concurrency = 3
    async with running_app(app_settings, rt, clock) as app:
        world = await make_world(app.services, seeds=3)
        race_ids = [await _schedule(app, world, clock, 5 + index) for index in range(3)]
        opener = app.services.live_races.opener
        batches: list[list[int]] = []
        entered, go_on = asyncio.Event(), asyncio.Event()
        record_batch = opener._record_batch

        async def held_first_batch(entries):
            batches.append([plan.race_id for plan, *_ in entries])
            if len(batches) == 1:
                entered.set()
                await go_on.wait()  # no transaction is open yet: the moderator's cancel can write
            return await record_batch(entries)

        monkeypatch.setattr(opener, "_record_batch", held_first_batch)
        hold = rt.hold("POST", "/startrace", count=None)
        cycle = asyncio.create_task(open_rooms(app))
        held = [await hold.arrival() for _ in race_ids]
        held[0].release()
        await entered.wait()
        [first] = batches[0]
        cancelled, kept = sorted(set(race_ids) - {first})
        await app.services.live_races.cancel(GUILD, cancelled, MODERATOR, reason="Changed plans")
        both_queued = asyncio.Event()

        class Queue(list):  # the openings waiting to be recorded (the held batch took the first one already)
            def append(self, entry) -> None:
                super().append(entry)
                if len(self) == 2:
                    both_queued.set()

        assert opener._to_record == []
        opener._to_record = Queue()
        held[1].release()
        held[2].release()
        await both_queued.wait()
        go_on.set()
        report = await cycle
        assert len(batches) == 2 and sorted(batches[1]) == [cancelled, kept]
        assert (report.opened, report.skipped) == (2, 1)
        assert (await _race(app, first)).status is RaceStatus.ROOM_OPEN
        assert (await _race(app, kept)).status is RaceStatus.ROOM_OPEN
        gone = await _race(app, cancelled)
        assert gone.status is RaceStatus.CANCELLED and gone.racetime_slug is None
        assert _rooms_of(rt, gone)[0]["status"]["value"] == "cancelled"
        assert rt.count("POST", "/startrace") == 3


async def test_a_batch_claim_refuses_a_race_that_changed_since_it_was_listed(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    """The batch re-reads every race under its lock: one deleted and one already claimed since the due list was
    read are refused, one gone past its start is failed and recorded, the fourth is claimed."""
    world = await make_world(app.services, seeds=4)
    ids = [await _schedule(app, world, clock, 5) for _ in range(4)]
    opener = app.services.live_races.opener
    await opener._claim(ids[1], actor=MODERATOR, manual=False)  # another opener holds it
    await app.services.live_races.delete(GUILD, ids[2], MODERATOR)
    async with app.db.transaction() as session:
        await session.execute(
            update(LiveRace).where(LiveRace.id == ids[3]).values(scheduled_at=clock.now - timedelta(days=1))
        )
    results = dict(await opener._claim_batch([ids[3], ids[2], ids[1], ids[0], 10**9], actor=MODERATOR))
    plan = results[ids[0]]
    assert isinstance(plan, OpenPlan) and plan.race_id == ids[0]
    assert "being opened right now" in str(results[ids[1]])
    assert isinstance(results[ids[2]], ClaimRefused) and isinstance(results[10**9], ClaimRefused)
    assert isinstance(results[ids[3]], OpenFailure)
    late = await _race(app, ids[3])
    assert late.open_claim_id is None and late.last_error.startswith("not opened automatically")
    assert (await _race(app, ids[0])).open_claim_id == plan.claim_id


async def test_a_batch_claim_skips_a_race_another_transaction_holds(app: Application, clock: Clock) -> None:
    """PostgreSQL: a race locked by another writer (a moderator's edit, another process's claim) is skipped at once
    (SKIP LOCKED) and left for the next cycle; the rest of the batch is claimed. (SQLite has one writer: the batch
    waits for it, as every writer does.)"""
    if app.db.dialect == "sqlite":
        pytest.skip("SQLite has one writer; rows are not locked one by one")
    from bot.services.race_locks import lock_race

    world = await make_world(app.services)
    first, held = await _schedule(app, world, clock, 5), await _schedule(app, world, clock, 6)
    opener = app.services.live_races.opener
    async with app.db.transaction() as session:
        assert await lock_race(session, held) is not None  # held until this block ends
        results = dict(await opener._claim_batch([first, held], actor=MODERATOR))
    assert isinstance(results[first], OpenPlan) and isinstance(results[held], ClaimRefused)
    assert (await _race(app, held)).open_claim_id is None


async def test_a_record_batch_queues_exactly_the_rows_one_room_at_a_time_would(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    """The rooms of a record batch are announced set-wise (`OutboxWriter.write_many`: the races, guild settings,
    seed notes and living announcements read once for the batch): the same DMs, payloads, dedupe keys, channel
    posts, edits of living announcements and Discord Scheduled Event rows as `write` for each room alone."""
    services = app.services
    world = await make_world(services, seeds=3)
    other = await make_world(services, name="Autumn Cup", seeds=1)
    await services.guilds.update(GUILD, MODERATOR, announcement_channel_id=555)
    for index in range(3):
        await add_player(services, 800 + index, f"P{index}", f"rtopen{index:04d}")
        await services.notifications.set_preference(
            800 + index, EventType.LIVE_RACE_ROOM_OPENED, True, guild_id=None, actor=MODERATOR
        )
    async with app.db.transaction() as session:
        await session.execute(update(Seed).where(Seed.id == world.seeds[1].id).values(notes="  Boots start  "))
    ids = [
        await _schedule(app, world, clock, 5),
        await _schedule(app, world, clock, 6, seed_id=world.seeds[1].id),
        await _schedule(app, other, clock, 7),
    ]
    # The third race's announcement went out before living announcements existed: a post per step, no edit.
    async with app.db.transaction() as session:
        await session.execute(
            update(Notification)
            .where(Notification.live_race_id == ids[2], Notification.kind == NotificationKind.CHANNEL)
            .values(status=NotificationStatus.SENT)
        )
        before = await session.scalar(select(func.max(Notification.id)))
    assert (await open_rooms(app)).opened == 3

    async def queued(write) -> list:
        async with app.db.transaction() as session:
            await session.execute(delete(Notification).where(Notification.id > before))
            await write(session)
        async with app.db.read() as session:
            return outbox_shape((await session.scalars(select(Notification).where(Notification.id > before))).all())

    async with app.db.read() as session:
        by_cycle = outbox_shape((await session.scalars(select(Notification).where(Notification.id > before))).all())
    events = [
        LiveRaceRoomOpened(
            guild_id=GUILD,
            tournament_id=(await _race(app, race_id)).tournament_id,
            live_race_id=race_id,
            occurred_at=clock.now,
        )
        for race_id in ids
    ]
    outbox = services.notifications.outbox

    async def one_at_a_time(session) -> None:
        for event in events:
            await outbox.write(session, event)

    async def set_wise(session) -> None:
        await outbox.write_many(session, events)

    reads: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        reads.append(statement)

    async def set_wise_as_recorded(session) -> None:
        """As the opener's record batch does it: the races locked with their tournaments, pools, seeds and guild
        settings, which `write_many` then finds in the session instead of reading them again."""
        await lock_races(session, ids, skip_locked=False, with_context=True)
        sa_event.listen(app.db.engine.sync_engine, "before_cursor_execute", record)
        try:
            await outbox.write_many(session, events)
        finally:
            sa_event.remove(app.db.engine.sync_engine, "before_cursor_execute", record)

    alone = await queued(one_at_a_time)
    together = await queued(set_wise)
    held = await queued(set_wise_as_recorded)
    assert together == alone == by_cycle == held
    first_tables = {match.group(1) for read in reads if (match := re.search(r'\bFROM\s+"?(\w+)', read))}
    assert not first_tables & {"live_races", "tournaments", "pools", "seeds", "guild_settings"}, reads
    kinds = [row[0] for row in together]
    assert kinds.count(NotificationKind.DM) == 3 * len(ids)
    assert kinds.count(NotificationKind.SCHEDULED_EVENT) == len(ids)
    assert kinds.count(NotificationKind.EDIT) == 2  # the living announcements; the third race gets a post only
    assert kinds.count(NotificationKind.CHANNEL) == len(ids)
    assert sum("Notes: Boots start" in row[5] for row in together) == 3 + 1 + 1  # its DMs, post and edit


async def test_a_batch_claim_gives_each_race_its_own_seed_in_due_order(app: Application, clock: Clock) -> None:
    """The races of one claim transaction choose their seeds without flushing the claims before them (one UPDATE a
    race): each still gets a seed of its own, the soonest race the pool's best, as one claim at a time would."""
    world = await make_world(app.services, seeds=4)
    ids = [await _schedule(app, world, clock, 9 - index) for index in range(3)]  # the last made is the soonest
    manual = await _schedule(app, world, clock, 4, seed_id=world.seeds[0].id)
    results = dict(await app.services.live_races.opener._claim_batch([manual, *reversed(ids)], actor=MODERATOR))
    plans = [results[race_id] for race_id in [manual, *reversed(ids)]]
    assert all(isinstance(plan, OpenPlan) for plan in plans)
    assert [plan.seed_id for plan in plans] == [seed.id for seed in world.seeds]
    assert [(await _race(app, race_id)).seed_id for race_id in [manual, *reversed(ids)]] == [
        seed.id for seed in world.seeds
    ]


async def test_a_batch_claim_makes_the_same_statements_for_one_race_as_for_several(
    app: Application, clock: Clock
) -> None:
    """A claim transaction's statements are per batch, not per race: the races are locked with their tournament,
    pool, seed and guild settings in one statement, which nothing reads again (docs/benchmarks.md)."""
    world = await make_world(app.services, seeds=4)
    ids = [await _schedule(app, world, clock, 5 + index) for index in range(4)]
    opener = app.services.live_races.opener
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    async def claimed(race_ids: list[int]) -> list[str]:
        statements.clear()
        sa_event.listen(app.db.engine.sync_engine, "before_cursor_execute", record)
        try:
            results = await opener._claim_batch(race_ids, actor=MODERATOR)
        finally:
            sa_event.remove(app.db.engine.sync_engine, "before_cursor_execute", record)
        assert all(isinstance(plan, OpenPlan) for _, plan in results)
        return [statement.split(None, 1)[0].upper() for statement in statements]

    one, several = await claimed(ids[:1]), await claimed(ids[1:])
    assert one == several
    assert one.count("SELECT") == 2, statements  # the lock (with the races' context) and the seed choice
    assert one.count("UPDATE") == 1


async def test_a_claim_that_waited_too_long_for_a_worker_is_released_unused(
    app: Application, rt: FakeRacetime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A race claimed a round ahead whose claim has less than one request timeout of its budget left when a worker
    takes it up makes no request: its claim is released as if it had not been made (no attempt counted, the room
    search time it had before) and the next cycle opens it."""
    world = await make_world(app.services, seeds=2)
    first, second = await _schedule(app, world, clock, 5), await _schedule(app, world, clock, 6)
    opener = app.services.live_races.opener
    claim_batch = opener._claim_batch

    async def second_runs_out(race_ids: list[int], **kwargs):
        results = await claim_batch(race_ids, **kwargs)
        return [
            (race_id, dataclasses.replace(plan, deadline=plan.deadline - 2 * opener.settings.open_claim_budget_seconds))
            if race_id == second and isinstance(plan, OpenPlan)
            else (race_id, plan)
            for race_id, plan in results
        ]

    monkeypatch.setattr(opener, "_claim_batch", second_runs_out)
    report = await open_rooms(app)
    assert (report.due, report.opened, report.skipped) == (2, 1, 1)
    assert rt.count("POST", "/startrace") == 1 and (await _race(app, first)).status is RaceStatus.ROOM_OPEN
    released = await _race(app, second)
    assert released.status is RaceStatus.SCHEDULED and released.open_claim_id is None
    assert (released.open_attempts, released.room_search_after, released.last_error) == (0, None, None)
    assert released.seed_id is not None  # the seed it was given is kept for the next claim
    monkeypatch.setattr(opener, "_claim_batch", claim_batch)
    assert (await open_rooms(app)).opened == 1
    assert (await _race(app, second)).status is RaceStatus.ROOM_OPEN
    assert rt.count("POST", "/startrace") == 2


async def test_a_batch_claim_past_the_pools_last_seed_fails_that_race_only(app: Application, clock: Clock) -> None:
    """Three races of a pool with two seeds claimed together: the two soonest get them, the third fails with no seed
    left, as one claim at a time would."""
    world = await make_world(app.services, seeds=2)
    ids = [await _schedule(app, world, clock, 5 + index) for index in range(3)]
    results = dict(await app.services.live_races.opener._claim_batch(ids, actor=MODERATOR))
    assert [results[ids[0]].seed_id, results[ids[1]].seed_id] == [seed.id for seed in world.seeds]
    assert isinstance(results[ids[2]], OpenFailure) and results[ids[2]].conflict
    assert "no seed left" in (await _race(app, ids[2])).last_error
