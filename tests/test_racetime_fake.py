"""The fake RaceTime.gg must behave like the captured real site; these tests use raw HTTP on purpose."""

import asyncio
import base64
import json
import re
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import pytest

from racetime.durations import format_datetime, parse_datetime
from racetime.errors import RacetimeUnavailable
from racetime.models import RoomSettings, StartRaceRequest
from tests.fakes.racetime_data import captured_user, load_json
from tests.fakes.racetime_server import FakeRacetime, FakeRacetimeError, client_for

ALICE, BOB, CAROL = (captured_user(n) for n in ("Alice", "Bob", "Carol"))
SLUG_RE = re.compile(r"^[a-z]+-[a-z]+-\d{4}$")


@pytest.fixture
async def rt():
    """The fake with its listing cache off: these tests look at single requests (one test turns the cache on)."""
    async with FakeRacetime(seed=7) as fake:
        yield fake


@pytest.fixture
async def http(rt):
    async with httpx.AsyncClient(base_url=rt.base_url) as client:
        yield client


async def bot_token(http, rt, **extra):
    resp = await http.post(
        "/o/token",
        data={
            "client_id": rt.client_id,
            "client_secret": rt.client_secret,
            "grant_type": "client_credentials",
            **extra,
        },
    )
    assert resp.status_code == 200
    return resp.json()["access_token"]


async def bot_auth(http, rt):
    return {"Authorization": f"Bearer {await bot_token(http, rt)}"}


def keys_deep(value):
    """The key order of every object, recursively (lists: the first element stands for all)."""
    if isinstance(value, dict):
        return [(k, keys_deep(v)) for k, v in value.items()]
    if isinstance(value, list):
        return ["list", keys_deep(value[0])] if value and isinstance(value[0], dict) else "list"
    return None


def finished_like_capture(rt):
    """Rebuild captured/race_finished.json through the controls: Alice done, Bob dnf, Carol dq."""
    slug = rt.open_room(
        "alttpr",
        goal="Beat the game",
        info_user="Seed: https://alttpr.com/h/AbCdEf",
        info_bot="Preset: open",
        streaming_required=False,
    )
    for user in (ALICE, BOB, CAROL):
        rt.add_entrant(slug, user)
    rt.start(slug, started_at=datetime(2025, 6, 14, 18, 0, 27, 123456, tzinfo=UTC))
    rt.dq(slug, CAROL["id"])
    rt.dnf(slug, BOB["id"])
    rt.finish_entrant(slug, ALICE["id"], timedelta(hours=1, minutes=23, seconds=45, microseconds=678901))
    return slug


# ---------------------------------------------------------------- shapes


async def test_finished_race_matches_the_captured_sample(rt, http):
    slug = finished_like_capture(rt)
    resp = await http.get(f"/alttpr/{slug}/data")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    assert resp.headers["cache-control"] == "public, max-age=5, must-revalidate"
    assert "x-date-exact" in resp.headers
    race, captured = resp.json(), load_json("captured/race_finished.json")
    assert list(race) == list(captured)
    assert keys_deep(race) == keys_deep(captured)
    volatile = {
        "version",
        "name",
        "slug",
        "url",
        "data_url",
        "websocket_url",
        "websocket_bot_url",
        "websocket_oauth_url",
        "opened_at",
        "ended_at",
        "entrants",
    }
    assert {k: v for k, v in race.items() if k not in volatile} == {
        k: v for k, v in captured.items() if k not in volatile
    }
    for ours, theirs in zip(race["entrants"], captured["entrants"], strict=True):
        for key in ("user", "status", "finish_time", "finished_at", "place", "place_ordinal"):
            assert ours[key] == theirs[key], key


