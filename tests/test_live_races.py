"""LiveRaceService without RaceTime.gg: scheduling, editing, guards of the state machine, listing, search."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from bot.errors import Conflict, InvalidTransition, NotFound, UpstreamUnavailable, ValidationFailed
from bot.events import LiveRaceCancelled, LiveRaceOpenFailed, LiveRaceScheduled
from bot.services import Services
from db.models import AuditEntry, LiveRace, RaceStatus, Run, RunStatus
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.lifecycle import Clock, add_player, make_world


@pytest.fixture
def clock(services: Services) -> Clock:
    clock = Clock()
    services.live_races.clock = clock
    services.events.keep_history = True
    return clock


async def _race_count(services: Services) -> int:
    async with services.db.read() as session:
        return await session.scalar(select(func.count(LiveRace.id)))


async def _set(services: Services, race_id: int, **values) -> None:
    async with services.db.transaction() as session:
        await session.execute(update(LiveRace).where(LiveRace.id == race_id).values(**values))


async def _audit_actions(services: Services, race_id: int) -> list[str]:
    async with services.db.read() as session:
        rows = await session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.target_type == "live_race", AuditEntry.target_id == race_id)
            .order_by(AuditEntry.id)
        )
        return list(rows)


# ---- create -------------------------------------------------------------------------------------------
async def test_create_defaults_audit_and_event(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    start = clock.now + timedelta(hours=2)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start
    )
    race = view.race
    assert race.status is RaceStatus.SCHEDULED
    assert race.title == "Spring Qualifier – Pool A"
    assert race.scheduled_at == start
    assert race.seed_id is None and view.seed is None
    assert view.room_opens_at == start - timedelta(minutes=15)
    assert len(race.marker) == 16
    assert race.created_by == MODERATOR.label
    assert await _audit_actions(services, race.id) == ["live_race.create"]
    [event] = services.events.published
    assert isinstance(event, LiveRaceScheduled) and event.live_race_id == race.id


async def test_create_converts_offsets_to_utc_and_keeps_explicit_fields(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    profile = await services.room_profiles.create(GUILD, MODERATOR, name="Async", start_delay=30)
    local = (clock.now + timedelta(days=1)).astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
    view = await services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        scheduled_at=local,
        title="  Week 1 race  ",
        seed_id=world.seeds[1].id,
        episode_id="ep-1",
        room_profile_id=profile.id,
        room={"time_limit": 4, "unlisted": True, "hide_comments": None},
    )
    race = view.race
    assert race.scheduled_at == local.astimezone(UTC) and race.scheduled_at.tzinfo is not None
    assert race.title == "Week 1 race"
    assert view.seed is not None and view.seed.id == world.seeds[1].id
    assert race.episode_id == "ep-1"
    assert race.room_profile_id == profile.id
    assert race.room_settings == {"time_limit": 4, "unlisted": True}


async def test_room_open_lead_tournament_then_guild_then_config(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    start = clock.now + timedelta(hours=3)
    create = services.live_races.create
    view = await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start)
    assert view.lead_minutes == 15
    await services.guilds.update(GUILD, MODERATOR, room_open_lead_minutes=30)
    assert (await services.live_races.get(GUILD, view.race.id)).room_opens_at == start - timedelta(minutes=30)
    await services.tournaments.update_tournament(GUILD, world.tournament.id, MODERATOR, room_open_lead_minutes=5)
    assert (await services.live_races.get(GUILD, view.race.id)).room_opens_at == start - timedelta(minutes=5)


@pytest.mark.parametrize(
    ("changes", "error", "field"),
    [
        ({"scheduled_at": datetime(2030, 1, 1, 12, 0)}, ValidationFailed, "scheduled_at"),  # naive  # noqa: DTZ001 (naive on purpose: it must be refused)
        ({"scheduled_at": "2030-01-01T12:00:00Z"}, ValidationFailed, "scheduled_at"),  # not a datetime
        ({"scheduled_at": "past"}, ValidationFailed, "scheduled_at"),
        ({"room": {"start_delay": 5}}, ValidationFailed, "room.start_delay"),
        ({"room": {"warp": True}}, ValidationFailed, "room.warp"),
        ({"episode_id": "x" * 101}, ValidationFailed, "episode_id"),
        ({"title": "t" * 201}, ValidationFailed, "title"),
        ({"pool_id": "other_tournament"}, NotFound, "pool_id"),
        ({"seed_id": "other_pool"}, NotFound, "seed_id"),
        ({"room_profile_id": "other_guild"}, NotFound, "room_profile_id"),
        ({"room_profile_id": 999_999}, NotFound, "room_profile_id"),
    ],
)
async def test_create_rejects_bad_input_without_side_effect(
    services: Services, clock: Clock, changes: dict, error: type, field: str
) -> None:
    world = await make_world(services)
    other = await make_world(services, name="Other Cup")
    foreign_profile = await services.room_profiles.create(OTHER_GUILD, MODERATOR, name="Theirs")
    seed_in_other_pool = await services.tournaments.add_seed(
        GUILD, world.tournament.id, world.other_pool.id, MODERATOR, url="https://alttpr.com/h/b1"
    )
    symbolic = {
        "past": clock.now - timedelta(minutes=1),
        "other_tournament": other.pool.id,
        "other_pool": seed_in_other_pool.id,
        "other_guild": foreign_profile.id,
    }
    kwargs = {"pool_id": world.pool.id, "scheduled_at": clock.now + timedelta(hours=1)}
    kwargs.update(
        {key: symbolic.get(value, value) if isinstance(value, str) else value for key, value in changes.items()}
    )
    with pytest.raises(error) as raised:
        await services.live_races.create(GUILD, world.tournament.id, MODERATOR, **kwargs)
    assert raised.value.field == field
    assert await _race_count(services) == 0
    assert services.events.published == []


async def test_create_refuses_inactive_tournament_foreign_tournament_and_duplicate_episode(
    services: Services, clock: Clock
) -> None:
    world = await make_world(services)
    start = clock.now + timedelta(hours=1)
    create = services.live_races.create
    await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start, episode_id="e1")
    with pytest.raises(Conflict, match="episode_id 'e1' is already used"):
        await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start, episode_id="e1")
    with pytest.raises(NotFound):
        await create(OTHER_GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start)
    # episode ids are unique per guild: another guild may use the same one and learns nothing of this race
    elsewhere = await make_world(services, guild_id=OTHER_GUILD)
    other = await create(
        OTHER_GUILD, elsewhere.tournament.id, MODERATOR, pool_id=elsewhere.pool.id, scheduled_at=start, episode_id="e1"
    )
    assert other.race.episode_id == "e1"
    await services.tournaments.update_tournament(GUILD, world.tournament.id, MODERATOR, active=False)
    with pytest.raises(Conflict, match="not active"):
        await create(GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=start)
    assert await _race_count(services) == 2


# ---- get / tenancy --------------------------------------------------------------------------------------
async def test_get_is_scoped_to_guild_and_tournament(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    other = await make_world(services, name="Other Cup")
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    race_id = view.race.id
    assert (await services.live_races.get(GUILD, race_id, tournament_id=world.tournament.id)).race.id == race_id
    for call in (
        services.live_races.get(OTHER_GUILD, race_id),
        services.live_races.get(GUILD, race_id, tournament_id=other.tournament.id),
        services.live_races.get(GUILD, 424242),
        services.live_races.results(OTHER_GUILD, race_id),
        services.live_races.eligibility(OTHER_GUILD, race_id),
        services.live_races.cancel(OTHER_GUILD, race_id, MODERATOR, reason="x"),
        services.live_races.delete(OTHER_GUILD, race_id, MODERATOR),
        services.live_races.edit(OTHER_GUILD, race_id, MODERATOR, title="x"),
        services.live_races.open_now(OTHER_GUILD, race_id, MODERATOR),
        services.live_races.record(OTHER_GUILD, race_id, MODERATOR),
    ):
        with pytest.raises(NotFound, match=f"live race {race_id} not found|live race 424242 not found"):
            await call
    assert (await services.live_races.get(GUILD, race_id)).race.status is RaceStatus.SCHEDULED


# ---- edit -----------------------------------------------------------------------------------------------
async def test_edit_scheduled_race_changes_every_field_and_resets_failed_open(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    seed_b = await services.tournaments.add_seed(
        GUILD, world.tournament.id, world.other_pool.id, MODERATOR, url="https://alttpr.com/h/poolb"
    )
    view = await services.live_races.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        pool_id=world.pool.id,
        seed_id=world.seeds[0].id,
        scheduled_at=clock.now + timedelta(hours=1),
        title="Old",
    )
    race_id = view.race.id
    await _set(services, race_id, open_attempts=6, last_error="RaceTime.gg did not answer", open_claimed_at=clock.now)
    later = clock.now + timedelta(days=2)
    edited = await services.live_races.edit(
        GUILD, race_id, MODERATOR, scheduled_at=later, pool_id=world.other_pool.id, title=None, episode_id="ep9"
    )
    race = edited.race
    assert race.scheduled_at == later and edited.room_opens_at == later - timedelta(minutes=15)
    assert race.pool_id == world.other_pool.id
    assert race.seed_id is None  # the old seed belonged to the old pool
    assert race.title == "Spring Qualifier – Pool B"
    assert race.episode_id == "ep9"
    assert (race.open_attempts, race.last_error, race.next_open_attempt_at) == (0, None, None)
    edited = await services.live_races.edit(
        GUILD, race_id, MODERATOR, seed_id=seed_b.id, room={"start_delay": 30}, tournament_id=world.tournament.id
    )
    assert edited.seed is not None and edited.seed.id == seed_b.id
    assert edited.race.room_settings == {"start_delay": 30}
    assert await _audit_actions(services, race_id) == ["live_race.create", "live_race.edit", "live_race.edit"]


async def test_edit_rejects_bad_input(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    edit = services.live_races.edit
    race_id = view.race.id
    with pytest.raises(ValidationFailed) as raised:
        await edit(GUILD, race_id, MODERATOR, status="finished")
    assert raised.value.field == "status"
    with pytest.raises(ValidationFailed, match="nothing to change"):
        await edit(GUILD, race_id, MODERATOR)
    with pytest.raises(ValidationFailed, match="future"):
        await edit(GUILD, race_id, MODERATOR, scheduled_at=clock.now - timedelta(seconds=1))
    with pytest.raises(NotFound):
        await edit(GUILD, race_id, MODERATOR, seed_id=999)
    other = await make_world(services, name="Other Cup")
    with pytest.raises(NotFound):
        await edit(GUILD, race_id, MODERATOR, pool_id=other.pool.id)
    assert (await services.live_races.get(GUILD, race_id)).race.title == "Spring Qualifier – Pool A"


async def test_edit_open_room_allows_title_only_and_later_states_nothing(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    race_id = view.race.id
    await _set(services, race_id, status=RaceStatus.ROOM_OPEN)
    assert (await services.live_races.edit(GUILD, race_id, MODERATOR, title="Renamed")).race.title == "Renamed"
    with pytest.raises(InvalidTransition, match="only the title can change"):
        await services.live_races.edit(GUILD, race_id, MODERATOR, title="x", scheduled_at=clock.now + timedelta(days=1))
    for status, word in ((RaceStatus.IN_PROGRESS, "in progress"), (RaceStatus.FINISHED, "finished")):
        await _set(services, race_id, status=status)
        with pytest.raises(InvalidTransition, match=f"race {race_id} is {word}; only scheduled or open races"):
            await services.live_races.edit(GUILD, race_id, MODERATOR, title="y")


async def test_edit_and_delete_wait_while_the_opener_holds_the_race(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    await _set(services, view.race.id, open_claim_id="someone", open_claimed_at=clock.now)
    later = clock.now + timedelta(hours=2)
    with pytest.raises(Conflict, match="being opened right now; only the title can change until it is open"):
        await services.live_races.edit(GUILD, view.race.id, MODERATOR, title="x", scheduled_at=later)
    # the title is not part of what the opener sends for this tournament's room: it may change
    assert (await services.live_races.edit(GUILD, view.race.id, MODERATOR, title="x")).race.title == "x"
    with pytest.raises(Conflict, match="being opened right now"):
        await services.live_races.delete(GUILD, view.race.id, MODERATOR)
    clock.advance(seconds=91)  # the claim's lease ran out: its holder is gone
    await services.live_races.edit(GUILD, view.race.id, MODERATOR, scheduled_at=later)


# ---- cancel / delete --------------------------------------------------------------------------------------
async def test_cancel_scheduled_race(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    race_id = view.race.id
    with pytest.raises(ValidationFailed, match="reason is required"):
        await services.live_races.cancel(GUILD, race_id, MODERATOR, reason="   ")
    cancelled = await services.live_races.cancel(GUILD, race_id, MODERATOR, reason="Not enough players")
    assert cancelled.race.status is RaceStatus.CANCELLED
    assert cancelled.race.cancel_reason == "Not enough players"
    event = services.events.published[-1]
    assert isinstance(event, LiveRaceCancelled)
    assert (event.reason, event.previous_status) == ("Not enough players", "scheduled")
    with pytest.raises(InvalidTransition, match=f"race {race_id} is cancelled; only scheduled, open or in-progress"):
        await services.live_races.cancel(GUILD, race_id, MODERATOR, reason="again")
    with pytest.raises(InvalidTransition):
        await services.live_races.open_now(GUILD, race_id, MODERATOR)
    with pytest.raises(InvalidTransition):
        await services.live_races.edit(GUILD, race_id, MODERATOR, title="x")
    assert await _audit_actions(services, race_id) == ["live_race.create", "live_race.cancel"]


async def test_finished_race_cannot_be_cancelled_deleted_or_opened(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    race_id = view.race.id
    await _set(services, race_id, status=RaceStatus.FINISHED)
    with pytest.raises(
        InvalidTransition, match=f"race {race_id} is finished; only scheduled or cancelled races can be deleted"
    ):
        await services.live_races.delete(GUILD, race_id, MODERATOR)
    with pytest.raises(
        InvalidTransition, match="is finished; only scheduled, open or in-progress races can be cancelled"
    ):
        await services.live_races.cancel(GUILD, race_id, MODERATOR, reason="late")
    with pytest.raises(InvalidTransition, match="only scheduled races can be opened"):
        await services.live_races.open_now(GUILD, race_id, MODERATOR)
    with pytest.raises(InvalidTransition, match="already recorded; record it with force"):
        await services.live_races.record(GUILD, race_id, MODERATOR)
    for status in (RaceStatus.ROOM_OPEN, RaceStatus.IN_PROGRESS):
        await _set(services, race_id, status=status)
        with pytest.raises(InvalidTransition, match="only scheduled or cancelled races can be deleted"):
            await services.live_races.delete(GUILD, race_id, MODERATOR)


async def test_record_needs_a_room(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    with pytest.raises(
        InvalidTransition, match="is scheduled; only open, in-progress or finished races can be recorded"
    ):
        await services.live_races.record(GUILD, view.race.id, MODERATOR, force=True)


async def test_delete_keeps_recorded_runs(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    player = await add_player(services, 5001, "Alice", "7BzeW5ErWom9Xgpb")
    view = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=1)
    )
    race_id = view.race.id
    async with services.db.transaction() as session:
        session.add(
            Run(
                tournament_id=world.tournament.id,
                seed_id=world.seeds[0].id,
                player_id=player.id,
                live_race_id=race_id,
                status=RunStatus.FORFEIT,
                score=0.0,
            )
        )
    await services.live_races.cancel(GUILD, race_id, MODERATOR, reason="room broke")
    await services.live_races.delete(GUILD, race_id, MODERATOR)
    with pytest.raises(NotFound):
        await services.live_races.get(GUILD, race_id)
    async with services.db.read() as session:
        runs = list(await session.scalars(select(Run)))
    assert [(run.player_id, run.live_race_id, run.status) for run in runs] == [(player.id, None, RunStatus.FORFEIT)]
    async with services.db.read() as session:
        actions = list(await session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == race_id)))
    assert actions[-1] == "live_race.delete"


# ---- listing --------------------------------------------------------------------------------------------
async def test_list_upcoming_and_search(services: Services, clock: Clock) -> None:
    world = await make_world(services)
    other = await make_world(services, name="Other Cup")
    create = services.live_races.create
    ids = []
    for hours in (5, 1, 3, 3, 2):
        view = await create(
            GUILD,
            world.tournament.id,
            MODERATOR,
            pool_id=world.pool.id,
            scheduled_at=clock.now + timedelta(hours=hours),
            title=f"Race in {hours}h",
        )
        ids.append(view.race.id)
    foreign = await create(
        GUILD, other.tournament.id, MODERATOR, pool_id=other.pool.id, scheduled_at=clock.now + timedelta(hours=4)
    )
    await services.live_races.cancel(GUILD, ids[4], MODERATOR, reason="x")

    # newest scheduled first, keyset pages of 2
    seen, cursor = [], None
    while True:
        page = await services.live_races.list(GUILD, tournament_id=world.tournament.id, limit=2, cursor=cursor)
        seen += [view.race.id for view in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [ids[0], ids[3], ids[2], ids[4], ids[1]]
    cancelled = await services.live_races.list(GUILD, statuses=["cancelled"])
    assert [view.race.id for view in cancelled.items] == [ids[4]]

    # upcoming: scheduled and open, soonest first, across tournaments
    seen, cursor = [], None
    while True:
        page = await services.live_races.upcoming(GUILD, limit=2, cursor=cursor)
        seen += [view.race.id for view in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [ids[1], ids[2], ids[3], foreign.race.id, ids[0]]
    only = await services.live_races.upcoming(GUILD, tournament_id=other.tournament.id)
    assert [view.race.id for view in only.items] == [foreign.race.id]
    assert (await services.live_races.upcoming(OTHER_GUILD)).items == []

    with pytest.raises(ValidationFailed, match="status must be one of"):
        await services.live_races.list(GUILD, statuses=["running"])
    with pytest.raises(ValidationFailed, match="cursor"):
        await services.live_races.list(GUILD, cursor="bm9wZQ")
    with pytest.raises(ValidationFailed, match="limit"):
        await services.live_races.upcoming(GUILD, limit=0)
    with pytest.raises(NotFound):
        await services.live_races.list(OTHER_GUILD, tournament_id=world.tournament.id)

    found = await services.live_races.search(GUILD, "in 3h")
    assert sorted(view.race.id for view in found) == sorted([ids[2], ids[3]])
    by_id = await services.live_races.search(GUILD, str(ids[1]))
    assert ids[1] in [view.race.id for view in by_id]
    assert await services.live_races.search(OTHER_GUILD, "Race") == []
    assert len(await services.live_races.search(GUILD, "", limit=3)) == 3


# ---- opening without credentials ------------------------------------------------------------------------
async def test_open_without_credentials_fails_clearly_and_tells_moderators_once(
    services: Services, clock: Clock
) -> None:
    world = await make_world(services)
    soon = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=10)
    )
    later = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(hours=2)
    )
    report = await services.live_races.opener.run_cycle()
    assert (report.due, report.failed) == (1, 1)
    race = (await services.live_races.get(GUILD, soon.race.id)).race
    assert race.status is RaceStatus.SCHEDULED
    assert "RaceTime.gg credentials are not configured" in race.last_error
    assert race.open_claim_id is None
    assert (await services.live_races.get(GUILD, later.race.id)).race.last_error is None
    failed = [e for e in services.events.published if isinstance(e, LiveRaceOpenFailed)]
    assert [e.live_race_id for e in failed] == [soon.race.id]
    assert (await services.live_races.opener.run_cycle()).due == 0  # given up: no automatic retry

    with pytest.raises(UpstreamUnavailable, match=r"RaceTime\.gg credentials are not configured"):
        await services.live_races.open_now(GUILD, later.race.id, MODERATOR)
    assert "credentials" in (await services.live_races.get(GUILD, later.race.id)).race.last_error


async def test_application_wires_the_racetime_client_and_the_jobs(settings, tmp_path) -> None:
    from bot.app import Application
    from racetime.clients import RacetimeClients
    from tests.conftest import make_settings

    configured = make_settings(
        tmp_path,
        racetime={
            "client_id": "startline-bot",
            "client_secret": "not-a-real-secret",
            "categories": {"smz3": {"client_id": "smz3-bot", "client_secret": "another-secret"}},
        },
        api={"enabled": False},
    )
    app = Application(configured, start_jobs=False)
    assert isinstance(app.racetime, RacetimeClients) and app.racetime.categories == ("alttpr", "smz3")
    assert app.services.live_races.racetime is app.racetime
    await app.start()
    assert {"room_opener", "race_poller", "score_upkeep"} <= set(app.jobs.status)
    await app.stop()
    # stop() closes the clients it made, one per category bot
    assert all(client._http.is_closed for _, client in app.racetime.items())

    settings.api.enabled = False
    bare = Application(settings, start_jobs=False)
    assert bare.racetime is None and bare.services.live_races.racetime is None
