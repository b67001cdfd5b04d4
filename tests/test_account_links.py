"""`/racetime link` end to end without Discord: authorize on the fake RaceTime.gg, its redirect to our
callback route, the code exchange, userinfo, and the stored link; forged, expired and replayed states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestServer
from sqlalchemy import func, select

from bot.api import create_api_app
from bot.app import Application
from bot.errors import UpstreamUnavailable, ValidationFailed
from bot.services.account_links import CALLBACK_PATH, STATE_MAX_AGE_SECONDS, AccountLinkService
from bot.settings import Settings
from db.models import AppSecret, AuditEntry, Base
from tests.conftest import GUILD, OTHER_GUILD, make_settings
from tests.fakes.racetime_server import FakeRacetime, user_client_for

USER = 500_000_000_000_000_001


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest_asyncio.fixture
async def world(settings: Settings) -> AsyncIterator[SimpleNamespace]:
    """The fake RaceTime.gg, our side server (callback route) and a link service talking to the fake."""
    app = Application(settings, run_migrations=False, start_jobs=False)
    async with app.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    clock = Clock()
    async with FakeRacetime() as rt:
        server = TestServer(create_api_app(app), host="127.0.0.1")
        await server.start_server()
        settings.api.public_url = str(server.make_url("")).rstrip("/")
        links = AccountLinkService(
            app.db, settings, app.services.players, client_factory=lambda: user_client_for(rt), clock=clock
        )
        app.services.account_links = links
        async with httpx.AsyncClient(timeout=10) as browser:
            yield SimpleNamespace(app=app, rt=rt, links=links, browser=browser, clock=clock, settings=settings)
        await server.close()
    await app.db.dispose()


async def follow_login(world: SimpleNamespace, authorize_url: str) -> httpx.Response:
    """What the player's browser does: RaceTime.gg answers with a redirect to our callback, which is followed."""
    approval = await world.browser.get(authorize_url)
    assert approval.status_code == 302
    callback = approval.headers["location"]
    assert callback.startswith(world.settings.api.public_url + CALLBACK_PATH)
    return await world.browser.get(callback)


async def test_link_flow_stores_a_verified_link_for_the_discord_user(world) -> None:
    url = await world.links.authorize_url(GUILD, USER)
    query = parse_qs(urlsplit(url).query)
    assert url.startswith(world.rt.base_url + "/o/authorize?")
    assert query["client_id"] == [world.rt.oauth_client_id] and query["scope"] == ["read"]
    assert query["redirect_uri"] == [world.settings.api.public_url + CALLBACK_PATH]

    page = await follow_login(world, url)

    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    expected = world.rt.oauth_user
    assert "Linked!" in page.text and expected["full_name"] in page.text
    player = await world.app.services.players.get(GUILD, USER)  # a member of the guild the link came from
    assert (player.racetime_id, player.racetime_name, player.racetime_verified) == (
        expected["id"],
        expected["full_name"],
        True,
    )
    assert world.rt.count("POST", "/o/token") == 1 and world.rt.count("GET", "/o/userinfo") == 1
    async with world.app.db.read() as session:
        actions = (await session.scalars(select(AuditEntry.action))).all()
    assert "player.link_racetime" in actions


async def test_verified_link_replaces_a_moderators_guess_on_another_player(world) -> None:
    from bot.actors import Actor

    racetime_id = world.rt.oauth_user["id"]
    await world.app.services.players.link_racetime(
        GUILD, 42, racetime_id, "guess", Actor.system(), verified=False, display_name="someone"
    )
    page = await follow_login(world, await world.links.authorize_url(GUILD, USER))
    assert page.status_code == 200
    assert (await world.app.services.players.find(42)).racetime_id is None
    assert (await world.app.services.players.find(USER)).racetime_id == racetime_id


async def test_expired_state_is_refused_and_changes_nothing(world) -> None:
    url = await world.links.authorize_url(GUILD, USER)
    world.clock.now += STATE_MAX_AGE_SECONDS + 1
    page = await follow_login(world, url)
    assert page.status_code == 400 and "has expired" in page.text and "/racetime link" in page.text
    assert await world.app.services.players.find(USER) is None
    assert world.rt.count("POST", "/o/token") == 0  # refused before spending the code


async def test_state_still_valid_just_before_expiry(world) -> None:
    url = await world.links.authorize_url(GUILD, USER)
    world.clock.now += STATE_MAX_AGE_SECONDS - 1
    assert (await follow_login(world, url)).status_code == 200