async def test_open_race_matches_the_captured_sample(rt, http):
    slug = rt.open_room("alttpr", goal="All dungeons", hide_comments=True, allow_non_entrant_chat=False)
    rt.add_entrant(slug, ALICE, ready=True)
    rt.add_entrant(slug, BOB, ready=False)
    rt.invite(slug, CAROL)
    race, captured = (await http.get(f"/alttpr/{slug}/data")).json(), load_json("captured/race_open.json")
    assert keys_deep(race) == keys_deep(captured)
    assert [e["status"] for e in race["entrants"]] == [e["status"] for e in captured["entrants"]]
    assert race["entrants_count"] == 2 and race["started_at"] is None
    assert race["hide_comments"] is True and race["allow_non_entrant_chat"] is False


async def test_category_and_summary_shapes(rt, http):
    rt.open_room("alttpr", info_user="listed")
    data = (await http.get("/alttpr/data")).json()
    captured = load_json("captured/category_data.json")
    assert list(data) == list(captured)
    assert keys_deep(data["current_races"]) == keys_deep(captured["current_races"])
    assert data["goals"] == captured["goals"] and data["owners"] == captured["owners"]


async def test_past_race_summary_shape(rt, http):
    finished_like_capture(rt)
    data = (await http.get("/alttpr/races/data", params={"show_entrants": "yes"})).json()
    assert keys_deep(data) == keys_deep(load_json("captured/category_past_races_show_entrants.json"))


# ---------------------------------------------------------------- errors


async def test_auth_failures_are_bare_403(rt, http):
    for headers in ({}, {"Authorization": "Bearer nope"}):
        for method, path in (("GET", "/o/alttpr/data"), ("POST", "/o/alttpr/startrace")):
            resp = await http.request(method, path, headers=headers, data={"goal": "Beat the game"})
            assert (resp.status_code, resp.content) == (403, b""), (method, path)


async def test_expired_token_is_bare_403(rt, http):
    token = await bot_token(http, rt)
    auth = {"Authorization": f"Bearer {token}"}
    assert (await http.get("/o/alttpr/data", headers=auth)).status_code == 200
    rt.expire_all_tokens()
    resp = await http.get("/o/alttpr/data", headers=auth)
    assert (resp.status_code, resp.content) == (403, b"")


async def test_bot_of_another_category(rt, http):
    rt.add_category("sm", ["Any%"])
    rt.add_bot("sm", "sm-bot", "sm-secret", name="SMBot")
    resp = await http.post(
        "/o/token",
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(b"sm-bot:sm-secret").decode()},
    )
    auth = {"Authorization": f"Bearer {resp.json()['access_token']}"}
    assert (await http.get("/o/alttpr/data", headers=auth)).status_code == 403
    valid = await http.post("/o/alttpr/startrace", headers=auth, data={"goal": "Beat the game"})
    assert (valid.status_code, valid.content) == (403, b"")
    # Validation runs first: an invalid form from the wrong bot still gets 422.
    invalid = await http.post("/o/alttpr/startrace", headers=auth, data={"start_delay": "5"})
    assert invalid.status_code == 422


async def test_422_shape_is_the_reference_example(rt, http):
    auth = await bot_auth(http, rt)
    resp = await http.post("/o/alttpr/startrace", headers=auth, data={"start_delay": "5", "time_limit": "100"})
    assert resp.status_code == 422 and resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {
        "errors": {
            "start_delay": ["Ensure this value is greater than or equal to 0:00:10."],
            "time_limit": ["Ensure this value is less than or equal to 3 days, 0:00:00."],
            "__all__": ["You need to set a goal for this race."],
        }
    }
    assert list(resp.json()["errors"]) == ["start_delay", "time_limit", "__all__"]


