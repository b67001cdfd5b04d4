"""RacetimeClient against the fake RaceTime.gg, over real HTTP and websockets on 127.0.0.1."""

import asyncio
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from racetime.client import RacetimeClient, token_refresh_margin
from racetime.errors import (
    RacetimeAuthError,
    RacetimeConflict,
    RacetimeNotFound,
    RacetimeProtocolError,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import RoomSettings, StartRaceRequest, User
from racetime.results import entrant_results
from tests.fakes.racetime_data import captured_user, load_json
from tests.fakes.racetime_server import FakeRacetime, client_for, user_client_for

ALICE, BOB, CAROL = (captured_user(n) for n in ("Alice", "Bob", "Carol"))
GOAL = "Beat the game"


class ManualClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class RecordingTransport(httpx.AsyncHTTPTransport):
    """Keeps every request as sent on the wire."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.sent.append(request)
        return await super().handle_async_request(request)


@pytest.fixture
async def rt():
    """The fake with its listing cache off: these tests look at single requests (one test turns the cache on)."""
    async with FakeRacetime(seed=7) as fake:
        yield fake


@pytest.fixture
async def client(rt):
    async with client_for(rt) as c:
        yield c


def request(**settings) -> StartRaceRequest:
    return StartRaceRequest(
        RoomSettings(**settings),
        goal=GOAL,
        info_user="Seed: https://example/seed",
        info_bot="startline:race:1",
    )


# ---------------------------------------------------------------- token handling


async def test_token_is_fetched_once_and_reused(rt, client):
    for _ in range(3):
        await client.category_data("alttpr")
    assert client.stats["token"] == 1 and client.stats["category"] == 3
    assert rt.count("POST", "/o/token") == 1


async def test_token_is_renewed_early_by_the_clock(rt):
    clock = ManualClock()
    async with client_for(rt, clock=clock) as client:
        await client.category_data("alttpr")
        margin = token_refresh_margin(36000)
        assert margin == 3600  # renewed with an hour of its 10 h left
        clock.now += 36000 - margin - 1
        await client.category_data("alttpr")
        assert rt.count("POST", "/o/token") == 1
        clock.now += 2
        await client.category_data("alttpr")
        assert rt.count("POST", "/o/token") == 2


async def test_short_lived_tokens_are_reused_for_half_their_life():
    clock = ManualClock()
    async with FakeRacetime(token_expires_in=600) as rt, client_for(rt, clock=clock) as client:
        await client.category_data("alttpr")
        clock.now += 299
        await client.category_data("alttpr")
        assert rt.count("POST", "/o/token") == 1
        clock.now += 2
        await client.category_data("alttpr")
        assert rt.count("POST", "/o/token") == 2


async def test_failed_early_renewal_keeps_the_still_valid_token(rt):
    clock = ManualClock()
    async with client_for(rt, clock=clock, retries=0) as client:
        await client.category_data("alttpr")
        clock.now += 35000  # inside the renewal window, not yet expired
        rt.fail_next(1, path_contains="/o/token")
        await client.category_data("alttpr")
        assert rt.count("POST", "/o/token") == 2 and client.stats["category"] == 2


async def test_concurrent_callers_share_one_token_fetch(rt, client):
    rt.set_delay(0.05, path_contains="/o/token")
    await asyncio.gather(*(client.category_data("alttpr") for _ in range(5)))
    assert rt.count("POST", "/o/token") == 1


async def test_bare_403_gets_one_fresh_token_and_one_retry(rt, client):
    await client.category_data("alttpr")
    rt.expire_all_tokens()
    data = await client.category_data("alttpr")
    assert data.slug == "alttpr"
    assert rt.count("POST", "/o/token") == 2 and rt.count("GET", "/o/alttpr/data") == 3


async def test_second_403_is_an_auth_error(rt):
    rt.add_category("sm", ["Any%"])
    rt.add_bot("sm", "sm-bot", "sm-secret")
    async with RacetimeClient(rt.base_url, "sm-bot", "sm-secret", retry_backoff=0) as other:
        with pytest.raises(RacetimeAuthError) as caught:
            await other.category_data("alttpr")
        assert caught.value.status == 403 and caught.value.retryable is False
        assert rt.count("POST", "/o/token") == 2 and rt.count("GET", "/o/alttpr/data") == 2
        with pytest.raises(RacetimeAuthError):
            await other.start_race("alttpr", request())
        assert rt.rooms == []
        assert (await other.category_data("sm")).current_races == ()


async def test_bad_credentials(rt):
    async with RacetimeClient(rt.base_url, rt.client_id, "wrong", retry_backoff=0) as client:
        with pytest.raises(RacetimeAuthError, match="invalid_client") as caught:
            await client.category_data("alttpr")
        assert caught.value.status == 401
        assert rt.count("POST", "/o/token") == 1  # not retried


async def test_secret_and_token_never_logged(rt, client, caplog):
    caplog.set_level(logging.DEBUG)
    await client.category_data("alttpr")
    rt.expire_all_tokens()
    await client.category_data("alttpr")
    tokens = list(rt.tokens)
    assert len(tokens) == 2
    for secret in [rt.client_secret, *tokens]:
        assert secret not in caplog.text
        assert secret not in repr(client)


# ---------------------------------------------------------------- startrace


async def test_startrace_sends_every_field_and_parses_location(rt):
    transport = RecordingTransport()
    async with client_for(rt, transport=transport) as client:
        ref = await client.start_race(
            "alttpr", request(start_delay=30, time_limit=48, chat_message_delay=5, hide_comments=True)
        )
        (sent,) = [r for r in transport.sent if r.url.path == "/o/alttpr/startrace"]
        assert sent.headers["authorization"].startswith("Bearer ")
        form = {k: v for k, (v,) in parse_qs(sent.content.decode(), keep_blank_values=True).items()}
        assert (
            form
            == StartRaceRequest(
                RoomSettings(start_delay=30, time_limit=48, chat_message_delay=5, hide_comments=True),
                goal=GOAL,
                info_user="Seed: https://example/seed",
                info_bot="startline:race:1",
            ).to_form()
        )
        assert len(form) == 22
        assert form["streaming_required"] == "false" and form["hide_comments"] == "true"
        assert (form["start_delay"], form["time_limit"], form["chat_message_delay"]) == ("30", "48", "5")

        assert ref.category == "alttpr" and ref.url == f"{rt.base_url}/alttpr/{ref.slug}"
        race = await client.race_detail("alttpr", ref.slug)
        # Every setting arrived; streaming_required would have been TRUE had it been omitted.
        assert race.streaming_required is False and race.raw["hide_comments"] is True
        assert (race.start_delay, race.time_limit) == (timedelta(seconds=30), timedelta(hours=48))
        assert race.raw["chat_message_delay"] == "P0DT00H00M05S"
        assert race.info == "Seed: https://example/seed\nstartline:race:1"
        assert race.raw["opened_by_bot"] == "TestBot" and race.status == "open"

        listed = await client.category_data("alttpr")
        public = await client.category_data("alttpr", include_unlisted=False)
        assert [r.slug for r in listed.current_races] == [ref.slug] == [r.slug for r in public.current_races]


async def test_unlisted_room_is_only_in_the_bot_listing(rt, client):
    ref = await client.start_race("alttpr", request(unlisted=True, invitational=True))
    assert [r.slug for r in (await client.category_data("alttpr")).current_races] == [ref.slug]
    assert (await client.category_data("alttpr", include_unlisted=False)).current_races == ()
    assert (await client.race_detail("alttpr", ref.slug)).status == "invitational"


class UncheckedRequest(StartRaceRequest):
    """Skips local validation (and sends both goals if given), to see what the server says."""

    def validate(self) -> None:
        pass

    def to_form(self) -> dict[str, str]:
        form = super().to_form()
        if self.goal and self.custom_goal:
            form["custom_goal"] = self.custom_goal
        return form


@pytest.mark.parametrize(
    ("settings", "goal", "custom_goal", "expected"),
    [
        (
            {"start_delay": 5},
            GOAL,
            None,
            "start_delay: Ensure this value is greater than or equal to 0:00:10.",
        ),
        ({"start_delay": 61}, GOAL, None, "start_delay: Ensure this value is less than or equal to 0:01:00."),
        ({"time_limit": 0}, GOAL, None, "time_limit: Ensure this value is greater than or equal to 1:00:00."),
        (
            {"time_limit": 73},
            GOAL,
            None,
            "time_limit: Ensure this value is less than or equal to 3 days, 0:00:00.",
        ),
        (
            {"chat_message_delay": 91},
            GOAL,
            None,
            "chat_message_delay: Ensure this value is less than or equal to 0:01:30.",
        ),
        ({}, None, None, "You need to set a goal for this race."),
        ({}, GOAL, "My goal", "The race must only have one goal."),
        ({}, "No such goal", None, "You need to set a goal for this race."),
        (
            {"start_delay": 5, "time_limit": 100},
            None,
            None,
            "start_delay: Ensure this value is greater than or equal to 0:00:10.; "
            "time_limit: Ensure this value is less than or equal to 3 days, 0:00:00.; "
            "You need to set a goal for this race.",
        ),
    ],
)
async def test_startrace_validation_errors_read_well(rt, client, settings, goal, custom_goal, expected):
    bad = UncheckedRequest(replace(RoomSettings(), **settings), goal=goal, custom_goal=custom_goal)
    with pytest.raises(RacetimeValidationError) as caught:
        await client.start_race("alttpr", bad)
    assert str(caught.value) == expected
    assert caught.value.status == 422 and caught.value.retryable is False
    assert rt.rooms == [] and client.stats["startrace"] == 1


async def test_unknown_goal_name_is_reported_by_the_server(client):
    with pytest.raises(RacetimeValidationError) as caught:
        await client.start_race("alttpr", StartRaceRequest(RoomSettings(), goal="beat the game"))
    assert caught.value.errors == {"__all__": ["You need to set a goal for this race."]}


async def test_startrace_is_never_retried(rt, client):
    await client.category_data("alttpr")  # token first
    rt.fail_next(5, status=503, path_contains="/startrace")
    with pytest.raises(RacetimeUnavailable) as caught:
        await client.start_race("alttpr", request())
    assert caught.value.status == 503 and caught.value.retryable
    assert rt.count("POST", "/startrace") == 1
    rt.drop_next(1, path_contains="/startrace")
    with pytest.raises(RacetimeUnavailable):
        await client.start_race("alttpr", request())
    assert rt.count("POST", "/startrace") == 2


async def test_startrace_unknown_category(client):
    with pytest.raises(RacetimeNotFound):
        await client.start_race("nope", request())


# ---------------------------------------------------------------- edit


async def test_edit_sends_everything_so_nothing_resets(rt, client):
    ref = await client.start_race("alttpr", request(streaming_required=False, hide_comments=True, time_limit=30))
    before = await client.race_detail("alttpr", ref.slug)
    change = StartRaceRequest.from_race(before)
    change.info_bot = "Seed: https://example/new"
    await client.edit_race("alttpr", ref.slug, change)
    after = await client.race_detail("alttpr", ref.slug)
    assert after.info_bot == "Seed: https://example/new" and after.version == before.version + 1
    unchanged = {k: v for k, v in after.raw.items() if k not in ("version", "info", "info_bot")}
    assert unchanged == {k: v for k, v in before.raw.items() if k not in ("version", "info", "info_bot")}
    assert after.streaming_required is False and after.info_user == "Seed: https://example/seed"


async def test_edit_errors(rt, client):
    ref = await client.start_race("alttpr", request())
    with pytest.raises(RacetimeValidationError, match="You need to set a goal"):
        await client.edit_race("alttpr", ref.slug, UncheckedRequest(RoomSettings(), goal="nope"))
    with pytest.raises(RacetimeNotFound):
        await client.edit_race("alttpr", "no-such-1234", request())
    rt.cancel(ref.slug)
    with pytest.raises(RacetimeConflict, match="cancelled"):
        await client.edit_race("alttpr", ref.slug, request())


# ---------------------------------------------------------------- reading races


async def test_race_detail_like_the_captured_sample(rt, client):
    slug = rt.open_room(goal=GOAL, streaming_required=False)
    for user in (ALICE, BOB, CAROL):
        rt.add_entrant(slug, user)
    rt.start(slug, started_at=datetime(2025, 6, 14, 18, 0, 27, 123456, tzinfo=UTC))
    rt.dq(slug, CAROL["id"])
    rt.dnf(slug, BOB["id"])
    rt.finish_entrant(slug, ALICE["id"], timedelta(hours=1, minutes=23, seconds=45, microseconds=678901))
    race = await client.race_detail("alttpr", slug)
    alice, bob, carol = race.entrants
    assert alice.finish_time == timedelta(hours=1, minutes=23, seconds=45, microseconds=678901)
    assert alice.finished_at == datetime(2025, 6, 14, 19, 24, 12, 802000, tzinfo=UTC)  # as in the capture
    assert race.started_at == datetime(2025, 6, 14, 18, 0, 27, 123000, tzinfo=UTC)
    assert [(e.user.name, e.status) for e in race.entrants] == [
        ("Alice", "done"),
        ("Bob", "dnf"),
        ("Carol", "dq"),
    ]
    assert alice.user.url == f"{rt.base_url}/user/7BzeW5ErWom9Xgpb/alice"
    assert race.data_url == f"{rt.base_url}/alttpr/{slug}/data"
    assert [r.status for r in entrant_results(race)] == ["finished", "forfeit", "disqualified"]
    assert bob.finish_time is None and carol.place is None


async def test_not_found(client):
    with pytest.raises(RacetimeNotFound):
        await client.race_detail("alttpr", "no-such-1234")
    with pytest.raises(RacetimeNotFound):
        await client.category_data("nope", include_unlisted=False)
    with pytest.raises(RacetimeNotFound):
        await client.category_data("nope")


async def test_past_races_page(rt, client):
    for past in load_json("races_with_past_entrants_2.json")["races"][:3]:
        rt.replay(rt.open_room(), past)
    page = await client.past_races("alttpr", per_page=2)
    assert (page["count"], page["num_pages"], len(page["races"])) == (3, 2, 2)
    assert "entrants" in page["races"][0]
    assert client.stats["past_races"] == 1


async def test_base_url_with_trailing_slash(rt):
    async with RacetimeClient(rt.base_url + "/", rt.client_id, rt.client_secret) as client:
        ref = await client.start_race("alttpr", request())
        assert ref.url == f"{rt.base_url}/alttpr/{ref.slug}"
        (summary,) = (await client.category_data("alttpr")).current_races
        assert summary.url == ref.url and summary.data_url == ref.data_url


# ---------------------------------------------------------------- failures


async def test_5xx_is_retried_a_bounded_number_of_times(rt, client):
    rt.fail_next(10, status=503, path_contains="/data")
    with pytest.raises(RacetimeUnavailable) as caught:
        await client.race_detail("alttpr", "whatever-1234")
    assert caught.value.status == 503
    assert rt.count("GET", "/data") == 3  # the first try and 2 retries
    assert client.stats["detail"] == 3


async def test_a_passing_5xx_is_absorbed(rt, client):
    slug = rt.open_room()
    rt.fail_next(1, status=502, path_contains="/data")
    assert (await client.race_detail("alttpr", slug)).slug == slug
    assert rt.count("GET", f"/alttpr/{slug}/data") == 2


async def test_retries_can_be_switched_off(rt):
    async with client_for(rt, retries=0) as client:
        rt.down()
        with pytest.raises(RacetimeUnavailable):
            await client.race_detail("alttpr", "whatever-1234")
        assert rt.count() == 1
        rt.up()


async def test_dropped_connection_is_unavailable(rt):
    slug = rt.open_room()
    async with client_for(rt, retries=0) as client:
        rt.drop_next(1, path_contains="/data")
        with pytest.raises(RacetimeUnavailable):
            await client.race_detail("alttpr", slug)
    async with client_for(rt, retries=1) as client:
        rt.drop_next(1, path_contains="/data")
        assert (await client.race_detail("alttpr", slug)).slug == slug


async def test_slow_server_is_unavailable(rt):
    rt.set_delay(3, path_contains="/data")
    async with client_for(rt, timeout=0.2) as client:
        with pytest.raises(RacetimeUnavailable, match="timed out"):
            await client.race_detail("alttpr", "whatever-1234")
    rt.set_delay(0, path_contains="/data")


async def test_connection_refused_is_unavailable():
    async with FakeRacetime() as rt:
        base_url = rt.base_url
    async with RacetimeClient(base_url, "id", "secret", retries=1, retry_backoff=0) as client:
        with pytest.raises(RacetimeUnavailable):
            await client.race_detail("alttpr", "whatever-1234")
        assert client.stats["detail"] == 2


async def test_unexpected_body_is_a_protocol_error(rt):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>maintenance</html>")

    async with RacetimeClient(rt.base_url, "id", "secret", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(RacetimeProtocolError):
            await client.race_detail("alttpr", "whatever-1234")


# ---------------------------------------------------------------- cancel over the bot websocket


async def test_cancel_race(rt, client):
    ref = await client.start_race("alttpr", request())
    await client.cancel_race("alttpr", ref.slug)
    race = await client.race_detail("alttpr", ref.slug)
    assert race.status == "cancelled" and race.cancelled_at is not None
    assert rt.messages(ref.slug)[-1]["message"] == "This race has been cancelled by TestBot."
    await client.cancel_race("alttpr", ref.slug)  # already cancelled: nothing to do
    assert client.stats["cancel"] == 2


async def test_cancel_a_finished_race_is_a_conflict(rt, client):
    slug = rt.open_room()
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    rt.finish_entrant(slug, ALICE["id"], timedelta(minutes=30))
    rt.dnf(slug, BOB["id"])
    with pytest.raises(RacetimeConflict, match=r"Cannot cancel a race that is in finished state\.") as caught:
        await client.cancel_race("alttpr", slug)
    assert caught.value.retryable is False


async def test_cancel_reconnects_once_with_a_fresh_token(rt, client):
    slug = rt.open_room()
    await client.category_data("alttpr")
    rt.expire_all_tokens()
    await client.cancel_race("alttpr", slug)
    assert rt.room(slug)["status"]["value"] == "cancelled"
    assert client.stats["cancel"] == 2 and rt.count("POST", "/o/token") == 2


async def test_cancel_with_a_bot_of_another_category(rt):
    slug = rt.open_room()
    rt.add_category("sm", ["Any%"])
    rt.add_bot("sm", "sm-bot", "sm-secret")
    async with RacetimeClient(rt.base_url, "sm-bot", "sm-secret") as other:
        with pytest.raises(RacetimeNotFound):
            await other.cancel_race("sm", slug)  # the slug belongs to alttpr: never touched
        with pytest.raises(RacetimeAuthError):
            await other.cancel_race("alttpr", slug)
    assert rt.room(slug)["status"]["value"] == "open"


async def test_cancel_unknown_room_and_server_down(rt, client):
    with pytest.raises(RacetimeNotFound):
        await client.cancel_race("alttpr", "no-such-1234")
    slug = rt.open_room()
    rt.down()
    with pytest.raises(RacetimeUnavailable):
        await client.cancel_race("alttpr", slug)
    rt.up()


# ---------------------------------------------------------------- user OAuth (/racetime link)


async def test_authorization_code_flow(rt):
    async with user_client_for(rt) as client, httpx.AsyncClient() as browser:
        url = client.authorize_url("http://127.0.0.1:9/callback", state="s-123")
        query = parse_qs(urlsplit(url).query)
        assert query["response_type"] == ["code"] and query["scope"] == ["read"]
        assert query["client_id"] == [rt.oauth_client_id]
        redirect = await browser.get(url)
        assert redirect.status_code == 302
        location = urlsplit(redirect.headers["location"])
        assert location.path == "/callback"
        params = parse_qs(location.query)
        assert params["state"] == ["s-123"]

        token = await client.exchange_code(params["code"][0], "http://127.0.0.1:9/callback")
        assert token.expires_in == 36000 and token.scope == "read" and token.refresh_token
        assert token.access_token not in repr(token)
        user = await client.userinfo(token.access_token)
        assert user == User.from_json(rt.oauth_user, rt.base_url)
        assert (user.id, user.name) == ("7BzeW5ErWom9Xgpb", "Alice")

        with pytest.raises(RacetimeAuthError, match="invalid_grant"):  # a code works once
            await client.exchange_code(params["code"][0], "http://127.0.0.1:9/callback")
        renewed = await client.refresh_user_token(token.refresh_token)
        assert (await client.userinfo(renewed.access_token)).id == user.id
        with pytest.raises(RacetimeAuthError):
            await client.userinfo(token.access_token)  # rotated away
        assert client.stats["user_token"] == 3 and client.stats["userinfo"] == 3


async def test_bot_credentials_cannot_log_users_in(rt, client):
    with pytest.raises(RacetimeAuthError, match="unauthorized_client"):
        await client.exchange_code("whatever", "http://127.0.0.1:9/callback")
    await client.category_data("alttpr")
    bot_token = next(iter(rt.tokens))
    with pytest.raises(RacetimeAuthError):
        await client.userinfo(bot_token)