@pytest.mark.parametrize("forge", ["tamper", "other_key", "garbage", "missing"])
async def test_forged_state_is_refused(world, tmp_path, forge: str) -> None:
    approval = await world.browser.get(await world.links.authorize_url(GUILD, USER))
    params = {key: values[0] for key, values in parse_qs(urlsplit(approval.headers["location"]).query).items()}
    if forge == "tamper":  # another payload under the original signature
        payload, signature = params["state"].split(".", 1)
        params["state"] = payload[:-2] + ("AA" if payload[-2:] != "AA" else "BB") + "." + signature
    elif forge == "other_key":  # well formed, signed with a key that is not ours
        stranger = AccountLinkService(
            world.app.db, make_settings(tmp_path, api={"secret_key": "not ours"}), world.app.services.players
        )
        params["state"] = (await stranger._serializer()).dumps([GUILD, USER, "n"])
    elif forge == "garbage":
        params["state"] = "not-a-state"
    else:
        del params["state"]
    page = await world.browser.get(f"{world.settings.api.public_url}{CALLBACK_PATH}", params=params)
    assert page.status_code == 400 and "not valid" in page.text
    assert await world.app.services.players.find(USER) is None
    assert world.rt.count("POST", "/o/token") == 0


async def test_replayed_code_is_refused(world) -> None:
    approval = await world.browser.get(await world.links.authorize_url(GUILD, USER))
    first = await world.browser.get(approval.headers["location"])
    assert first.status_code == 200
    again = await world.browser.get(approval.headers["location"])
    assert again.status_code == 400 and "did not accept" in again.text


async def test_denied_authorization_changes_nothing(world) -> None:
    world.rt.oauth_approve = False
    page = await follow_login(world, await world.links.authorize_url(GUILD, USER))
    assert page.status_code == 400 and "did not authorize" in page.text
    assert await world.app.services.players.find(USER) is None


async def test_racetime_down_during_exchange_gives_a_retry_page(world) -> None:
    approval = await world.browser.get(await world.links.authorize_url(GUILD, USER))
    world.rt.down()
    page = await world.browser.get(approval.headers["location"])
    assert page.status_code == 502 and "could not be reached" in page.text
    assert await world.app.services.players.find(USER) is None


async def test_missing_code_is_refused(world) -> None:
    url = await world.links.authorize_url(GUILD, USER)
    state = parse_qs(urlsplit(url).query)["state"][0]
    page = await world.browser.get(f"{world.settings.api.public_url}{CALLBACK_PATH}", params={"state": state})
    assert page.status_code == 400 and "no authorization code" in page.text


async def test_state_names_the_guild_it_was_made_for(world) -> None:
    url = await world.links.authorize_url(OTHER_GUILD, USER)
    request = await world.links.verify_state(parse_qs(urlsplit(url).query)["state"][0])
    assert (request.guild_id, request.discord_user_id) == (OTHER_GUILD, USER)


async def test_generated_key_is_stored_once_and_shared(settings: Settings, db, services) -> None:
    first = AccountLinkService(db, settings, services.players, client_factory=lambda: None)  # type: ignore[arg-type]
    second = AccountLinkService(db, settings, services.players, client_factory=lambda: None)  # type: ignore[arg-type]
    serializer = await first._serializer()
    state = serializer.dumps([GUILD, USER, "n"])
    assert (await second.verify_state(state)).discord_user_id == USER
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AppSecret)) == 1


async def test_configured_secret_key_is_used(tmp_path, db, services) -> None:
    keyed = make_settings(tmp_path, api={"secret_key": "configured"})
    other = make_settings(tmp_path, api={"secret_key": "different"})
    state = (await AccountLinkService(db, keyed, services.players)._serializer()).dumps([GUILD, USER, "n"])
    assert (await AccountLinkService(db, keyed, services.players).verify_state(state)).guild_id == GUILD
    with pytest.raises(ValidationFailed, match="not valid"):
        await AccountLinkService(db, other, services.players).verify_state(state)
    async with db.read() as session:
        assert await session.scalar(select(func.count()).select_from(AppSecret)) == 0


async def test_unconfigured_bot_says_what_to_set(settings: Settings, services) -> None:
    with pytest.raises(UpstreamUnavailable, match=r"racetime\.oauth_client_id"):
        await services.account_links.authorize_url(GUILD, USER)