@pytest.mark.parametrize(
    ("form", "errors"),
    [
        (
            {"goal": "Beat the game", "start_delay": "61"},
            {"start_delay": ["Ensure this value is less than or equal to 0:01:00."]},
        ),
        (
            {"goal": "Beat the game", "time_limit": "0"},
            {"time_limit": ["Ensure this value is greater than or equal to 1:00:00."]},
        ),
        (
            {"goal": "Beat the game", "chat_message_delay": "91"},
            {"chat_message_delay": ["Ensure this value is less than or equal to 0:01:30."]},
        ),
        (
            {"goal": "Beat the game", "chat_message_delay": "-1"},
            {"chat_message_delay": ["Ensure this value is greater than or equal to 0:00:00."]},
        ),
        ({"goal": "Beat the game", "start_delay": "abc"}, {"start_delay": ["Enter a whole number."]}),
        ({"goal": "Beat the game", "start_delay": ""}, {"start_delay": ["This field is required."]}),
        (
            {"goal": "Beat the game", "custom_goal": "Mine"},
            {"__all__": ["The race must only have one goal."]},
        ),
        ({"goal": "beat the game"}, {"__all__": ["You need to set a goal for this race."]}),
        (
            {"custom_goal": "x" * 256},
            {
                "custom_goal": ["Ensure this value has at most 255 characters (it has 256)."],
                "__all__": ["You need to set a goal for this race."],
            },
        ),
    ],
)
async def test_422_messages(rt, http, form, errors):
    auth = await bot_auth(http, rt)
    resp = await http.post("/o/alttpr/startrace", headers=auth, data=form)
    assert (resp.status_code, resp.json()) == (422, {"errors": errors})


async def test_404s_are_html_and_trailing_slashes_404(rt, http):
    slug = rt.open_room()
    for path in (
        "/nope/data",
        f"/alttpr/{slug}x/data",
        "/alttpr/data/",
        f"/alttpr/{slug}/data/",
        "/o/alttpr/data/",
        "/alttpr/races/data/",
        "/nope/races/data",
    ):
        resp = await http.get(path)
        assert resp.status_code == 404, path
        assert resp.headers["content-type"].startswith("text/html"), path
    assert (await http.get(f"/alttpr/{slug}/data")).status_code == 200
    auth = await bot_auth(http, rt)
    assert (await http.post("/o/nope/startrace", headers=auth, data={"goal": "x"})).status_code == 404


# ---------------------------------------------------------------- token endpoint


async def test_token_endpoint(rt, http):
    resp = await http.post(
        "/o/token",
        data={
            "client_id": rt.client_id,
            "client_secret": rt.client_secret,
            "grant_type": "client_credentials",
        },
    )
    body = resp.json()
    assert resp.status_code == 200 and resp.headers["cache-control"] == "no-store"
    assert list(body) == list(load_json("captured/token_response.json"))
    assert body["expires_in"] == 36000 and body["token_type"] == "Bearer"
    assert body["scope"] == "read chat_message race_action create_race"
    assert re.fullmatch(r"[A-Za-z0-9]{30}", body["access_token"]) and "refresh_token" not in body
    scoped = await http.post(
        "/o/token",
        data={
            "client_id": rt.client_id,
            "client_secret": rt.client_secret,
            "grant_type": "client_credentials",
            "scope": "race_action read",
        },
    )
    assert scoped.json()["scope"] == "read race_action"
    basic = await http.post(
        "/o/token", data={"grant_type": "client_credentials"}, auth=(rt.client_id, rt.client_secret)
    )
    assert basic.status_code == 200
    bad = await http.post(
        "/o/token",
        data={"client_id": rt.client_id, "client_secret": "wrong", "grant_type": "client_credentials"},
    )
    assert (bad.status_code, bad.json()) == (401, {"error": "invalid_client"})
    grant = await http.post(
        "/o/token",
        data={"client_id": rt.client_id, "client_secret": rt.client_secret, "grant_type": "password"},
    )
    assert (grant.status_code, grant.json()) == (400, {"error": "unsupported_grant_type"})
    # A bot application is a client-credentials application only.
    code = await http.post(
        "/o/token",
        data={
            "client_id": rt.client_id,
            "client_secret": rt.client_secret,
            "grant_type": "authorization_code",
            "code": "x",
        },
    )
    assert (code.status_code, code.json()) == (400, {"error": "unauthorized_client"})


async def test_token_lifetime_is_configurable():
    async with FakeRacetime(token_expires_in=120) as rt, httpx.AsyncClient(base_url=rt.base_url) as http:
        resp = await http.post(
            "/o/token",
            data={
                "client_id": rt.client_id,
                "client_secret": rt.client_secret,
                "grant_type": "client_credentials",
            },
        )
        assert resp.json()["expires_in"] == 120


