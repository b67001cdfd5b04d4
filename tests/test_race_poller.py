"""The race poller against the fake RaceTime.gg: request economy, partial failures, catching up, tokens."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from bot.app import Application
from bot.events import LiveRaceFinished, LiveRaceStarted
from bot.services.race_poller import POLLER, apply_room
from db.models import LiveRace, RaceStatus, Run, RunStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms, poll
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

ALICE, BOB = captured_user("Alice"), captured_user("Bob")


async def _open_races(app: Application, clock: Clock, count: int, *, players=()) -> list[LiveRace]:
    world = await make_world(app.services, seeds=count, runs_per_pool=count)
    ids = []
    for index in range(count):
        view = await app.services.live_races.create(
            GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id,
            scheduled_at=clock.now + timedelta(minutes=1 + index % 10),
        )  # fmt: skip
        ids.append(view.race.id)
    assert (await open_rooms(app)).opened == count
    return [(await app.services.live_races.get(GUILD, race_id)).race for race_id in ids]


async def _race(app: Application, race_id: int) -> LiveRace:
    return (await app.services.live_races.get(GUILD, race_id)).race


def _details(rt: FakeRacetime) -> int:
    return sum(1 for method, path in rt.requests if method == "GET" and path.endswith("/data") and "/o/" not in path)


async def test_one_listing_per_cycle_and_details_only_for_changes(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    races = await _open_races(app, clock, 12)
    await add_player(app.services, 1, "Alice", ALICE["id"])
    listing, details = rt.count("GET", "/o/alttpr/data"), _details(rt)
    report = await poll(app)
    assert (report.listing_requests, report.detail_requests, report.tracked) == (1, 0, 12)
    assert (rt.count("GET", "/o/alttpr/data"), _details(rt)) == (listing + 1, details)

    # Countdown (pending) is still "not started": remembered from the listing, no detail request.
    rt.add_entrant(races[0].racetime_slug, ALICE)
    rt.add_entrant(races[0].racetime_slug, BOB)
    rt.begin(races[0].racetime_slug)
    report = await poll(app)
    assert report.detail_requests == 0
    assert (await _race(app, races[0].id)).racetime_status == "pending"
    assert (await _race(app, races[0].id)).status is RaceStatus.ROOM_OPEN

    # Two rooms start, one is cancelled (it leaves the listing): three detail requests, nothing else.
    rt.go(races[0].racetime_slug)
    rt.add_entrant(races[1].racetime_slug, ALICE)
    rt.start(races[1].racetime_slug)
    rt.cancel(races[2].racetime_slug)
    report = await poll(app)
    assert (report.listing_requests, report.detail_requests, report.applied) == (1, 3, 3)
    statuses = [(await _race(app, race.id)).status for race in races[:3]]
    assert statuses == [RaceStatus.IN_PROGRESS, RaceStatus.IN_PROGRESS, RaceStatus.CANCELLED]
    assert (await poll(app)).detail_requests == 0
    assert (await poll(app)).tracked == 11


async def test_a_failing_category_or_room_does_not_stop_the_others(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    rt.add_category("smr", ["Beat both games"])
    races = await _open_races(app, clock, 3)
    await add_player(app.services, 1, "Alice", ALICE["id"])
    # The first race belongs to a category this bot may not read: its listing is refused (403).
    async with app.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == races[0].id).values(racetime_category="smr"))
    for race in races[1:]:
        rt.add_entrant(race.racetime_slug, ALICE)
        rt.start(race.racetime_slug)
    rt.fail_next(1, 500, f"/{races[1].racetime_slug}/data")
    report = await poll(app, expect_errors=True)
    assert (report.categories, report.errors, report.applied) == (2, 2, 1)
    assert (await _race(app, races[1].id)).status is RaceStatus.ROOM_OPEN
    assert (await _race(app, races[2].id)).status is RaceStatus.IN_PROGRESS
    report = await poll(app, expect_errors=True)  # the next cycle catches up with the room that failed
    assert (report.errors, report.applied) == (1, 1)
    assert (await _race(app, races[1].id)).status is RaceStatus.IN_PROGRESS


async def test_catching_up_after_racetime_was_down(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    [race] = await _open_races(app, clock, 1)
    alice = await add_player(app.services, 1, "Alice", ALICE["id"])
    bob = await add_player(app.services, 2, "Bob", BOB["id"])
    rt.down()
    slug = race.racetime_slug
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    for _ in range(3):
        report = await poll(app, expect_errors=True)
        assert report.errors == 1
        await app.jobs.run_once("race_poller")  # the job itself never raises
        assert app.jobs.status["race_poller"].last_error is None
    rt.finish_entrant(slug, ALICE["id"], timedelta(hours=1, seconds=1, microseconds=7))
    rt.finish_entrant(slug, BOB["id"], timedelta(hours=1, seconds=2))
    rt.up()
    await poll(app)
    finished = await _race(app, race.id)
    assert finished.status is RaceStatus.FINISHED
    async with app.db.read() as session:
        runs = {run.player_id: run for run in await session.scalars(select(Run).where(Run.live_race_id == race.id))}
    assert runs[alice.id].elapsed_us == 3_601_000_007 and runs[alice.id].place == 1
    assert runs[bob.id].elapsed_us == 3_602_000_000 and runs[bob.id].status is RunStatus.FINISHED
    assert [type(e) for e in app.events.published if isinstance(e, LiveRaceStarted | LiveRaceFinished)] == [
        LiveRaceFinished
    ]


async def test_a_partitioned_room_cancels_the_race_and_is_no_longer_polled(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    [race] = await _open_races(app, clock, 1)
    rt.partition(race.racetime_slug)
    await poll(app)
    cancelled = await _race(app, race.id)
    assert cancelled.status is RaceStatus.CANCELLED
    assert cancelled.cancel_reason.startswith("RaceTime.gg split the room into separate 1v1 races")
    before = len(rt.requests)
    await poll(app)
    assert len(rt.requests) == before  # nothing left to track: no listing, no detail


async def test_token_is_renewed_after_a_403(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    races = await _open_races(app, clock, 2)
    assert rt.count("POST", "/o/token") == 1
    rt.expire_all_tokens()
    rt.add_entrant(races[0].racetime_slug, ALICE)
    rt.start(races[0].racetime_slug)
    report = await poll(app)
    assert report.applied == 1
    assert (await _race(app, races[0].id)).status is RaceStatus.IN_PROGRESS
    assert rt.count("POST", "/o/token") == 2
    rt.expire_all_tokens()
    view = await app.services.live_races.cancel(GUILD, races[1].id, MODERATOR, reason="token test")
    assert view.race.last_error is None  # the websocket cancel also got a fresh token
    assert rt.room(races[1].racetime_slug)["status"]["value"] == "cancelled"


async def test_cycle_without_tracked_races_makes_no_request(app: Application, rt: FakeRacetime) -> None:
    before = len(rt.requests)
    report = await poll(app)
    assert (report.categories, report.listing_requests) == (0, 0)
    assert len(rt.requests) == before


async def test_idempotent_when_two_pollers_apply_the_same_room(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    [race] = await _open_races(app, clock, 1)
    alice = await add_player(app.services, 1, "Alice", ALICE["id"])
    rt.add_entrant(race.racetime_slug, ALICE)
    rt.start(race.racetime_slug)
    rt.finish_entrant(race.racetime_slug, ALICE["id"], timedelta(minutes=80))
    room = await app.racetime.race_detail("alttpr", race.racetime_slug)
    for _ in range(2):
        await apply_room(app.db, app.events, race.id, room, actor=POLLER, now=clock.now)
    async with app.db.read() as session:
        runs = list(await session.scalars(select(Run).where(Run.live_race_id == race.id)))
    assert [(run.player_id, run.status) for run in runs] == [(alice.id, RunStatus.FINISHED)]
    assert len([e for e in app.events.published if isinstance(e, LiveRaceFinished)]) == 1
