"""One RaceTime.gg bot per category: settings, the `RacetimeClients` seam against the fake (which refuses a bot
outside its own category like the real site), rooms opened by the right bot, the tournament check, and each
category's token health in the status report, the health endpoint and `/startline config`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio

from bot.app import Application
from bot.errors import ValidationFailed
from bot.settings import CategoryCredentials, ConfigError, Settings, load_settings
from db.models import RaceStatus
from racetime.client import RacetimeClient
from racetime.clients import RacetimeClients, clients_from_credentials
from racetime.errors import RacetimeAuthError, RacetimeNoCredentials
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, make_world, open_rooms, poll
from tests.fakes.racetime_server import FakeRacetime


# ---- settings -----------------------------------------------------------------------------------------------
def test_categories_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARTLINE_RACETIME__CLIENT_ID", "alttpr-bot")
    monkeypatch.setenv("STARTLINE_RACETIME__CLIENT_SECRET", "alttpr-secret")
    monkeypatch.setenv("STARTLINE_RACETIME__CATEGORIES__SMZ3__CLIENT_ID", "smz3-bot")
    monkeypatch.setenv("STARTLINE_RACETIME__CATEGORIES__SMZ3__CLIENT_SECRET", "smz3-secret")
    settings = load_settings()
    assert settings.racetime.credentials() == {
        "alttpr": ("alttpr-bot", "alttpr-secret"),
        "smz3": ("smz3-bot", "smz3-secret"),
    }
    assert "smz3-secret" not in repr(settings)


@pytest.mark.parametrize(
    ("racetime", "key"),
    [
        ({"categories": {"smz3": {"client_id": "x"}}}, "racetime.categories.smz3.client_secret"),
        ({"categories": {"smz3": {"client_id": " ", "client_secret": "s"}}}, "racetime.categories.smz3.client_id"),
        ({"categories": {"SMZ3!": {"client_id": "x", "client_secret": "s"}}}, "racetime.categories"),
        ({"categories": {"smz3": {"client_id": "x", "client_secret": "s", "extra": 1}}}, "racetime.categories"),
        (
            {
                "client_id": "x",
                "client_secret": "s",
                "categories": {"alttpr": {"client_id": "y", "client_secret": "t"}},
            },
            "racetime.categories.alttpr",
        ),
    ],
)
def test_bad_category_credentials_stop_start_up_naming_the_key(racetime: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=f"configuration error: {key}"):
        load_settings(racetime=racetime)


# ---- the seam against the fake ------------------------------------------------------------------------------
@pytest_asyncio.fixture
async def two(rt: FakeRacetime) -> AsyncIterator[RacetimeClients]:
    smz3 = rt.add_category_with_bot("smz3", bot_name="SMZ3Bot")
    clients = clients_from_credentials(
        rt.base_url,
        {"alttpr": (rt.client_id, rt.client_secret), "smz3": (smz3.client_id, smz3.client_secret)},
        retries=0,
        timeout=5.0,
    )
    assert clients is not None
    yield clients
    await clients.aclose()


async def test_every_call_uses_its_categorys_bot(rt: FakeRacetime, two: RacetimeClients) -> None:
    assert two.categories == ("alttpr", "smz3")
    await two.category_data("alttpr")
    await two.category_data("smz3")
    issued = {token.client_id for token in rt.tokens.values()}
    smz3_bot = next(app.client_id for app in rt.apps.values() if app.category == "smz3")
    assert issued == {rt.client_id, smz3_bot}, "one token per category bot"
    assert two.for_category("alttpr").stats["token"] == 1 and two.for_category("smz3").stats["token"] == 1
    # The token caches are separate: a second call in each category fetches no new token.
    await two.category_data("smz3")
    assert two.stats["token"] == 2


async def test_a_held_token_request_of_one_category_does_not_hold_up_another(
    rt: FakeRacetime, two: RacetimeClients
) -> None:
    import asyncio

    hold = rt.hold("POST", "/o/token")  # the next token request waits until released
    smz3 = asyncio.create_task(two.category_data("smz3"))
    held = await hold.arrival()
    listing = await two.category_data("alttpr")  # its own token cache and lock: not behind smz3's
    assert listing is not None and not smz3.done()
    held.release()
    await smz3
    assert two.stats["token"] == 2


async def test_the_fake_refuses_a_bot_outside_its_category(rt: FakeRacetime, two: RacetimeClients) -> None:
    alttpr_bot = two.for_category("alttpr")
    with pytest.raises(RacetimeAuthError):
        await alttpr_bot.category_data("smz3")  # a bare 403, even with a fresh token


async def test_a_category_without_a_bot_is_refused_before_anything_is_sent(
    rt: FakeRacetime, two: RacetimeClients
) -> None:
    before = len(rt.requests)
    with pytest.raises(RacetimeNoCredentials, match=r"category ootr \(configured: alttpr, smz3\)"):
        await two.category_data("ootr")
    with pytest.raises(RacetimeNoCredentials):
        await two.cancel_race("ootr", "some-room-1234")
    assert len(rt.requests) == before
    assert two.credentials_for("ootr") is None and two.credentials_for("smz3") == "smz3"


async def test_a_single_client_serves_every_category(rt: FakeRacetime) -> None:
    async with RacetimeClient(rt.base_url, rt.client_id, rt.client_secret) as client:
        single = RacetimeClients.single(client)
        assert single.serves("anything") and single.credentials_for("anything") == "default"
        assert single.for_category("smz3") is client


# ---- the process: rooms, tournaments, health ------------------------------------------------------------------
@pytest_asyncio.fixture
async def multi(settings: Settings, rt: FakeRacetime, clock: Clock) -> AsyncIterator[Application]:
    """An Application built from settings naming two category bots (no injected client)."""
    smz3 = rt.add_category_with_bot("smz3", bot_name="SMZ3Bot")
    racetime = settings.racetime
    racetime.base_url = rt.base_url
    racetime.client_id, racetime.client_secret = rt.client_id, _secret(rt.client_secret)
    racetime.categories = {"smz3": CategoryCredentials(client_id=smz3.client_id, client_secret=smz3.client_secret)}
    racetime.listing_cache_seconds = rt.cache_ttl
    settings.api.enabled = False
    app = Application(settings, start_jobs=False)
    app.services.live_races.clock = clock
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def _secret(value: str):
    from pydantic import SecretStr

    return SecretStr(value)


async def test_two_tournaments_in_two_categories_open_with_the_right_bot(
    multi: Application, rt: FakeRacetime, clock: Clock
) -> None:
    services = multi.services
    alttpr = await make_world(services, name="ALTTPR Cup")
    smz3 = await make_world(services, name="SMZ3 Cup", racetime_category="smz3")
    ids = []
    for world in (alttpr, smz3):
        view = await services.live_races.create(
            GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
        )
        ids.append(view.race.id)
    report = await open_rooms(multi)
    assert report.opened == 2
    races = [(await services.live_races.get(GUILD, race_id)).race for race_id in ids]
    assert [race.racetime_category for race in races] == ["alttpr", "smz3"]
    assert [rt.room(race.racetime_slug)["opened_by_bot"] for race in races] == ["TestBot", "SMZ3Bot"]
    assert all(race.status is RaceStatus.ROOM_OPEN for race in races)
    report = await poll(multi)
    assert report.categories == 2 and report.listing_requests == 2
    health = {h.category: h for h in await multi.status.racetime_health()}
    assert set(health) == {"alttpr", "smz3"}
    assert all(h.healthy and h.last_token_at is not None for h in health.values())
    assert {h.credentials for h in health.values()} == {"alttpr", "smz3"}


async def test_a_tournament_in_a_category_without_a_bot_is_refused(multi: Application) -> None:
    tournaments = multi.services.tournaments
    with pytest.raises(ValidationFailed, match=r"category ootr.*configured categories: alttpr, smz3") as caught:
        await tournaments.create_tournament(GUILD, MODERATOR, name="OoT", racetime_category="ootr")
    assert caught.value.field == "racetime_category"
    made = await tournaments.create_tournament(GUILD, MODERATOR, name="SMZ3", racetime_category="smz3")
    with pytest.raises(ValidationFailed, match="configured categories: alttpr, smz3"):
        await tournaments.update_tournament(GUILD, made.id, MODERATOR, racetime_category="ootr")
    renamed = await tournaments.update_tournament(GUILD, made.id, MODERATOR, name="SMZ3 Open")
    assert renamed.racetime_category == "smz3"


async def test_bad_credentials_of_one_category_show_in_its_health_only(
    settings: Settings, rt: FakeRacetime, clock: Clock
) -> None:
    rt.add_category_with_bot("smz3")
    settings.racetime.base_url = rt.base_url
    settings.racetime.client_id, settings.racetime.client_secret = rt.client_id, _secret(rt.client_secret)
    settings.racetime.categories = {"smz3": CategoryCredentials(client_id="smz3-bot", client_secret="wrong")}
    settings.api.enabled = False
    app = Application(settings, start_jobs=False)
    await app.start()
    try:
        await app.services.tournaments.create_tournament(GUILD, MODERATOR, name="SMZ3", racetime_category="smz3")
        await app.services.tournaments.create_tournament(GUILD, MODERATOR, name="ALTTPR")
        await app.racetime.category_data("alttpr")
        with pytest.raises(RacetimeAuthError):
            await app.racetime.category_data("smz3")
        report = await app.status.status(GUILD)
        health = {h.category: h for h in report.racetime}
        assert health["alttpr"].healthy and not health["smz3"].healthy
        assert "invalid_client" in (health["smz3"].last_error or "")
        assert any(problem.startswith("RaceTime.gg (smz3): ") for problem in report.problems), report.problems
        assert not any(problem.startswith("RaceTime.gg (alttpr)") for problem in report.problems)
        from bot.api.health import racetime_bots

        bots = racetime_bots(app)
        assert set(bots) == {"alttpr", "smz3"}
        assert bots["alttpr"].last_token_at is not None and bots["alttpr"].last_error is None
        assert bots["smz3"].last_token_at is None and "invalid_client" in (bots["smz3"].last_error or "")
    finally:
        await app.stop()


async def test_a_race_of_a_category_whose_bot_was_removed_fails_to_open_at_once(app: Application, clock: Clock) -> None:
    # A tournament made while its category had a bot; the bot is gone now (the process restarted without it).
    world = await make_world(app.services, name="SMZ3 Cup", racetime_category="smz3")
    smz3_only = RacetimeClients({"alttpr": app.racetime.for_category("alttpr")})
    app.services.live_races.opener.racetime = smz3_only
    view = await app.services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=clock.now + timedelta(minutes=5)
    )
    report = await open_rooms(app, expect_errors=True)
    assert report.failed == 1
    race = (await app.services.live_races.get(GUILD, view.race.id)).race
    assert race.status is RaceStatus.SCHEDULED
    assert "no RaceTime.gg bot is configured for category smz3 (configured: alttpr)" in (race.last_error or "")


async def test_an_evening_in_two_categories_with_presence(multi: Application, rt: FakeRacetime, clock: Clock) -> None:
    """One guild, two tournaments in two categories: each room opened by its category's bot, an ineligible entrant
    warned in the room before the start, a scheduled race that does not start early although everyone is ready,
    then both recorded."""
    import asyncio

    from db.models import RunStatus
    from tests.fakes.lifecycle import add_player
    from tests.fakes.racetime_data import captured_user

    alice, bob, carol = (captured_user(name) for name in ("Alice", "Bob", "Carol"))
    services, presence = multi.services, multi.presence
    presence.backoff_base = presence.backoff_max = 0.01
    rt.racebot = True  # RaceTime.gg's own auto start, for rooms that have it on
    await add_player(services, 2001, "Alice", alice["id"])
    await add_player(services, 2002, "Carol", carol["id"])  # Bob is not linked
    alttpr = await make_world(services, name="ALTTPR Cup")
    smz3 = await make_world(services, name="SMZ3 Cup", racetime_category="smz3")
    ids = []
    for world, room in ((alttpr, {"start_mode": "scheduled"}), (smz3, None)):
        view = await services.live_races.create(
            GUILD,
            world.tournament.id,
            MODERATOR,
            pool_id=world.pool.id,
            scheduled_at=clock.now + timedelta(minutes=10),
            room=room,
        )
        ids.append(view.race.id)
    assert (await open_rooms(multi)).opened == 2
    races = [(await services.live_races.get(GUILD, race_id)).race for race_id in ids]
    scheduled, auto = (race.racetime_slug for race in races)
    assert rt.room(scheduled)["opened_by_bot"] == "TestBot" and rt.room(auto)["opened_by_bot"] == "SMZ3Bot"
    await presence.run_cycle()

    async def until(condition, what: str):
        async with asyncio.timeout(10):
            while not (result := condition()):  # noqa: ASYNC110 - the fake's and the bot's state
                await asyncio.sleep(0.005)
        return result

    await until(lambda: all(room.race_status == "open" for room in presence.rooms.values()), "both rooms joined")
    for slug in (scheduled, auto):
        rt.add_entrant(slug, alice, ready=False)
        rt.add_entrant(slug, bob, ready=False)
    # Bob is told in each room, before the start, that his run would not count; Alice is told nothing.
    for slug in (scheduled, auto):
        [warning] = await until(lambda slug=slug: [m for m in rt.messages(slug) if m["direct_to"] == bob["id"]], "Bob")
        assert "NOT count" in warning["message"] and "/racetime link" in warning["message"]
        assert not [m for m in rt.messages(slug) if m["direct_to"] == alice["id"]]
    # Everyone gets ready: the auto room starts at once (RaceTime.gg's racebot), the scheduled one waits.
    for slug in (scheduled, auto):
        rt.set_ready(slug, alice["id"])
        rt.set_ready(slug, bob["id"])
    assert rt.room(auto)["status"]["value"] in ("pending", "in_progress")
    await presence.run_cycle()
    assert rt.room(scheduled)["status"]["value"] == "open", "a scheduled race never starts before its time"
    clock.advance(minutes=10)
    await presence.run_cycle()
    await until(lambda: rt.room(scheduled)["status"]["value"] != "open", "Startline's begin")
    for slug in (scheduled, auto):
        rt.start(slug)
        rt.finish_entrant(slug, alice["id"], timedelta(hours=1, minutes=30))
        rt.finish_entrant(slug, bob["id"], timedelta(hours=1, minutes=40))
    await poll(multi)
    await poll(multi)
    for race_id in ids:
        assert (await services.live_races.get(GUILD, race_id)).race.status is RaceStatus.FINISHED
    async with multi.db.read() as session:
        from sqlalchemy import select

        from db.models import Run

        runs = (await session.scalars(select(Run).where(Run.live_race_id.in_(ids)))).all()
    assert len(runs) == 2 and all(run.status is RunStatus.FINISHED for run in runs), "Alice counts, Bob does not"