# ---------------------------------------------------------------- startrace and edit


async def test_boolean_parsing_is_djangos(rt, http):
    auth = await bot_auth(http, rt)
    form = {
        "goal": "Beat the game",
        "unlisted": "0",
        "hide_comments": "no",
        "auto_start": "False",
        "allow_comments": "",
        "ranked": "FALSE",
        "invitational": "on",
    }
    resp = await http.post("/o/alttpr/startrace", headers=auth, data=form)
    assert resp.status_code == 201 and resp.content == b""
    race = (await http.get(resp.headers["location"] + "/data")).json()
    assert race["unlisted"] is True  # "0" is TRUE
    assert race["hide_comments"] is True  # so is "no"
    assert race["auto_start"] is False and race["allow_comments"] is False and race["ranked"] is False
    assert race["status"]["value"] == "invitational"
    assert race["streaming_required"] is True  # missing key: the model default, not the category's
    assert race["info"] == "" and race["info_bot"] == "" and race["info_user"] == ""


async def test_startrace_creates_a_room(rt, http):
    auth = await bot_auth(http, rt)
    resp = await http.post(
        "/o/alttpr/startrace",
        headers=auth,
        data={
            "goal": "Beat the game",
            "info_user": "Seed: x",
            "info_bot": "marker",
            "start_delay": "30",
            "time_limit": "48",
            "chat_message_delay": "5",
        },
    )
    location = resp.headers["location"]
    assert resp.status_code == 201 and re.fullmatch(r"/alttpr/[a-z]+-[a-z]+-\d{4}", location)
    race = (await http.get(location + "/data")).json()
    assert race["version"] == 1 and race["status"]["value"] == "open"
    assert race["info"] == "Seed: x\nmarker" and race["opened_by_bot"] == "TestBot" and race["opened_by"] is None
    assert (race["start_delay"], race["time_limit"], race["chat_message_delay"]) == (
        "P0DT00H00M30S",
        "P2DT00H00M00S",
        "P0DT00H00M05S",
    )
    slug = location.rsplit("/", 1)[1]
    assert rt.messages(slug)[0]["message"] == "Race opened automatically by TestBot"


async def test_an_answer_held_back_after_handling_leaves_the_room_open(rt, http):
    """The client gives up before the answer comes (as a process killed meanwhile would): the room exists."""
    auth = await bot_auth(http, rt)
    rt.set_delay(0.5, "/startrace", after=True)
    with pytest.raises(httpx.ReadTimeout):
        await http.post("/o/alttpr/startrace", headers=auth, data={"goal": "Beat the game"}, timeout=0.1)
    assert len(rt.rooms) == 1


async def test_edit_is_a_full_replace(rt, http):
    auth = await bot_auth(http, rt)
    resp = await http.post(
        "/o/alttpr/startrace",
        headers=auth,
        data={
            "goal": "Beat the game",
            "info_user": "Seed: x",
            "info_bot": "old",
            "streaming_required": "false",
        },
    )
    location = resp.headers["location"]
    edit = await http.post(f"/o{location}/edit", headers=auth, data={"goal": "All dungeons", "info_bot": "new"})
    assert (edit.status_code, edit.content) == (200, b"")
    race = (await http.get(location + "/data")).json()
    assert race["version"] == 2 and race["goal"]["name"] == "All dungeons"
    assert race["info_bot"] == "new"
    assert race["info_user"] == ""  # omitted: reset
    assert race["streaming_required"] is True  # omitted: back to the model default
    no_goal = await http.post(f"/o{location}/edit", headers=auth, data={"info_bot": "x"})
    assert no_goal.json() == {"errors": {"__all__": ["You need to set a goal for this race."]}}


