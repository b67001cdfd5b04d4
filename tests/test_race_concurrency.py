"""What if a moderator acts on a live race right now, while a job is half-way through a step on it?

A deterministic interleaving harness: the fake RaceTime.gg holds the job's request (the opener's `startrace`
before or after RaceTime.gg handled it, the poller's read of a room that started, finished or was cancelled
there), the moderator acts, then the request is released and the jobs settle. Whatever the pair, the end state
keeps the invariants: at most one room per race, no open room for a cancelled race, no recorded result lost,
the DMs queued agree with the final state, the room shows the race's seed, and the audit log tells what
happened. Then the bugs of issue 11, each with the test that pins it down.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from bot.app import Application
from bot.errors import Conflict, DomainError, InvalidTransition
from bot.events import LiveRaceCancelled, LiveRaceOpenFailed, LiveRaceRoomOpened
from bot.services.room_opener import STRAY_ROOM_CANCELLED, RoomOpener, room_seed_url
from bot.settings import Settings
from db.models import (
    OPEN_FAILED_ALERT,
    AuditEntry,
    EventType,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    RaceStatus,
    Run,
    RunStatus,
    Seed,
)
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, World, add_player, make_world, open_rooms, poll, running_app
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime, HeldRequest

ALICE, BOB = captured_user("Alice"), captured_user("Bob")
ALICE_TIME = timedelta(hours=1, minutes=2, seconds=3, microseconds=456789)
OVER = ("cancelled", "finished")


@pytest_asyncio.fixture
async def app(settings: Settings, rt: FakeRacetime, clock: Clock) -> AsyncIterator[Application]:
    # A patient client: a held request waits for the test, not for a timeout (the opener's own budget is 30 s).
    settings.api.enabled = False
    async with running_app(settings, rt, clock, request_timeout=20.0) as application:
        yield application


@dataclass
class Race:
    """One race of the harness, with two opted-in players who race it."""

    app: Application
    rt: FakeRacetime
    clock: Clock
    world: World
    id: int
    marker: str

    @property
    def live(self):
        return self.app.services.live_races

    async def row(self) -> LiveRace | None:
        async with self.app.db.read() as session:
            return await session.get(LiveRace, self.id)

    def rooms(self) -> list[dict]:
        return self.rt.rooms_with_marker(f"sl:{self.marker}")

    async def slug(self) -> str:
        race = await self.row()
        assert race is not None and race.racetime_slug is not None
        return race.racetime_slug


async def schedule(app: Application, rt: FakeRacetime, clock: Clock, *, minutes: float = 5) -> Race:
    services = app.services
    world = await make_world(services)
    for discord_id, name, user in ((701, "Alice", ALICE), (702, "Bob", BOB)):
        await add_player(services, discord_id, name, user["id"])
        await services.notifications.set_all(discord_id, True, guild_id=GUILD, actor=MODERATOR)
    view = await services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=clock.now + timedelta(minutes=minutes),
    )
    return Race(app, rt, clock, world, view.race.id, view.race.marker)


# ---- the points a job can be at -------------------------------------------------------------------------
async def _opener_at(race: Race, stage: str) -> tuple[asyncio.Task, HeldRequest]:
    hold = race.rt.hold("POST", "/startrace", stage=stage)
    job = asyncio.create_task(open_rooms(race.app))
    held = await hold.arrival()
    if stage == "answer":
        await held.handled()  # RaceTime.gg made the room; the opener has not heard of it yet
    return job, held


async def _poller_at(race: Race, room_event: str) -> tuple[asyncio.Task, HeldRequest]:
    """The room is open with Alice and Bob; `room_event` happens on RaceTime.gg, and the poller has read the room
    (RaceTime.gg answered) but not applied it yet."""
    await open_rooms(race.app)
    slug = await race.slug()
    for user in (ALICE, BOB):
        race.rt.add_entrant(slug, user)
    race.rt.start(slug)
    if room_event != "start":
        await poll(race.app)  # the start is recorded: both got a run
        if room_event == "finish":
            race.rt.finish_entrant(slug, ALICE["id"], ALICE_TIME)
            race.rt.dnf(slug, BOB["id"])
        else:
            race.rt.dnf(slug, BOB["id"])
            race.rt.cancel(slug)  # a race monitor cancels it on RaceTime.gg
    hold = race.rt.hold("GET", f"/{slug}/data", stage="answer")
    job = asyncio.create_task(poll(race.app))
    held = await hold.arrival()
    await held.handled()
    return job, held


async def _opener_dies_after_startrace(race: Race) -> None:
    """The process is killed once RaceTime.gg made the room: the room exists, nobody recorded it."""
    job, held = await _opener_at(race, "answer")
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    held.release()


POINTS: dict[str, Callable[[Race], Awaitable[tuple[asyncio.Task, HeldRequest]]]] = {
    "opener before startrace": lambda race: _opener_at(race, "request"),
    "opener after startrace": lambda race: _opener_at(race, "answer"),
    "poller on start": lambda race: _poller_at(race, "start"),
    "poller on finish": lambda race: _poller_at(race, "finish"),
    "poller on a RaceTime.gg cancel": lambda race: _poller_at(race, "cancel"),
}

# ---- what a moderator does ------------------------------------------------------------------------------
ACTIONS: dict[str, Callable[[Race], Awaitable[object]]] = {
    "cancel": lambda race: race.live.cancel(GUILD, race.id, MODERATOR, reason="Storm"),
    "edit title": lambda race: race.live.edit(GUILD, race.id, MODERATOR, title="Renamed"),
    "edit seed": lambda race: race.live.edit(GUILD, race.id, MODERATOR, seed_id=race.world.seeds[1].id),
    "edit time": lambda race: _move(race),
    "delete": lambda race: race.live.delete(GUILD, race.id, MODERATOR),
    "open now": lambda race: race.live.open_now(GUILD, race.id, MODERATOR),
    "record with force": lambda race: race.live.record(GUILD, race.id, MODERATOR, force=True),
}
# The audit action a moderator's action writes when it goes through.
AUDITED = {
    "cancel": "live_race.cancel",
    "edit title": "live_race.edit",
    "edit seed": "live_race.edit",
    "edit time": "live_race.edit",
    "delete": "live_race.delete",
    "open now": "live_race.open",
    "record with force": "live_race.record",
}

OPEN, RUNNING, DONE, CANCELLED = RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS, RaceStatus.FINISHED, RaceStatus.CANCELLED
_OPENING = {
    "cancel": (None, CANCELLED),
    "edit title": (None, OPEN),
    "edit seed": (Conflict, OPEN),  # the room is being made with the seed as claimed
    "edit time": (Conflict, OPEN),  # likewise: and nobody is told of a move that did not happen
    "delete": (Conflict, OPEN),
    "open now": (Conflict, OPEN),
    "record with force": (InvalidTransition, OPEN),
}
# (action, point) -> (the error the action answers, or None; the race's status once the jobs settled)
EXPECTED: dict[tuple[str, str], tuple[type[DomainError] | None, RaceStatus]] = {
    **{(action, "opener before startrace"): outcome for action, outcome in _OPENING.items()},
    **{(action, "opener after startrace"): outcome for action, outcome in _OPENING.items()},
    ("cancel", "poller on start"): (None, CANCELLED),
    ("edit title", "poller on start"): (None, RUNNING),
    ("edit seed", "poller on start"): (InvalidTransition, RUNNING),
    ("edit time", "poller on start"): (InvalidTransition, RUNNING),
    ("delete", "poller on start"): (InvalidTransition, RUNNING),
    ("open now", "poller on start"): (InvalidTransition, RUNNING),
    ("record with force", "poller on start"): (None, DONE),
    ("cancel", "poller on finish"): (Conflict, DONE),  # too late: the results are recorded instead
    **{
        (a, "poller on finish"): (InvalidTransition, DONE)
        for a in ("edit title", "edit seed", "edit time", "delete", "open now")
    },
    ("record with force", "poller on finish"): (None, DONE),
    ("cancel", "poller on a RaceTime.gg cancel"): (None, CANCELLED),
    **{
        (a, "poller on a RaceTime.gg cancel"): (InvalidTransition, CANCELLED)
        for a in ("edit title", "edit seed", "edit time", "delete", "open now")
    },
    ("record with force", "poller on a RaceTime.gg cancel"): (None, CANCELLED),
}


async def settle(race: Race) -> None:
    """The jobs run on until nothing is left to do: past every wait the race may have (a claim's lease, a
    room the listing may not show yet), the opener and its sweep, then the poller."""
    race.clock.advance(seconds=race.app.settings.scheduler.open_claim_lease_seconds + 1)
    await open_rooms(race.app)
    await poll(race.app)
    await open_rooms(race.app)


@pytest.mark.parametrize("point", list(POINTS))
@pytest.mark.parametrize("action", list(ACTIONS))
async def test_a_moderator_action_at_each_point_of_a_job(
    app: Application, rt: FakeRacetime, clock: Clock, action: str, point: str
) -> None:
    race = await schedule(app, rt, clock)
    job, held = await POINTS[point](race)
    finished_before = await _finished_runs(race)
    expected_error, expected_status = EXPECTED[(action, point)]

    error: DomainError | None = None
    try:
        await ACTIONS[action](race)
    except DomainError as exc:
        error = exc
    held.release()
    await job
    await settle(race)

    assert type(error) is (expected_error or type(None)), error
    final = await race.row()
    assert final is not None and final.status is expected_status, (final and final.status, error)
    await check_invariants(race, finished_before)
    moderator = [e for e in await _audit(race) if e.actor_id == MODERATOR.id and e.action == AUDITED[action]]
    assert bool(moderator) == (error is None), [e.action for e in moderator]
    if action == "edit title" and error is None:
        assert final.title == "Renamed"
    if action == "edit time":  # a refused move tells nobody anything
        async with race.app.db.read() as session:
            moved = await session.scalar(
                select(Notification.id).where(Notification.event_type == EventType.LIVE_RACE_RESCHEDULED)
            )
        assert (moved is not None) == (error is None)
    if action == "cancel" and expected_error is Conflict:
        [refused] = [e for e in await _audit(race) if e.action == "live_race.cancel_refused"]
        assert "were recorded instead of cancelling" in refused.details["why"]


async def _move(race: Race) -> object:
    start = (await race.row()).scheduled_at
    return await race.live.edit(GUILD, race.id, MODERATOR, scheduled_at=start + timedelta(hours=1))


# ---- the invariants -------------------------------------------------------------------------------------
async def _audit(race: Race) -> list[AuditEntry]:
    async with race.app.db.read() as session:
        return list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.target_type == "live_race", AuditEntry.target_id == race.id)
                .order_by(AuditEntry.id)
            )
        )


async def _finished_runs(race: Race) -> dict[int, tuple]:
    async with race.app.db.read() as session:
        runs = await session.scalars(select(Run).where(Run.status == RunStatus.FINISHED))
        return {run.player_id: (run.seed_id, run.elapsed_us, run.place) for run in runs}


async def _dm_events(race: Race) -> set[EventType]:
    async with race.app.db.read() as session:
        kinds = await session.scalars(
            select(Notification.event_type).where(
                Notification.live_race_id == race.id, Notification.kind == NotificationKind.DM
            )
        )
        return set(kinds)


async def check_invariants(race: Race, finished_before: dict[int, tuple]) -> None:
    final = await race.row()
    rooms = race.rooms()
    assert len(rooms) <= 1, f"one room per race: {[(r['slug'], r['status']['value']) for r in rooms]}"
    if final is None or final.status is RaceStatus.CANCELLED:
        assert all(room["status"]["value"] in OVER for room in rooms), "an open room for a cancelled race"
    # No recorded result lost: every finished run is still there, and a room that finished is recorded.
    finished_after = await _finished_runs(race)
    assert finished_before.items() <= finished_after.items()
    if any(room["status"]["value"] == "finished" for room in rooms):
        assert final is not None and final.status is RaceStatus.FINISHED
        assert [elapsed for _, elapsed, _ in finished_after.values()] == [ALICE_TIME // timedelta(microseconds=1)]
    if final is None:
        return
    # The room is the race's and shows its seed.
    async with race.app.db.read() as session:
        seed = await session.get(Seed, final.seed_id) if final.seed_id else None
    if final.racetime_slug is not None:
        [room] = [room for room in rooms if room["slug"] == final.racetime_slug]
        assert seed is not None and room_seed_url(room["info_user"]) == seed.url
    # A seed is published once a room opened for the race, never for a race cancelled before that.
    if final.room_opened_at is None and seed is not None:
        assert not seed.used_in_live_race
    # The DMs queued agree with what happened.
    dms = await _dm_events(race)
    assert (EventType.LIVE_RACE_ROOM_OPENED in dms) == (final.room_opened_at is not None), dms
    assert (EventType.LIVE_RACE_CANCELLED in dms) == (final.status is RaceStatus.CANCELLED), dms
    assert (EventType.LIVE_RACE_FINISHED in dms) == (final.status is RaceStatus.FINISHED), dms
    if EventType.LIVE_RACE_STARTED in dms:
        assert final.started_at is not None
    # The audit log tells what happened: how the race got where it is, and every room the bot cancelled.
    entries = await _audit(race)
    actions = {entry.action for entry in entries}
    if final.room_opened_at is not None:
        assert "live_race.open" in actions
    assert {RaceStatus.CANCELLED: "live_race.cancel", RaceStatus.FINISHED: "live_race.finish"}.get(
        final.status, "live_race.create"
    ) in actions
    named = {entry.details.get("racetime_slug") for entry in entries if entry.action == STRAY_ROOM_CANCELLED}
    for room in rooms:
        if room["status"]["value"] == "cancelled" and room["slug"] != final.racetime_slug:
            assert room["slug"] in named, f"room {room['slug']} was cancelled without an audit entry"


# ---- issue 11, bug 1: a cancel while the room is being opened ---------------------------------------------
async def test_cancel_while_the_room_is_being_opened_leaves_no_open_room(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    """The cancel decides under the race's lock; the opener, finding its race cancelled once RaceTime.gg made the
    room, cancels that room. (Before: the cancel acted on a status read before its transaction, and the room
    stayed open with the seed, the race cancelled, `last_error` empty.)"""
    race = await schedule(app, rt, clock)
    await app.racetime.category_data("alttpr")  # the listing is cached, as it mostly is
    startrace = rt.hold("POST", "/startrace")
    listing = rt.hold("GET", "/o/alttpr/data", stage="answer", count=None)
    opening = asyncio.create_task(open_rooms(app))
    held = await startrace.arrival()
    cancel = asyncio.create_task(race.live.cancel(GUILD, race.id, MODERATOR, reason="Changed plans"))
    looked = asyncio.create_task(listing.arrival())
    await asyncio.wait((cancel, looked), return_when=asyncio.FIRST_COMPLETED)
    held.release()  # RaceTime.gg makes the room now
    report = await opening
    listing.release_all()
    cancelled = await cancel
    looked.cancel()
    assert cancelled.race.status is RaceStatus.CANCELLED
    [room] = race.rooms()
    assert room["status"]["value"] == "cancelled"
    assert EventType.LIVE_RACE_ROOM_OPENED not in await _dm_events(race)
    assert not [e for e in app.events.published if isinstance(e, LiveRaceRoomOpened)]
    final = await race.row()
    assert final.racetime_slug is None and final.room_opened_at is None and final.last_error is None
    assert report.skipped == 1 and report.opened == 0  # the room it made is not the race's
    async with app.db.read() as session:
        assert not (await session.get(Seed, final.seed_id)).used_in_live_race
    [entry] = [e for e in await _audit(race) if e.action == STRAY_ROOM_CANCELLED]
    assert entry.details["racetime_slug"] == room["slug"] and "cancelled while its room" in entry.details["reason"]


async def test_a_room_left_by_a_crashed_opener_is_cancelled_once_the_listing_shows_it(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    """The opener dies after RaceTime.gg made the room; a cancel lands while the (cached) listing does not show
    it yet. The opener's sweep finds the room by its marker once the listing can show it, and cancels it."""
    race = await schedule(app, rt, clock)
    await app.racetime.category_data("alttpr")  # cached: the room will be missing from it for a while
    await _opener_dies_after_startrace(race)
    await race.live.cancel(GUILD, race.id, MODERATOR, reason="Changed plans")
    [room] = race.rooms()
    assert room["status"]["value"] == "open"  # nothing can find it yet
    with pytest.raises(Conflict, match=r"still making sure no RaceTime\.gg room"):
        await race.live.delete(GUILD, race.id, MODERATOR)  # its marker is how the room is found

    search_after = (await race.row()).room_search_after
    clock.now = search_after - timedelta(seconds=1)
    assert (await open_rooms(app)).swept == 0
    clock.now = search_after
    assert (await open_rooms(app)).swept == 1
    [room] = race.rooms()
    assert room["status"]["value"] == "cancelled"
    assert (await race.row()).room_search_after is None
    [entry] = [e for e in await _audit(race) if e.action == STRAY_ROOM_CANCELLED]
    assert entry.details["racetime_slug"] == room["slug"] and entry.details["reason"] == "the race is cancelled"
    await race.live.delete(GUILD, race.id, MODERATOR)


