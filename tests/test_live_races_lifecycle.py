"""The whole live race lifecycle against the fake RaceTime.gg over real HTTP (jobs driven by the test)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.app import Application
from bot.errors import InvalidTransition
from bot.events import LiveRaceCancelled, LiveRaceFinished, LiveRaceRoomOpened, LiveRaceStarted
from bot.services.eligibility import REASON_NOT_LINKED
from bot.services.race_recording import REASON_RUN_REMOVED, REASON_UNKNOWN_USER
from db.models import LiveRace, RaceStatus, Run, RunStatus, Seed
from racetime.durations import parse_datetime, parse_duration
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms, poll
from tests.fakes.racetime_data import captured_user, load_json
from tests.fakes.racetime_server import FakeRacetime

ALICE, BOB, CAROL = (captured_user(name) for name in ("Alice", "Bob", "Carol"))


async def _race(app: Application, race_id: int) -> LiveRace:
    return (await app.services.live_races.get(GUILD, race_id)).race


async def _runs(app: Application, race_id: int) -> dict[int, Run]:
    async with app.db.read() as session:
        return {run.player_id: run for run in await session.scalars(select(Run).where(Run.live_race_id == race_id))}


def _events(app: Application, kind: type) -> list:
    return [event for event in app.events.published if isinstance(event, kind)]


async def test_full_lifecycle_of_several_races(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    live = services.live_races
    world = await make_world(services, racetime_goal="Beat the game")
    cup = await make_world(services, name="Summer Cup", custom_goal="Beat Ganon (no glitches)")
    profile = await services.room_profiles.create(GUILD, MODERATOR, name="Slow start", start_delay=45, time_limit=6)
    await services.tournaments.update_tournament(GUILD, cup.tournament.id, MODERATOR, room_profile_id=profile.id)
    alice = await add_player(services, 101, "Alice", ALICE["id"])
    bob = await add_player(services, 102, "Bob", BOB["id"])
    await add_player(services, 103, "Carol", CAROL["id"])
    await add_player(services, 104, "Dave")  # not linked: never matched

    # Carol already ran pool A, so she is not counted in the pool A race.
    await services.runs.import_run(
        GUILD, world.tournament.id, MODERATOR, discord_user_id=103, seed_id=world.seeds[2].id,
        status="finished", elapsed_seconds=5000.0,
    )  # fmt: skip
    race_a = await live.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=10)
    )
    race_b = await live.create(
        GUILD, cup.tournament.id, MODERATOR, pool_id=cup.pool.id, scheduled_at=clock.now + timedelta(minutes=14),
        title="Cup race", room={"unlisted": True},
    )  # fmt: skip
    race_c = await live.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.other_pool.id,
        scheduled_at=clock.now + timedelta(hours=2),
    )  # fmt: skip
    assert (await _race(app, race_a.race.id)).seed_id is None  # chosen at open, never earlier

    # ---- rooms open for the races inside the lead window ----
    await app.jobs.run_once("room_opener")
    assert app.jobs.status["room_opener"].last_error is None
    opened_a, opened_b = await _race(app, race_a.race.id), await _race(app, race_b.race.id)
    assert (opened_a.status, opened_b.status) == (RaceStatus.ROOM_OPEN, RaceStatus.ROOM_OPEN)
    assert (await _race(app, race_c.race.id)).status is RaceStatus.SCHEDULED
    assert rt.count("POST", "/startrace") == 2
    assert {e.live_race_id for e in _events(app, LiveRaceRoomOpened)} == {race_a.race.id, race_b.race.id}
    # seed with the fewest runs: seeds 0 and 1 have none, 2 has Carol's -> seed 0 (lowest id)
    assert opened_a.seed_id == world.seeds[0].id

    room_a = rt.room(opened_a.racetime_slug)
    assert opened_a.racetime_url == f"{rt.base_url}/alttpr/{opened_a.racetime_slug}"
    assert room_a["goal"] == {"name": "Beat the game", "custom": False}
    assert world.seeds[0].url in room_a["info_user"]
    assert "Spring Qualifier – Pool A" in room_a["info_user"]
    assert opened_a.scheduled_at.strftime("%Y-%m-%d %H:%M UTC") in room_a["info_user"]
    starts = opened_a.scheduled_at.strftime("%Y-%m-%d %H:%M UTC")
    assert room_a["info_bot"] == (
        f"Startline live race #{opened_a.id} · starts {starts} · counts for Spring Qualifier · sl:{opened_a.marker}"
    )
    assert (room_a["start_delay"], room_a["streaming_required"], room_a["auto_start"]) == ("P0DT00H00M15S", False, True)
    room_b = rt.room(opened_b.racetime_slug)
    assert room_b["goal"] == {"name": "Beat Ganon (no glitches)", "custom": True}
    assert (room_b["start_delay"], room_b["time_limit"], room_b["unlisted"]) == ("P0DT00H00M45S", "P0DT06H00M00S", True)

    # ---- race A starts with Alice, Bob, Carol and an unknown RaceTime user ----
    stranger = load_json("races_with_past_entrants.json")["races"][0]["entrants"][0]["user"]
    for user in (ALICE, BOB, CAROL, stranger):
        rt.add_entrant(opened_a.racetime_slug, user)
    rt.add_entrant(opened_b.racetime_slug, ALICE)  # Alice is in both rooms; B has not started
    rt.start(opened_a.racetime_slug)
    await app.jobs.run_once("race_poller")
    assert app.jobs.status["race_poller"].last_error is None
    started = await _race(app, race_a.race.id)
    assert started.status is RaceStatus.IN_PROGRESS
    assert started.started_at == parse_datetime(rt.room(started.racetime_slug)["started_at"])
    assert (started.entrant_count, started.participant_count) == (4, 2)  # everyone in the room; those with a run
    runs = await _runs(app, started.id)
    assert set(runs) == {alice.id, bob.id}
    assert all(run.status is RunStatus.IN_PROGRESS and run.start_time == started.started_at for run in runs.values())
    [event] = _events(app, LiveRaceStarted)
    assert set(event.participant_player_ids) == {alice.id, bob.id}
    results = await live.results(GUILD, started.id)
    reasons = {entrant.racetime_name: (entrant.counted, entrant.reason) for entrant in results.entrants}
    assert reasons == {
        "Alice": (True, None),
        "Bob": (True, None),
        "Carol": (False, "Already ran 1 of 1 in pool Pool A"),
        stranger["name"]: (False, REASON_UNKNOWN_USER),
    }

    # ---- a cycle with nothing new: one listing request per category, no detail request ----
    before_detail = rt.count("GET", f"/{started.racetime_slug}/data") + rt.count(
        "GET", f"/{opened_b.racetime_slug}/data"
    )
    before_listing = rt.count("GET", "/o/alttpr/data")
    await poll(app)
    assert rt.count("GET", "/o/alttpr/data") == before_listing + 1
    after_detail = rt.count("GET", f"/{started.racetime_slug}/data") + rt.count(
        "GET", f"/{opened_b.racetime_slug}/data"
    )
    assert after_detail == before_detail

    # ---- race A finishes: Alice done, Bob forfeits, Carol DQ'd, the stranger finishes ----
    alice_time = timedelta(hours=1, minutes=23, seconds=45, microseconds=678901)
    rt.finish_entrant(started.racetime_slug, ALICE["id"], alice_time)
    rt.finish_entrant(started.racetime_slug, stranger["id"], timedelta(hours=2, microseconds=1))
    rt.dnf(started.racetime_slug, BOB["id"])
    rt.dq(started.racetime_slug, CAROL["id"])
    assert rt.room(started.racetime_slug)["status"]["value"] == "finished"
    await poll(app)
    finished = await _race(app, race_a.race.id)
    assert finished.status is RaceStatus.FINISHED
    assert finished.results_recorded_at is not None and finished.ended_at is not None
    # the stranger finished too, but only players with a run are participants (and finishers)
    assert (finished.entrant_count, finished.participant_count, finished.finisher_count) == (4, 2, 1)
    runs = await _runs(app, finished.id)
    alice_run, bob_run = runs[alice.id], runs[bob.id]
    assert alice_run.status is RunStatus.FINISHED
    assert alice_run.elapsed_us == 5_025_678_901
    assert alice_run.place == 1
    assert alice_run.end_time == parse_datetime(rt.room(finished.racetime_slug)["entrants"][0]["finished_at"])
    assert alice_run.score == pytest.approx(100.0)  # the only finisher sets par
    assert (bob_run.status, bob_run.score, bob_run.elapsed_us) == (RunStatus.FORFEIT, 0.0, None)
    async with app.db.read() as session:
        seed = await session.get(Seed, world.seeds[0].id)
    assert seed.used_in_live_race and seed.par_time == pytest.approx(alice_time.total_seconds())
    [done] = _events(app, LiveRaceFinished)
    assert set(done.participant_player_ids) == {alice.id, bob.id}
    results = await live.results(GUILD, finished.id)
    table = [(e.racetime_name, e.status, e.place, e.counted) for e in results.entrants]
    assert table == [
        ("Alice", "finished", 1, True),
        (stranger["name"], "finished", 2, False),
        ("Bob", "forfeit", None, True),
        ("Carol", "disqualified", None, False),
    ]
    assert results.entrants[0].score == pytest.approx(100.0) and results.entrants[0].run_id == alice_run.id

    # ---- race B starts now: Alice's race A run is over, so she counts here ----
    rt.add_entrant(opened_b.racetime_slug, BOB)
    rt.start(opened_b.racetime_slug)
    await poll(app)
    assert set(await _runs(app, race_b.race.id)) == {alice.id, bob.id}

    # ---- the finished race is no longer polled; recording again by hand changes nothing ----
    published = len(app.events.published)
    again = await live.record(GUILD, finished.id, MODERATOR, force=True)
    assert again.race.status is RaceStatus.FINISHED and len(app.events.published) == published
    assert {p: (r.status, r.elapsed_us, r.place) for p, r in (await _runs(app, finished.id)).items()} == {
        alice.id: (RunStatus.FINISHED, 5_025_678_901, 1),
        bob.id: (RunStatus.FORFEIT, None, None),
    }


async def test_results_of_real_races_are_exact(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    """Every race of races_with_past_entrants.json, replayed in a room: times equal their finish_time."""
    services = app.services
    past = load_json("races_with_past_entrants.json")["races"]
    world = await make_world(services, seeds=len(past), runs_per_pool=20)
    users = {e["user"]["id"]: e["user"] for race in past for e in race["entrants"] if e["user"]}
    players = {}
    for index, user in enumerate(users.values()):
        players[user["id"]] = await add_player(services, 10_000 + index, user["name"], user["id"])
    races = []
    for index, _ in enumerate(past):
        view = await services.live_races.create(
            GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, seed_id=world.seeds[index].id,
            scheduled_at=clock.now + timedelta(minutes=1 + index),
        )  # fmt: skip
        races.append(view.race.id)
    await open_rooms(app)
    for race_id, past_race in zip(races, past, strict=True):
        rt.replay((await _race(app, race_id)).racetime_slug, past_race)
    await poll(app)

    checked = 0
    for race_id, past_race in zip(races, past, strict=True):
        race = await _race(app, race_id)
        assert race.status is RaceStatus.FINISHED
        assert race.started_at == parse_datetime(past_race["started_at"])
        runs = await _runs(app, race_id)
        assert len(runs) == len([e for e in past_race["entrants"] if e["user"]])
        for entrant in past_race["entrants"]:
            run = runs[players[entrant["user"]["id"]].id]
            status = entrant["status"]["value"]
            if status == "done":
                assert run.status is RunStatus.FINISHED
                expected = parse_duration(entrant["finish_time"])
                assert run.elapsed_us == expected // timedelta(microseconds=1)
                assert run.place == entrant["place"]
                checked += 1
            else:
                assert run.status is {"dnf": RunStatus.FORFEIT, "dq": RunStatus.DISQUALIFIED}[status]
    assert checked == sum(1 for race in past for e in race["entrants"] if e["status"]["value"] == "done")
    assert len(_events(app, LiveRaceStarted)) == 0  # seen only once over: no stale "started" DMs
    assert len(_events(app, LiveRaceFinished)) == len(past)


async def test_moderator_cancel_of_an_open_room_cancels_it_on_racetime(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    world = await make_world(app.services)
    view = await app.services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=3)
    )
    opened = await app.services.live_races.open_now(GUILD, view.race.id, MODERATOR)
    assert opened.race.status is RaceStatus.ROOM_OPEN and opened.seed is not None
    cancelled = await app.services.live_races.cancel(GUILD, view.race.id, MODERATOR, reason="Stream issues")
    assert cancelled.race.status is RaceStatus.CANCELLED and cancelled.race.last_error is None
    assert rt.room(opened.race.racetime_slug)["status"]["value"] == "cancelled"
    [event] = _events(app, LiveRaceCancelled)
    assert (event.reason, event.previous_status) == ("Stream issues", "room_open")
    # RaceTime.gg events for a cancelled race change nothing
    await poll(app)
    assert (await _race(app, view.race.id)).status is RaceStatus.CANCELLED
    with pytest.raises(InvalidTransition):
        await app.services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)


async def test_moderator_cancel_in_progress_keeps_only_forfeits(
    app: Application, rt: FakeRacetime, clock: Clock
) -> None:
    services = app.services
    world = await make_world(services)
    alice = await add_player(services, 101, "Alice", ALICE["id"])
    bob = await add_player(services, 102, "Bob", BOB["id"])
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    await open_rooms(app)
    slug = (await _race(app, view.race.id)).racetime_slug
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    await poll(app)
    rt.dnf(slug, BOB["id"])
    cancelled = await services.live_races.cancel(GUILD, view.race.id, MODERATOR, reason="Seed was broken")
    assert cancelled.race.status is RaceStatus.CANCELLED
    assert rt.room(slug)["status"]["value"] == "cancelled"
    runs = await _runs(app, view.race.id)
    assert {player: run.status for player, run in runs.items()} == {bob.id: RunStatus.FORFEIT}
    results = {
        e.racetime_name: (e.counted, e.status, e.reason)
        for e in (await services.live_races.results(GUILD, view.race.id)).entrants
    }
    assert results == {"Alice": (False, "cancelled", REASON_RUN_REMOVED), "Bob": (True, "forfeit", None)}
    [event] = _events(app, LiveRaceCancelled)
    assert set(event.participant_player_ids) == {alice.id, bob.id}
    # Alice may race the pool again; Bob's forfeit counts
    report = await services.eligibility.for_pool(GUILD, world.tournament.id, world.pool.id)
    assert report.reason_for(alice.id) is None
    assert report.reason_for(bob.id) == "Already ran 1 of 1 in pool Pool A"


async def test_racetime_side_cancel_cancels_the_race(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    world = await make_world(services)
    await add_player(services, 101, "Alice", ALICE["id"])
    await add_player(services, 102, "Bob", BOB["id"])
    first = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    second = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=6)
    )
    await open_rooms(app)
    slug_1, slug_2 = (await _race(app, first.race.id)).racetime_slug, (await _race(app, second.race.id)).racetime_slug
    rt.cancel(slug_1)  # before the start
    for user in (ALICE, BOB):
        rt.add_entrant(slug_2, user)
    rt.start(slug_2)
    await poll(app)
    rt.dnf(slug_2, ALICE["id"])
    rt.dnf(slug_2, BOB["id"])  # everyone forfeits: RaceTime.gg cancels the race
    assert rt.room(slug_2)["status"]["value"] == "cancelled"
    await poll(app)
    one, two = await _race(app, first.race.id), await _race(app, second.race.id)
    assert (one.status, one.cancel_reason) == (RaceStatus.CANCELLED, "The RaceTime.gg room was cancelled")
    assert two.status is RaceStatus.CANCELLED
    assert {run.status for run in (await _runs(app, second.race.id)).values()} == {RunStatus.FORFEIT}
    assert [e.previous_status for e in _events(app, LiveRaceCancelled)] == ["room_open", "in_progress"]


async def test_manual_record(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    world = await make_world(services)
    alice = await add_player(services, 101, "Alice", ALICE["id"])
    bob = await add_player(services, 102, "Bob", BOB["id"])
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    await services.live_races.open_now(GUILD, view.race.id, MODERATOR)
    slug = (await _race(app, view.race.id)).racetime_slug
    with pytest.raises(InvalidTransition, match="has not started yet"):
        await services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    rt.finish_entrant(slug, ALICE["id"], timedelta(minutes=90))
    # The room is still running (Bob): a plain record waits for the end...
    with pytest.raises(InvalidTransition, match="is in_progress; results are recorded once it is over"):
        await services.live_races.record(GUILD, view.race.id, MODERATOR)
    # ...a forced one records it as it stands (the moderator ends a stuck race): Bob forfeits.
    recorded = await services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)
    assert recorded.race.status is RaceStatus.FINISHED
    runs = await _runs(app, view.race.id)
    assert (runs[alice.id].status, runs[alice.id].elapsed_us) == (RunStatus.FINISHED, 90 * 60 * 1_000_000)
    assert runs[bob.id].status is RunStatus.FORFEIT
    # Later Bob finishes on RaceTime.gg: the poller leaves the recorded race alone...
    rt.finish_entrant(slug, BOB["id"], timedelta(minutes=100))
    await poll(app)
    assert (await _runs(app, view.race.id))[bob.id].status is RunStatus.FORFEIT
    # ...and a forced re-record reconciles, once.
    published = len(app.events.published)
    await services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)
    runs = await _runs(app, view.race.id)
    assert (runs[bob.id].status, runs[bob.id].elapsed_us, runs[bob.id].place) == (
        RunStatus.FINISHED,
        100 * 60 * 1_000_000,
        2,
    )
    assert runs[bob.id].score is not None
    async with app.db.read() as session:
        audit_rows = list(await session.execute(select(LiveRace.finisher_count).where(LiveRace.id == view.race.id)))
    assert audit_rows[0][0] == 2
    await services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)
    assert len(app.events.published) == published  # re-recording publishes nothing new
    assert (await _runs(app, view.race.id))[bob.id].place == 2


async def test_unlinked_players_are_told_how_to_link(app: Application, clock: Clock) -> None:
    world = await make_world(app.services)
    await add_player(app.services, 104, "Dave")
    view = await app.services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    report = await app.services.live_races.eligibility(GUILD, view.race.id)
    assert [(c.display_name, reason) for c, reason in report.ineligible] == [("Dave", REASON_NOT_LINKED)]