async def test_edit_of_started_and_finished_races(rt, http):
    auth = await bot_auth(http, rt)
    slug = rt.open_room(info_bot="bot info", streaming_required=False)
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    edit = await http.post(
        f"/o/alttpr/{slug}/edit",
        headers=auth,
        data={"info_user": "now", "info_bot": "ignored", "goal": "All dungeons"},
    )
    assert edit.status_code == 200
    race = rt.room(slug)
    assert (race["info_user"], race["info_bot"], race["goal"]["name"]) == ("now", "bot info", "Beat the game")
    assert race["streaming_required"] is False  # not part of the started-race form
    rt.dnf(slug, ALICE["id"])
    rt.dnf(slug, BOB["id"])
    done = await http.post(f"/o/alttpr/{slug}/edit", headers=auth, data={"goal": "Beat the game"})
    assert (done.status_code, done.content) == (403, b"")


# ---------------------------------------------------------------- listings


async def test_unlisted_rooms_only_in_the_oauth_listing(rt, http):
    listed, hidden = rt.open_room(), rt.open_room(unlisted=True)
    auth = await bot_auth(http, rt)
    public = {r["name"] for r in (await http.get("/alttpr/data")).json()["current_races"]}
    private = {r["name"] for r in (await http.get("/o/alttpr/data", headers=auth)).json()["current_races"]}
    assert public == {f"alttpr/{listed}"} and private == {f"alttpr/{listed}", f"alttpr/{hidden}"}


async def test_oauth_listing_cache_is_stale_like_the_real_one():
    async with FakeRacetime(cache_ttl=60) as rt, httpx.AsyncClient(base_url=rt.base_url) as http:
        auth = await bot_auth(http, rt)
        assert (await http.get("/o/alttpr/data", headers=auth)).json()["current_races"] == []
        rt.open_room()
        assert (await http.get("/o/alttpr/data", headers=auth)).json()["current_races"] == []
        assert len((await http.get("/alttpr/data")).json()["current_races"]) == 1  # invalidated on save
        # A cache hit skips even the bot check.
        assert (await http.get("/o/alttpr/data")).status_code == 200


async def test_the_listing_cache_ages_on_the_clock_it_is_given():
    now = [1000.0]
    async with (
        FakeRacetime(cache_ttl=60, cache_clock=lambda: now[0]) as rt,
        httpx.AsyncClient(base_url=rt.base_url) as http,
    ):
        auth = await bot_auth(http, rt)
        assert (await http.get("/o/alttpr/data", headers=auth)).json()["current_races"] == []
        rt.open_room()
        now[0] += 59.9
        assert (await http.get("/o/alttpr/data", headers=auth)).json()["current_races"] == []
        now[0] += 0.1
        assert len((await http.get("/o/alttpr/data", headers=auth)).json()["current_races"]) == 1


async def test_a_held_request_waits_until_released(rt, http):
    auth = await bot_auth(http, rt)
    hold = rt.hold("POST", "/startrace")
    sent = asyncio.create_task(http.post("/o/alttpr/startrace", headers=auth, data={"goal": "Beat the game"}))
    held = await hold.arrival()
    assert (held.method, held.path, held.is_handled, rt.rooms) == ("POST", "/o/alttpr/startrace", False, [])
    assert len((await http.get("/o/alttpr/data", headers=auth)).json()["current_races"]) == 0  # others go on
    held.release()
    assert (await sent).status_code == 201 and held.is_handled and len(rt.rooms) == 1
    assert (await http.post("/o/alttpr/startrace", headers=auth, data={"goal": "Beat the game"})).status_code == 201


async def test_a_held_answer_comes_after_the_work_is_done(rt, http):
    auth = await bot_auth(http, rt)
    hold = rt.hold("POST", "/startrace", stage="answer")
    sent = asyncio.create_task(http.post("/o/alttpr/startrace", headers=auth, data={"goal": "Beat the game"}))
    held = await hold.arrival()
    await held.handled()
    assert len(rt.rooms) == 1 and not sent.done()  # the room exists; the client has not heard of it
    held.release()
    assert (await sent).status_code == 201