async def test_a_cancel_that_could_not_reach_racetime_is_retried_by_the_sweep(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    race = await schedule(app, rt, clock)
    await open_rooms(app)
    rt.down()
    cancelled = await race.live.cancel(GUILD, race.id, MODERATOR, reason="Storm")
    assert cancelled.race.status is RaceStatus.CANCELLED
    assert cancelled.race.last_error.startswith("The RaceTime.gg room could not be cancelled")
    assert (await open_rooms(app)).swept == 0  # still down: tried, kept
    assert race.rooms()[0]["status"]["value"] == "open"
    rt.up()
    clock.advance(seconds=app.settings.racetime.listing_cache_seconds)
    assert (await open_rooms(app)).swept == 1
    final = await race.row()
    assert race.rooms()[0]["status"]["value"] == "cancelled"
    assert final.room_search_after is None and final.last_error is None


async def test_the_poller_seeing_a_moderators_cancel_first_leaves_the_moderators_reason(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    race = await schedule(app, rt, clock)
    await open_rooms(app)
    slug = await race.slug()
    read_back = rt.hold("GET", f"/{slug}/data")  # the cancel's read of the room, once it cancelled it
    cancel = asyncio.create_task(race.live.cancel(GUILD, race.id, MODERATOR, reason="Storm"))
    held = await read_back.arrival()
    assert rt.room(slug)["status"]["value"] == "cancelled"
    await poll(app)  # meanwhile the poller sees the room cancelled and cancels the race
    assert (await race.row()).cancel_reason == "The RaceTime.gg room was cancelled"
    held.release()
    view = await cancel
    assert (view.race.status, view.race.cancel_reason) == (RaceStatus.CANCELLED, "Storm")
    cancels = [e for e in await _audit(race) if e.action == "live_race.cancel"]
    assert [(e.actor_name, e.details.get("room_cancelled_first", False)) for e in cancels] == [
        ("race poller", False),
        (MODERATOR.name, True),
    ]
    assert len([e for e in app.events.published if isinstance(e, LiveRaceCancelled)]) == 1  # told once


# ---- bug 2: a cancel after the room finished on RaceTime.gg -----------------------------------------------
async def test_cancel_after_the_room_finished_records_the_results_instead(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    race = await schedule(app, rt, clock)
    await open_rooms(app)
    slug = await race.slug()
    for user in (ALICE, BOB):
        rt.add_entrant(slug, user)
    rt.start(slug)
    await poll(app)
    rt.finish_entrant(slug, ALICE["id"], ALICE_TIME)
    rt.dnf(slug, BOB["id"])  # finished on RaceTime.gg; the poller has not seen it
    with pytest.raises(Conflict) as refused:
        await race.live.cancel(GUILD, race.id, MODERATOR, reason="Too late")
    assert str(refused.value) == (
        f"race {race.id} already finished on RaceTime.gg; its results (1 finisher) were recorded instead of cancelling"
    )
    final = await race.row()
    assert final.status is RaceStatus.FINISHED and final.cancel_reason is None
    assert (final.entrant_count, final.participant_count, final.finisher_count) == (2, 2, 1)
    assert rt.room(slug)["status"]["value"] == "finished"
    runs = await _finished_runs(race)
    assert [elapsed for _, elapsed, _ in runs.values()] == [ALICE_TIME // timedelta(microseconds=1)]
    assert EventType.LIVE_RACE_CANCELLED not in await _dm_events(race)
    assert EventType.LIVE_RACE_FINISHED in await _dm_events(race)
    # The poller catching up changes nothing.
    await poll(app)
    assert await _finished_runs(race) == runs


# ---- bug 3: an edit racing the opener ---------------------------------------------------------------------
async def test_an_edit_racing_the_opener_never_leaves_the_room_on_another_seed(
    app: Application, rt: FakeRacetime, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The edit has read the race and is about to write a new seed when the opener wants to claim it. With the
    race locked by the edit, the opener claims it only after the edit committed, and opens the room on the new
    seed. (Before, on PostgreSQL: the edit read without a lock, the opener claimed and opened the room on seed A,
    the edit then wrote seed B, and the runs were recorded under B.)"""
    import bot.services.live_races as live_races_module
    import bot.services.race_locks as race_locks
    import bot.services.room_opener as opener_module

    race = await schedule(app, rt, clock)
    new_seed = race.world.seeds[1]
    editing, go_on, opener_locks = asyncio.Event(), asyncio.Event(), asyncio.Event()
    record_audit = live_races_module.audit.record

    async def paused_audit(session, **entry):
        if entry["action"] == "live_race.edit":
            editing.set()
            await go_on.wait()  # the edit read the race and changed it, and has not committed yet
        return await record_audit(session, **entry)

    async def observed_lock(session, race_ids, **kwargs):
        opener_locks.set()  # the opener asks for the race's lock: it waits there until the edit committed
        return await race_locks.lock_races(session, race_ids, **kwargs)

    monkeypatch.setattr(live_races_module.audit, "record", paused_audit)
    monkeypatch.setattr(opener_module, "lock_races", observed_lock)  # the job claims with the batch lock
    hold = rt.hold("POST", "/startrace")
    edit = asyncio.create_task(race.live.edit(GUILD, race.id, MODERATOR, seed_id=new_seed.id))
    await editing.wait()
    opening = asyncio.create_task(open_rooms(app))
    arrived = asyncio.create_task(hold.arrival())
    await asyncio.wait((arrived, asyncio.create_task(opener_locks.wait())), return_when=asyncio.FIRST_COMPLETED)
    go_on.set()
    await edit
    # SQLite: the opener's claim waited for the edit's commit (one writer). PostgreSQL: the batch claim skipped the
    # race the edit held (SKIP LOCKED) and the next cycle claims it. Either way the claim reads the new seed.
    await asyncio.wait((arrived, opening), return_when=asyncio.FIRST_COMPLETED)
    if not arrived.done():
        assert (await opening).skipped == 1
        opening = asyncio.create_task(open_rooms(app))
    (await arrived).release()
    await opening
    final = await race.row()
    assert final.status is RaceStatus.ROOM_OPEN and final.seed_id == new_seed.id
    assert room_seed_url(rt.room(final.racetime_slug)["info_user"]) == new_seed.url


async def test_the_record_step_is_guarded_on_the_planned_seed(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    """Whatever changed the seed under a claim (here a write that skips the service), the room made with the
    old seed is not recorded for the race: it is cancelled, and the next claim opens one with the new seed."""
    race = await schedule(app, rt, clock)
    hold = rt.hold("POST", "/startrace", stage="answer")
    opening = asyncio.create_task(open_rooms(app))
    held = await hold.arrival()
    await held.handled()
    async with app.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == race.id).values(seed_id=race.world.seeds[1].id))
    held.release()
    assert (await opening).skipped == 1
    [old] = race.rooms()
    assert old["status"]["value"] == "cancelled"
    await settle(race)
    final = await race.row()
    assert final.status is RaceStatus.ROOM_OPEN
    assert room_seed_url(rt.room(final.racetime_slug)["info_user"]) == race.world.seeds[1].url
    reasons = [e.details["reason"] for e in await _audit(race) if e.action == STRAY_ROOM_CANCELLED]
    assert reasons == ["the room shows another seed than the race"]


async def test_an_earlier_room_on_an_old_seed_is_not_adopted(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    """A startrace whose answer was lost made a room with seed A; the moderator then picks seed B. The retry
    finds the marked room, sees it shows A, cancels it and opens one with B."""
    race = await schedule(app, rt, clock)
    await _opener_dies_after_startrace(race)
    clock.advance(seconds=app.settings.scheduler.open_claim_lease_seconds + 1)  # the crashed claim expired
    await race.live.edit(GUILD, race.id, MODERATOR, seed_id=race.world.seeds[1].id)
    report = await open_rooms(app)
    assert (report.opened, report.adopted) == (1, 0)
    final = await race.row()
    rooms = {room["slug"]: room for room in race.rooms()}
    assert room_seed_url(rooms.pop(final.racetime_slug)["info_user"]) == race.world.seeds[1].url
    [room] = rooms.values()
    assert room["status"]["value"] == "cancelled" and room_seed_url(room["info_user"]) == race.world.seeds[0].url


# ---- bug 4: the lease against the worst case ----------------------------------------------------------------
def test_the_claim_lease_must_outlast_an_open_and_the_listing_cache(tmp_path) -> None:
    from bot.settings import ConfigError, load_settings

    with pytest.raises(ConfigError) as error:
        load_settings(scheduler={"open_claim_lease_seconds": 60})
    assert str(error.value) == (
        "configuration error: scheduler.open_claim_lease_seconds: must be at least 90 s "
        "(racetime.request_timeout_seconds 10 × 3 requests + racetime.listing_cache_seconds 60), or a second room "
        "could be opened for a race (set it in the config file or STARTLINE_SCHEDULER__OPEN_CLAIM_LEASE_SECONDS)"
    )
    short = load_settings(racetime={"request_timeout_seconds": 2, "listing_cache_seconds": 5}, scheduler={
        "open_claim_lease_seconds": 11})  # fmt: skip
    assert short.open_claim_budget_seconds == 6


async def test_two_processes_racing_for_one_race_make_one_room(
    settings: Settings, rt: FakeRacetime, clock: Clock
) -> None:
    settings.api.enabled = False
    async with running_app(settings, rt, clock) as one, running_app(settings, rt, clock) as two:
        race = await schedule(one, rt, clock)
        hold = rt.hold("POST", "/startrace")
        first = asyncio.create_task(open_rooms(one))
        held = await hold.arrival()
        assert (await open_rooms(two)).due == 0  # claimed by the first
        opener = RoomOpener(two.db, two.events, two.settings, two.racetime, clock=clock)
        with pytest.raises(Exception, match="being opened right now"):
            await opener.open(race.id, actor=MODERATOR, manual=True)
        held.release()
        assert (await first).opened == 1
        assert len(race.rooms()) == 1


# ---- bug 6: the lateness bound ------------------------------------------------------------------------------
@pytest.mark.parametrize("channel", [4242, None])
async def test_a_race_long_past_its_start_is_not_opened_by_itself(
    app: Application, rt: FakeRacetime, clock: Clock, channel: int | None
) -> None:
    race = await schedule(app, rt, clock)
    if channel is not None:
        async with app.db.transaction() as session:
            session.add(GuildSettings(guild_id=GUILD, moderator_channel_id=channel))
    late = app.settings.scheduler.max_late_open_minutes
    clock.advance(minutes=5 + late, seconds=1)  # the bot was down from before the room's time until now
    report = await open_rooms(app, expect_errors=True)
    assert (report.failed, report.opened) == (1, 0) and rt.count("POST", "/startrace") == 0
    final = await race.row()
    assert final.status is RaceStatus.SCHEDULED and final.open_claimed_at is None
    assert final.last_error.startswith("not opened automatically: the race was to start at")
    assert f"more than {late} minutes ago" in final.last_error
    assert (await open_rooms(app)).due == 0  # told once
    [alert] = [e for e in app.events.published if isinstance(e, LiveRaceOpenFailed)]
    assert alert.error == final.last_error
    # No attempt was made, so the alert tells what happened rather than "gave up after N attempts".
    assert alert.summary == f"The bot did not open the RaceTime.gg room: {final.last_error}."
    assert alert.headline == "Race room was not opened"
    async with app.db.read() as session:
        posts = list(await session.scalars(select(Notification).where(Notification.kind == NotificationKind.CHANNEL)))
    assert [(p.channel_id, p.payload["event"], p.payload["alert"]["error"]) for p in posts] == (
        [(channel, OPEN_FAILED_ALERT.name, final.last_error)] if channel else []
    )
    [entry] = [e for e in await _audit(race) if e.action == "live_race.open_failed"]
    assert entry.details["error"] == final.last_error  # where no channel is set, the audit log carries it
    await race.live.edit(GUILD, race.id, MODERATOR, title="Still late")
    assert (await open_rooms(app)).due == 0  # an edit that leaves it late does not re-arm it (nor re-alert)
    opened = await race.live.open_now(GUILD, race.id, MODERATOR)  # a moderator still can
    assert opened.race.status is RaceStatus.ROOM_OPEN and opened.race.last_error is None
    assert len([e for e in app.events.published if isinstance(e, LiveRaceOpenFailed)]) == 1


async def test_a_race_inside_the_lateness_bound_still_opens(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    race = await schedule(app, rt, clock)
    clock.advance(minutes=5 + app.settings.scheduler.max_late_open_minutes)
    assert (await open_rooms(app)).opened == 1
    assert (await race.row()).status is RaceStatus.ROOM_OPEN
