"""Each route's success and its domain errors, through the real aiohttp server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from db.models import Notification, NotificationStatus, Seed
from db.types import utcnow
from tests.api.conftest import NEWCOMER_RACETIME, PLAYER_RACETIME, Api
from tests.api.test_api_core import assert_envelope
from tests.conftest import GUILD

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def future(days: int = 3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime(ISO_Z)


# ---- tournaments, pools, seeds --------------------------------------------------------------------------


async def test_tournament_crud(api: Api) -> None:
    status, created, response = await api.call(
        "POST",
        "/api/v1/tournaments",
        json={
            "name": "Spring Qualifier",
            "runs_per_pool": 2,
            "custom_goal": "Beat the game",
            "announcement_channel_id": "123456789012345678",
        },
    )
    assert status == 201
    assert response.headers["Location"] == f"/api/v1/tournaments/{created['id']}"
    assert created["announcement_channel_id"] == "123456789012345678"  # Discord ids go out as strings
    assert created["created_at"].endswith("Z")
    tid = created["id"]
    assert (await api.call("GET", f"/api/v1/tournaments/{tid}", token="read"))[1] == created
    status, patched, _ = await api.call("PATCH", f"/api/v1/tournaments/{tid}", json={"racetime_goal": "Any%"})
    assert status == 200 and patched["racetime_goal"] == "Any%" and patched["custom_goal"] is None
    assert patched["scheduled_events"] is None  # follows the server's switch
    status, patched, _ = await api.call("PATCH", f"/api/v1/tournaments/{tid}", json={"scheduled_events": False})
    assert status == 200 and patched["scheduled_events"] is False
    status, body, _ = await api.call("PATCH", f"/api/v1/tournaments/{tid}", json={"scheduled_events": "maybe"})
    assert status == 422
    status, listed, _ = await api.call("GET", "/api/v1/tournaments", params={"search": "spring"}, token="read")
    assert [t["id"] for t in listed["items"]] == [tid]
    status, body, _ = await api.call("DELETE", f"/api/v1/tournaments/{tid}")
    assert status == 204 and body == b""
    assert (await api.call("GET", f"/api/v1/tournaments/{tid}"))[0] == 404


async def test_tournament_errors(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json={"name": "tournament mine"})
    assert status == 409
    assert_envelope(body, "conflict", field="name")
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json={"name": "x", "racetime_category": "a b"})
    assert status == 422
    assert_envelope(body, "validation_error", field="racetime_category")
    # A tournament with runs cannot be deleted.
    status, body, _ = await api.call("DELETE", f"/api/v1/tournaments/{api.mine.tid}")
    assert status == 409
    assert_envelope(body, "conflict")
    status, body, _ = await api.call("PATCH", "/api/v1/tournaments/999999", json={"name": "y"})
    assert status == 404


async def test_pool_crud_and_errors(api: Api) -> None:
    base = f"/api/v1/tournaments/{api.mine.tid}/pools"
    status, pool, response = await api.call("POST", base, json={"name": "Pool B", "description": "hard seeds"})
    assert status == 201 and response.headers["Location"] == f"{base}/{pool['id']}"
    assert (await api.call("POST", base, json={"name": "pool b"}))[0] == 409
    status, listed, _ = await api.call("GET", base, params={"limit": "1"}, token="read")
    assert len(listed["items"]) == 1 and listed["next_cursor"]
    status, rest, _ = await api.call("GET", base, params={"cursor": listed["next_cursor"]}, token="read")
    assert [p["id"] for p in rest["items"]] == [pool["id"]] and rest["next_cursor"] is None
    status, patched, _ = await api.call("PATCH", f"{base}/{pool['id']}", json={"name": "Pool C"})
    assert status == 200 and patched["name"] == "Pool C"
    assert (await api.call("GET", f"{base}/{pool['id']}", token="read"))[1]["name"] == "Pool C"
    assert (await api.call("DELETE", f"{base}/{pool['id']}"))[0] == 204
    status, _body, _ = await api.call("DELETE", f"{base}/{api.mine.pid}")  # has runs and a race
    assert status == 409


async def test_seed_crud_and_seed_privacy(api: Api) -> None:
    base = f"/api/v1/tournaments/{api.mine.tid}/pools/{api.mine.pid}/seeds"
    status, seed, response = await api.call("POST", base, json={"url": "https://seeds.example/new", "notes": "n"})
    assert status == 201 and response.headers["Location"] == f"{base}/{seed['id']}"
    assert seed["url"] == "https://seeds.example/new"
    # A read token never sees the URL of a seed not yet raced in an opened room.
    status, read_view, _ = await api.call("GET", f"{base}/{seed['id']}", token="read")
    assert status == 200 and read_view["url"] is None
    assert (await api.call("GET", f"{base}/{seed['id']}"))[1]["url"] == "https://seeds.example/new"
    status, listed, _ = await api.call("GET", base, token="read")
    assert all(item["url"] is None for item in listed["items"])
    assert (await api.call("POST", base, json={"url": "https://seeds.example/new"}))[0] == 409
    status, body, _ = await api.call("POST", base, json={"url": "ftp://nope"})
    assert status == 422 and body["error"]["details"]["field"] == "url"
    status, patched, _ = await api.call("PATCH", f"{base}/{seed['id']}", json={"notes": "changed"})
    assert status == 200 and patched["notes"] == "changed"
    status, body, _ = await api.call("PATCH", f"{base}/{api.mine.spare_sid}", json={"url": "https://x.example/y"})
    assert status == 409  # raced seeds keep their URL
    assert (await api.call("DELETE", f"{base}/{seed['id']}"))[0] == 204
    assert (await api.call("DELETE", f"{base}/{api.mine.spare_sid}"))[0] == 409


async def test_used_seed_url_is_visible_to_read_tokens(api: Api) -> None:
    async with api.app.db.transaction() as session:
        seed = await session.get(Seed, api.mine.sid)
        seed.used_in_live_race = True
    path = f"/api/v1/tournaments/{api.mine.tid}/pools/{api.mine.pid}/seeds/{api.mine.sid}"
    assert (await api.call("GET", path, token="read"))[1]["url"] == "https://seeds.example/mine/1"


# ---- room profiles --------------------------------------------------------------------------------------


async def test_room_profile_crud_and_errors(api: Api) -> None:
    status, profile, response = await api.call(
        "POST", "/api/v1/room-profiles", json={"name": "Relaxed", "time_limit": 48, "streaming_required": True}
    )
    assert status == 201 and response.headers["Location"] == f"/api/v1/room-profiles/{profile['id']}"
    assert profile["time_limit"] == 48 and profile["start_delay"] is None
    status, body, _ = await api.call("POST", "/api/v1/room-profiles", json={"name": "x", "time_limit": 100})
    assert status == 422 and body["error"]["details"]["field"] == "time_limit"
    assert (await api.call("POST", "/api/v1/room-profiles", json={"name": "relaxed"}))[0] == 409
    path = f"/api/v1/room-profiles/{profile['id']}"
    status, patched, _ = await api.call("PATCH", path, json={"time_limit": None, "start_delay": 30})
    assert status == 200 and patched["time_limit"] is None and patched["start_delay"] == 30
    status, listed, _ = await api.call("GET", "/api/v1/room-profiles", token="read")
    assert {p["name"] for p in listed["items"]} == {"profile mine", "Relaxed"}
    assert (await api.call("GET", path, token="read"))[0] == 200
    assert (await api.call("DELETE", path))[0] == 204
    assert (await api.call("GET", path))[0] == 404


# ---- live races -----------------------------------------------------------------------------------------


async def test_live_race_lifecycle_through_the_api(api: Api) -> None:
    races = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    status, race, response = await api.call(
        "POST",
        races,
        json={
            "pool_id": api.mine.pid,
            "scheduled_at": future(),
            "title": "Finals",
            "episode_id": "ep-1",
            "room_profile_id": api.mine.profile_id,
            "room": {"start_delay": 30, "unlisted": True},
        },
    )
    assert status == 201, race
    rid = race["id"]
    assert response.headers["Location"] == f"{races}/{rid}"
    assert race["status"] == "scheduled" and race["room"] == {"start_delay": 30, "unlisted": True}
    assert race["pool"] == {"id": api.mine.pid, "name": "pool mine"}
    assert race["scheduled_at"].endswith("Z") and race["room_opens_at"] < race["scheduled_at"]
    assert race["racetime"] is None and race["seed"] is None
    status, edited, _ = await api.call("PATCH", f"{races}/{rid}", json={"title": "Grand Finals"})
    assert status == 200 and edited["title"] == "Grand Finals"

    status, opened, _ = await api.call("POST", f"{races}/{rid}/open")
    assert status == 200 and opened["status"] == "room_open", opened
    slug = opened["racetime"]["slug"]
    assert opened["racetime"] == {"slug": slug, "url": f"{api.rt.base_url}/alttpr/{slug}", "status": "open"}
    # The seed is chosen at open: the pool's seed no other race holds (the seeded race holds the first one).
    assert opened["seed"] == {"id": api.mine.spare_sid, "url": "https://seeds.example/mine/2"}
    room = api.rt.room(slug)
    assert (room["start_delay"], room["unlisted"]) == ("P0DT00H00M30S", True)
    assert "https://seeds.example/mine/2" in room["info_user"]
    status, body, _ = await api.call("PATCH", f"{races}/{rid}", json={"pool_id": api.mine.pid})
    assert status == 409
    assert_envelope(body, "invalid_transition")
    assert (await api.call("POST", f"{races}/{rid}/open"))[0] == 409
    assert api.rt.count("POST", "/startrace") == 1
    # Nothing to record while the room is open, not even with force: the race has not started.
    for force, says in ((False, "is open; results are recorded once it is over"), (True, "has not started yet")):
        status, body, _ = await api.call("POST", f"{races}/{rid}/record", json={"force": force})
        assert status == 409 and says in assert_envelope(body, "invalid_transition")["message"]

    # A newcomer and Carol (who already ran this pool, so is not counted) race; the newcomer finishes.
    newcomer = "500000000000000001"
    await api.call(
        "PUT",
        f"/api/v1/players/{newcomer}",
        json={"display_name": "Alice", "racetime_id": NEWCOMER_RACETIME["id"], "racetime_name": "Alice"},
    )
    for user in (NEWCOMER_RACETIME, PLAYER_RACETIME):
        api.rt.add_entrant(slug, user)
    api.rt.start(slug)
    api.rt.finish_entrant(slug, NEWCOMER_RACETIME["id"], timedelta(hours=1, minutes=30))
    api.rt.dnf(slug, PLAYER_RACETIME["id"])
    status, recorded, _ = await api.call("POST", f"{races}/{rid}/record", json={})
    assert status == 200 and recorded["status"] == "finished", recorded
    # both were in the room at the start; only the newcomer got a run (and finished)
    assert (recorded["entrant_count"], recorded["participant_count"], recorded["finisher_count"]) == (2, 1, 1)
    assert recorded["racetime"]["status"] == "finished" and recorded["started_at"] and recorded["ended_at"]
    assert (await api.call("POST", f"{races}/{rid}/record"))[0] == 409  # already recorded, no force
    status, again, _ = await api.call("POST", f"{races}/{rid}/record", json={"force": True})
    assert status == 200 and again["finisher_count"] == 1  # reconciling with an unchanged room changes nothing
    assert (await api.call("POST", f"{races}/{rid}/cancel", json={"reason": "late"}))[0] == 409
    assert (await api.call("DELETE", f"{races}/{rid}"))[0] == 409

    status, results, _ = await api.call("GET", f"{races}/{rid}/results", token="read")
    assert status == 200 and results["race"]["id"] == rid
    first, second = results["entrants"]
    assert (first["discord_user_id"], first["status"], first["place"], first["counted"]) == (
        newcomer,
        "finished",
        1,
        True,
    )
    assert first["elapsed_seconds"] == 5400.0 and first["run_id"] is not None and first["score"] is not None
    assert (second["discord_user_id"], second["status"], second["counted"], second["run_id"]) == (
        str(api.mine.discord_user_id),
        "forfeit",
        False,
        None,
    )
    assert second["reason"] == "Already ran 1 of 1 in pool pool mine"
    status, runs, _ = await api.call("GET", f"/api/v1/tournaments/{api.mine.tid}/runs?discord_user_id={newcomer}")
    assert [run["id"] for run in runs["items"]] == [first["run_id"]]


async def test_live_race_create_errors(api: Api) -> None:
    races = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime(ISO_Z)
    status, body, _ = await api.call("POST", races, json={"pool_id": api.mine.pid, "scheduled_at": past})
    assert status == 422 and body["error"]["details"]["field"] == "scheduled_at"
    status, body, _ = await api.call("POST", races, json={"pool_id": 999999, "scheduled_at": future()})
    assert status == 404 and body["error"]["details"]["field"] == "pool_id"
    status, body, _ = await api.call(
        "POST", races, json={"pool_id": api.mine.pid, "scheduled_at": future(), "room": {"colour": "red"}}
    )
    assert status == 422 and body["error"]["details"]["field"] == "room.colour"
    ok = {"pool_id": api.mine.pid, "scheduled_at": future(), "episode_id": "dup"}
    assert (await api.call("POST", races, json=ok))[0] == 201
    status, body, _ = await api.call("POST", races, json=ok)
    assert status == 409 and body["error"]["details"]["field"] == "episode_id"
    # An offset other than Z is accepted and normalised to UTC.
    status, race, _ = await api.call(
        "POST", races, json={"pool_id": api.mine.pid, "scheduled_at": "2031-06-01T21:00:00+02:00"}
    )
    assert status == 201 and race["scheduled_at"] == "2031-06-01T19:00:00Z"


async def test_live_race_list_get_filter_and_seed_privacy(api: Api) -> None:
    races = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    status, listed, _ = await api.call("GET", races, token="read")
    assert status == 200 and [r["id"] for r in listed["items"]] == [api.mine.rid]
    assert listed["items"][0]["seed"] is None  # read token, room not open
    status, manage_view, _ = await api.call("GET", f"{races}/{api.mine.rid}")
    assert manage_view["seed"] == {"id": api.mine.sid, "url": "https://seeds.example/mine/1"}
    await api.call("POST", f"{races}/{api.mine.rid}/open")
    status, read_view, _ = await api.call("GET", f"{races}/{api.mine.rid}", token="read")
    assert read_view["seed"] == {"id": api.mine.sid, "url": "https://seeds.example/mine/1"}
    status, filtered, _ = await api.call("GET", f"{races}?status=scheduled&status=cancelled", token="read")
    assert filtered["items"] == []
    status, filtered, _ = await api.call("GET", f"{races}?status=room_open", token="read")
    assert [r["id"] for r in filtered["items"]] == [api.mine.rid]
    status, body, _ = await api.call("GET", f"{races}?status=lost", token="read")
    assert status == 422 and body["error"]["details"]["field"] == "status.0"
    assert (await api.call("GET", f"{races}/999999", token="read"))[0] == 404


async def test_race_under_the_wrong_tournament_is_404(api: Api) -> None:
    _status, other, _ = await api.call("POST", "/api/v1/tournaments", json={"name": "Another"})
    path = f"/api/v1/tournaments/{other['id']}/live-races/{api.mine.rid}"
    for method, suffix in [("GET", ""), ("GET", "/eligible"), ("GET", "/results"), ("GET", "/notifications")]:
        assert (await api.call(method, path + suffix))[0] == 404, suffix


async def test_cancel_and_delete(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    status, body, _ = await api.call("POST", race + "/cancel", json={})
    assert status == 422 and body["error"]["details"]["field"] == "reason"
    status, cancelled, _ = await api.call("POST", race + "/cancel", json={"reason": "Host is ill"})
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["cancel_reason"] == "Host is ill"
    assert (await api.call("POST", race + "/cancel", json={"reason": "again"}))[0] == 409
    assert (await api.call("DELETE", race))[0] == 204
    assert (await api.call("GET", race))[0] == 404


async def test_edit_requires_a_change(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    status, _body, _ = await api.call("PATCH", race, json={})
    assert status == 422


async def test_scheduled_across_the_guild(api: Api) -> None:
    status, body, _ = await api.call("GET", "/api/v1/live-races/scheduled", token="read")
    assert status == 200 and [r["id"] for r in body["items"]] == [api.mine.rid]
    status, body, _ = await api.call("GET", "/api/v1/live-races/scheduled?tournament_id=999", token="read")
    assert status == 404
    assert_envelope(body, "not_found", field="tournament_id")


async def test_eligibility(api: Api) -> None:
    await api.call("PUT", "/api/v1/players/500000000000000001", json={"display_name": "newcomer"})
    status, body, _ = await api.call(
        "GET", f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}/eligible", token="read"
    )
    assert status == 200
    assert body["eligible"] == []
    reasons = {entry["player"]["discord_user_id"]: entry["reason"] for entry in body["ineligible"]}
    assert reasons == {
        "300000000000000001": "Already ran 1 of 1 in pool pool mine",
        "500000000000000001": "Link your RaceTime.gg account with /racetime link",
    }


async def test_notification_log_and_resend(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    status, log, _ = await api.call("GET", race + "/notifications")
    assert status == 200 and len(log["items"]) == 1
    entry = log["items"][0]
    assert entry["status"] == "failed" and entry["event_type"] == "live_race_scheduled" and entry["event_code"] == 415
    assert (await api.call("GET", race + "/notifications?status=sent"))[1]["items"] == []
    assert (await api.call("GET", race + "/notifications", token="read"))[0] == 403
    status, resent, _ = await api.call("POST", race + "/notifications/resend")
    assert status == 200 and resent == {"requeued": 1, "expired": 0}
    async with api.app.db.read() as session:
        statuses = (await session.scalars(select(Notification.status).where(Notification.guild_id == GUILD))).all()
    assert statuses == [NotificationStatus.PENDING]


async def test_a_room_that_cannot_open_alerts_the_moderators_in_the_delivery_log(api: Api) -> None:
    tournament = f"/api/v1/tournaments/{api.mine.tid}"
    await api.call("PATCH", tournament, json={"announcement_channel_id": "123456789012345678"})
    _, empty_pool, _ = await api.call("POST", tournament + "/pools", json={"name": "No seeds yet"})
    _, race, _ = await api.call(
        "POST", tournament + "/live-races", json={"pool_id": empty_pool["id"], "scheduled_at": future()}
    )
    path = f"{tournament}/live-races/{race['id']}"
    status, body, _ = await api.call("POST", path + "/open")
    assert status == 409
    assert "has no seed left" in assert_envelope(body, "conflict")["message"]
    assert api.rt.count("POST", "/startrace") == 0
    status, log, _ = await api.call("GET", path + "/notifications")
    assert status == 200
    # The channel's post about the new race, then the alert (no subscribable event: no type, no code).
    announcement, alert = log["items"]
    assert (announcement["event_type"], announcement["event_code"]) == ("live_race_scheduled", 415)
    assert (alert["kind"], alert["event_type"], alert["event_code"]) == ("channel", None, None)
    assert alert["channel_id"] == "123456789012345678" and alert["status"] == "pending"
    _, again, _ = await api.call("GET", path)
    assert again["status"] == "scheduled" and "has no seed left" in again["last_error"]


async def test_open_maps_racetime_refusals_and_outages(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    api.rt.down()
    status, body, _ = await api.call("POST", race + "/open")
    assert status == 503
    assert "try again by itself" in assert_envelope(body, "upstream_unavailable")["message"]
    api.rt.up()
    await api.call("PATCH", f"/api/v1/tournaments/{api.mine.tid}", json={"racetime_goal": "No such goal"})
    status, body, _ = await api.call("POST", race + "/open")
    assert status == 422
    assert "You need to set a goal" in assert_envelope(body, "validation_error", field="room")["message"]
    _, still, _ = await api.call("GET", race)
    assert still["status"] == "scheduled" and still["racetime"] is None


async def test_cancelling_an_open_race_cancels_its_room(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    _, opened, _ = await api.call("POST", race + "/open")
    slug = opened["racetime"]["slug"]
    status, cancelled, _ = await api.call("POST", race + "/cancel", json={"reason": "Host is ill"})
    assert status == 200 and cancelled["status"] == "cancelled" and cancelled["last_error"] is None
    assert api.rt.room(slug)["status"]["value"] == "cancelled"
    assert (await api.call("DELETE", race))[0] == 204


# ---- players, runs, leaderboard, audit ------------------------------------------------------------------


async def test_put_player_creates_then_updates(api: Api) -> None:
    path = "/api/v1/players/500000000000000001"
    status, created, response = await api.call("PUT", path, json={"display_name": "Alice"})
    assert status == 201 and response.headers["Location"] == path
    assert created["discord_user_id"] == "500000000000000001"
    status, updated, _ = await api.call(
        "PUT", path, json={"display_name": "Alice B", "racetime_id": "7BzeW5ErWom9Xgpb", "racetime_name": "alice"}
    )
    assert status == 200 and updated["racetime_name"] == "alice" and updated["display_name"] == "Alice B"
    assert (await api.call("GET", path, token="read"))[1]["display_name"] == "Alice B"
    status, linked, _ = await api.call("GET", "/api/v1/players?linked=true", token="read")
    assert {p["discord_user_id"] for p in linked["items"]} == {"300000000000000001", "500000000000000001"}
    status, body, _ = await api.call("PUT", path, json={"display_name": "x", "racetime_id": "bad id!"})
    assert status == 422 and body["error"]["details"]["field"] == "racetime_id"
    status, body, _ = await api.call(
        "PUT", "/api/v1/players/600000000000000001", json={"display_name": "Mallory", "racetime_id": "7BzeW5ErWom9Xgpb"}
    )
    assert status == 409  # that RaceTime.gg account is Alice's
    assert (await api.call("GET", "/api/v1/players/700000000000000001"))[0] == 404


async def test_runs_import_list_get_reattempt(api: Api) -> None:
    runs = f"/api/v1/tournaments/{api.mine.tid}/runs"
    await api.call("PUT", "/api/v1/players/500000000000000001", json={"display_name": "Bob"})
    finished_at = (utcnow() - timedelta(hours=2)).strftime(ISO_Z)
    status, run, response = await api.call(
        "POST",
        runs,
        json={
            "discord_user_id": 500000000000000001,
            "seed_id": api.mine.spare_sid,
            "status": "finished",
            "elapsed_seconds": 6000.25,
            "finished_at": finished_at,
        },
    )
    assert status == 201, run
    assert response.headers["Location"] == f"{runs}/{run['id']}"
    assert run["player"]["discord_user_id"] == "500000000000000001" and run["elapsed_seconds"] == 6000.25
    assert run["end_time"] == finished_at and run["score"] is not None
    assert (await api.call("GET", f"{runs}/{run['id']}", token="read"))[1]["id"] == run["id"]
    status, mine, _ = await api.call("GET", f"{runs}?discord_user_id=500000000000000001", token="read")
    assert [r["id"] for r in mine["items"]] == [run["id"]]
    status, _again, _ = await api.call(
        "POST",
        runs,
        json={"discord_user_id": "500000000000000001", "seed_id": api.mine.spare_sid, "status": "forfeit"},
    )
    assert status == 409  # already ran this seed
    status, reattempted, _ = await api.call("POST", f"{runs}/{run['id']}/reattempt")
    assert status == 200 and reattempted["reattempted"] is True
    assert (await api.call("POST", f"{runs}/{run['id']}/reattempt"))[0] == 409
    assert (await api.call("POST", f"{runs}/999999/reattempt"))[0] == 404


async def test_run_import_errors(api: Api) -> None:
    runs = f"/api/v1/tournaments/{api.mine.tid}/runs"
    base = {"discord_user_id": str(api.mine.discord_user_id), "seed_id": api.mine.sid}
    cases = [
        ({**base, "status": "finished"}, 422, "elapsed_seconds"),
        ({**base, "status": "won"}, 422, "status"),
        ({**base, "status": "finished", "elapsed_seconds": -1}, 422, "elapsed_seconds"),
        ({**base, "status": "forfeit", "finished_at": "2026-01-01T10:00:00"}, 422, "finished_at"),
        ({**base, "discord_user_id": "12ab", "status": "forfeit"}, 422, "discord_user_id"),
        ({**base, "discord_user_id": True, "status": "forfeit"}, 422, "discord_user_id"),
        ({**base, "discord_user_id": "999999999999999", "status": "forfeit"}, 404, "discord_user_id"),
        ({**base, "seed_id": 999999, "status": "forfeit"}, 404, "seed_id"),
    ]
    for body, expected, field in cases:
        status, answer, _ = await api.call("POST", runs, json=body)
        assert (status, answer["error"]["details"].get("field")) == (expected, field), (body, answer)


async def test_leaderboard(api: Api) -> None:
    status, board, _ = await api.call("GET", f"/api/v1/tournaments/{api.mine.tid}/leaderboard", token="read")
    assert status == 200
    assert board["pools"] == [{"id": api.mine.pid, "name": "pool mine"}]
    [entry] = board["entries"]
    assert entry["rank"] == 1 and entry["discord_user_id"] == "300000000000000001" and entry["score"] == 100.0
    assert (await api.call("GET", "/api/v1/tournaments/999999/leaderboard"))[0] == 404


async def test_audit_records_the_token_as_actor(api: Api) -> None:
    await api.call("POST", "/api/v1/tournaments", json={"name": "Audited"})
    status, body, _ = await api.call("GET", "/api/v1/audit?action=tournament.create&limit=1", token="read")
    assert status == 200
    [entry] = body["items"]
    assert entry["actor"]["type"] == "token" and entry["actor"]["name"] == "manage"
    assert entry["details"]["name"] == "Audited"
    status, older, _ = await api.call("GET", "/api/v1/audit", params={"limit": "2"}, token="read")
    assert older["next_cursor"] and older["items"][0]["id"] > older["items"][1]["id"]


async def test_health_needs_no_token(api: Api) -> None:
    status, body, _ = await api.call("GET", "/api/v1/health", token=None)
    assert status == 200 and body["status"] == "ok" and body["database"] == "ok"


async def test_nineteen_digit_discord_ids_round_trip_as_strings(api: Api) -> None:
    snowflake = "1234567890123456789"  # beyond JavaScript's 2**53
    status, created, _ = await api.call("PUT", f"/api/v1/players/{snowflake}", json={"display_name": "Big"})
    assert status == 201 and created["discord_user_id"] == snowflake
    status, _body, _ = await api.call("PUT", "/api/v1/players/99999999999999999999", json={"display_name": "x"})
    assert status == 404