async def test_a_request_the_client_gave_up_on_is_still_handled(rt):
    hold = rt.hold("POST", "/startrace")
    async with client_for(rt, timeout=0.2) as client:
        await client.category_data("alttpr")  # the token first
        room = StartRaceRequest(RoomSettings(), goal="Beat the game")
        attempt = asyncio.create_task(client.start_race("alttpr", room))
        held = await hold.arrival()
        with pytest.raises(RacetimeUnavailable, match="timed out"):
            await attempt
    held.release()  # RaceTime.gg completes the startrace after the client gave up: the room exists all the same
    await held.handled()
    assert len(rt.rooms) == 1


async def test_past_races_pagination(rt, http):
    slugs = []
    for past in load_json("races_with_past_entrants.json")["races"][:3]:
        slugs.append(rt.open_room())
        rt.replay(slugs[-1], past)
    rt.open_room()  # still open: not listed
    unlisted = rt.open_room(unlisted=True)
    rt.replay(unlisted, load_json("races_with_past_entrants.json")["races"][3])
    page = (await http.get("/alttpr/races/data", params={"per_page": "2"})).json()
    assert (page["count"], page["num_pages"], len(page["races"])) == (3, 2, 2)
    assert "entrants" not in page["races"][0]
    assert [r["name"] for r in page["races"]] == [f"alttpr/{s}" for s in slugs[:2]]  # newest ended_at first
    last = (await http.get("/alttpr/races/data", params={"page": "2", "per_page": "2", "show_entrants": "1"})).json()
    assert len(last["races"]) == 1 and "entrants" in last["races"][0]
    assert (await http.get("/alttpr/races/data", params={"page": "9"})).json()["races"] == []
    assert (await http.get("/alttpr/races/data", params={"page": "x"})).status_code == 400
    capped = (await http.get("/alttpr/races/data", params={"per_page": "1000"})).json()
    assert capped["num_pages"] == 1
    assert (await http.get("/alttpr/races/data", params={"per_page": "x"})).json()["num_pages"] == 1


# ---------------------------------------------------------------- lifecycle controls


async def test_lifecycle_and_versions(rt):
    slug = rt.open_room()
    assert SLUG_RE.match(slug)
    versions = [rt.room(slug)["version"]]
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.add_entrant(slug, CAROL, ready=False)
    versions.append(rt.room(slug)["version"])
    rt.begin(slug)
    race = rt.room(slug)
    assert race["status"]["value"] == "pending" and race["entrants_count"] == 2  # Carol was not ready
    assert race["started_at"] > format_datetime(datetime.now(UTC))  # the countdown ends in the future
    assert {e["status"]["value"] for e in race["entrants"]} == {"ready"}
    rt.go(slug)
    assert rt.room(slug)["status"]["value"] == "in_progress"
    rt.finish_entrant(slug, BOB["id"], timedelta(minutes=50))
    rt.finish_entrant(slug, ALICE["id"], timedelta(minutes=40))
    race = rt.room(slug)
    versions.append(race["version"])
    assert race["status"]["value"] == "finished" and race["ended_at"] is not None
    assert [(e["user"]["name"], e["place"], e["place_ordinal"]) for e in race["entrants"]] == [
        ("Alice", 1, "1st"),
        ("Bob", 2, "2nd"),
    ]
    assert versions == sorted(set(versions))
    with pytest.raises(FakeRacetimeError):
        rt.cancel(slug)


async def test_everyone_forfeits_cancels(rt):
    slug = rt.open_room()
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.start(slug)
    rt.dnf(slug, ALICE["id"])
    assert rt.room(slug)["status"]["value"] == "in_progress"
    rt.dnf(slug, BOB["id"])
    race = rt.room(slug)
    assert race["status"]["value"] == "cancelled" and race["cancelled_at"] == race["ended_at"]
    assert race["recordable"] is False


async def test_dq_after_finishing_keeps_time_loses_place(rt):
    slug = rt.open_room()
    for user in (ALICE, BOB, CAROL):
        rt.add_entrant(slug, user)
    rt.start(slug)
    rt.finish_entrant(slug, ALICE["id"], timedelta(minutes=30))
    rt.finish_entrant(slug, BOB["id"], timedelta(minutes=40))
    rt.dq(slug, ALICE["id"])
    entrants = {e["user"]["name"]: e for e in rt.room(slug)["entrants"]}
    alice, bob = entrants["Alice"], entrants["Bob"]
    assert (bob["place"], bob["status"]["value"]) == (1, "done")
    assert (alice["status"]["value"], alice["place"], alice["finish_time"]) == ("dq", None, "P0DT00H30M00S")
    rt.end_race(slug)
    race = rt.room(slug)
    assert race["status"]["value"] == "finished"
    assert [e["status"]["value"] for e in race["entrants"]] == ["done", "dnf", "dq"]


async def test_cancel_control_and_marker_lookup(rt):
    slug = rt.open_room(info_bot="startline:race:42")
    rt.open_room(info_user="something else")
    rt.cancel(slug)
    race = rt.room(slug)
    assert race["status"]["value"] == "cancelled" and race["ended_at"] is None and race["cancelled_at"]
    assert [r["slug"] for r in rt.rooms_with_marker("startline:race:42")] == [slug]


async def test_countdown_ends_when_the_clock_passes_started_at(rt):
    slug = rt.open_room()
    rt.add_entrant(slug, ALICE)
    rt.add_entrant(slug, BOB)
    rt.begin(slug)
    started_at = parse_datetime(rt.room(slug)["started_at"])
    assert rt.room(slug)["status"]["value"] == "pending"
    rt.now = lambda: started_at + timedelta(seconds=1)
    race = rt.room(slug)
    assert race["status"]["value"] == "in_progress" and race["started_at"] == format_datetime(started_at)


async def test_racebot_auto_starts_when_everyone_is_ready():
    async with FakeRacetime(racebot=True) as rt:
        slug = rt.open_room()
        rt.add_entrant(slug, ALICE)
        rt.add_entrant(slug, BOB, ready=False)
        assert rt.room(slug)["status"]["value"] == "open"
        rt.set_ready(slug, BOB["id"])
        assert rt.room(slug)["status"]["value"] == "pending"


async def test_replay_keeps_real_users_and_times(rt):
    past = load_json("races_with_past_entrants.json")["races"][1]
    slug = rt.open_room()
    rt.replay(slug, past)
    race = rt.room(slug)
    assert race["status"]["value"] == "finished" and race["ended_at"] == past["ended_at"]
    assert race["started_at"] == past["started_at"]
    ours = {e["user"]["id"]: e for e in race["entrants"]}
    for entrant in past["entrants"]:
        mine = ours[entrant["user"]["id"]]
        assert mine["user"] == entrant["user"]
        assert (mine["status"], mine["finish_time"], mine["place"]) == (
            entrant["status"],
            entrant["finish_time"],
            entrant["place"],
        )


# ---------------------------------------------------------------- faults and request log


async def test_fault_controls(rt, http):
    rt.fail_next(1, status=502, path_contains="/data")
    assert (await http.get("/alttpr/data")).status_code == 502
    assert (await http.get("/alttpr/data")).status_code == 200
    rt.down()
    assert (await http.get("/alttpr/data")).status_code == 503
    rt.up()
    rt.drop_next(1, path_contains="/alttpr/data")
    with pytest.raises(httpx.RemoteProtocolError):
        await http.get("/alttpr/data")
    assert (await http.get("/alttpr/data")).status_code == 200
    assert rt.count("GET", "/alttpr/data") == 5 and rt.count(path_contains="/nothing") == 0
    assert rt.requests[-1] == ("GET", "/alttpr/data")


# ---------------------------------------------------------------- bot websocket


async def receive(ws):
    return json.loads((await asyncio.wait_for(ws.receive(), 5)).data)


async def test_bot_websocket_protocol(rt, http):
    token = await bot_token(http, rt)
    slug = rt.open_room()
    url = f"{rt.base_url.replace('http', 'ws')}/ws/o/bot/{slug}"
    async with aiohttp.ClientSession() as session:
        bot = await session.ws_connect(url, headers={"Authorization": f"Bearer {token}"})
        anonymous = await session.ws_connect(url)  # accepted without a token
        for ws in (bot, anonymous):
            assert [(await receive(ws))["type"] for _ in range(2)] == ["race.data", "race.renders"]
        await anonymous.send_json({"action": "ping"})
        assert (await receive(anonymous))["type"] == "pong"
        await anonymous.send_json({"action": "setinfo", "data": {"info_bot": "x"}})
        assert (await receive(anonymous))["errors"] == ["Permission denied. Check your authorization token."]

        await bot.send_json({"action": "setinfo", "data": {"info_bot": "Seed: y"}})
        for ws in (bot, anonymous):  # broadcast to everyone, in this order
            message, data, renders = [await receive(ws) for _ in range(3)]
            assert (message["type"], data["type"], renders["type"]) == (
                "chat.message",
                "race.data",
                "race.renders",
            )
            assert message["message"]["message"] == "##bot##TestBot## updated the race information."
            assert message["message"]["message_plain"] == "TestBot updated the race information."
            assert data["race"]["info_bot"] == "Seed: y" and data["version"] == data["race"]["version"]

        await bot.send_str("not json")
        assert (await receive(bot))["errors"] == [
            "Unable to process that message (encountered invalid or possibly corrupted data). Sorry about that."
        ]
        await bot.send_json({"action": "frobnicate"})
        assert (await receive(bot))["errors"] == [
            "Action is missing or not recognised. Check your input and try again."
        ]
        await bot.send_json({"action": "cancel"})
        assert (await receive(bot))["message"]["message"] == "This race has been cancelled by TestBot."
        assert (await receive(bot))["race"]["status"]["value"] == "cancelled"
        await receive(bot)
        await bot.send_json({"action": "cancel"})
        assert (await receive(bot))["errors"] == ["Cannot cancel a race that is in cancelled state."]
        # the anonymous socket saw the cancel broadcast but none of the bot's errors
        types = [(await receive(anonymous))["type"] for _ in range(3)]
        assert types == ["chat.message", "race.data", "race.renders"]
        await bot.send_json({"action": "ping"})
        await anonymous.send_json({"action": "ping"})
        assert (await receive(anonymous))["type"] == "pong"
        await bot.close()
        await anonymous.close()


async def test_bot_websocket_messages_and_unknown_room(rt, http):
    token = await bot_token(http, rt)
    slug = rt.open_room()
    base = rt.base_url.replace("http", "ws")
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await session.ws_connect(f"{base}/ws/o/bot/no-such-1234")
        async with session.ws_connect(f"{base}/ws/o/bot/{slug}?token={token}") as ws:
            await receive(ws)
            await receive(ws)
            await ws.send_json({"action": "message", "data": {"message": "hi", "guid": "ABC"}})
            assert (await receive(ws))["errors"][0].startswith("Bad request, no GUID supplied.")
            for _ in range(2):  # the repeat is silently ignored
                await ws.send_json({"action": "message", "data": {"message": "hi", "guid": "a-1"}})
            echo = await receive(ws)
            assert echo["message"]["bot"] == "TestBot" and echo["message"]["is_bot"] is True
            await ws.send_json({"action": "invite", "data": {"user": ALICE["id"]}})
            assert (await receive(ws))["message"]["message"] == "TestBot invites Alice#2418 to join the race."
            assert (await receive(ws))["race"]["entrants"][0]["status"]["value"] == "invited"
            await receive(ws)
            await ws.send_json({"action": "begin"})
            assert (await receive(ws))["errors"] == ["Race cannot be started yet."]
            await ws.send_json({"action": "gethistory"})
            history = (await receive(ws))["messages"]
            assert history[0]["message"] == "Race opened automatically by TestBot"


async def test_controls_refuse_impossible_transitions(rt):
    slug = rt.open_room()
    with pytest.raises(FakeRacetimeError):
        rt.finish_entrant(slug, ALICE["id"], timedelta(minutes=1))
    with pytest.raises(FakeRacetimeError):
        rt.go(slug)
    with pytest.raises(FakeRacetimeError):
        rt.room("no-such-1234")
