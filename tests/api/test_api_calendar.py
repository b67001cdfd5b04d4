"""The iCal feed and the routes that read and rotate its URL."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from icalendar import Calendar

from tests.api.conftest import FOREIGN_MARK, PLAYER_RACETIME, Api
from tests.api.test_api_core import assert_envelope


async def feed_path(api: Api, token: str = "manage") -> str:
    status, body, _ = await api.call("GET", "/api/v1/calendar", token=token)
    assert status == 200
    url = urlsplit(body["url"])
    assert body["url"].startswith("http://127.0.0.1:8080/api/v1/live-races.ics?key=")
    return f"{url.path}?{url.query}"


async def test_feed_lists_upcoming_races_without_seeds(api: Api) -> None:
    path = await feed_path(api)
    response = await api.client.get(path)
    assert response.status == 200
    assert response.content_type == "text/calendar"
    text = await response.text()
    calendar = Calendar.from_ical(text)
    events = list(calendar.walk("VEVENT"))
    assert [str(event["summary"]) for event in events] == ["tournament mine: race mine"]
    event = events[0]
    assert str(event["uid"]) == f"live-race-{api.mine.rid}@startline"
    assert event.decoded("dtstart").tzinfo is not None
    assert "Pool: pool mine" in str(event["description"])
    assert "seeds.example" not in text and FOREIGN_MARK not in text


async def test_cancelled_races_leave_the_feed(api: Api) -> None:
    path = await feed_path(api)
    await api.call(
        "POST", f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}/cancel", json={"reason": "rain"}
    )
    calendar = Calendar.from_ical(await (await api.client.get(path)).text())
    assert list(calendar.walk("VEVENT")) == []


async def test_open_races_carry_their_room_and_recorded_races_leave(api: Api) -> None:
    path = await feed_path(api)
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    _, opened, _ = await api.call("POST", race + "/open")
    slug = opened["racetime"]["slug"]
    text = await (await api.client.get(path)).text()
    [event] = Calendar.from_ical(text).walk("VEVENT")
    assert f"Room: {api.rt.base_url}/alttpr/{slug}" in str(event["description"])
    assert "seeds.example" not in text  # the room is open, but the feed never shows a seed
    api.rt.add_entrant(slug, PLAYER_RACETIME)
    api.rt.start(slug)
    api.rt.finish_entrant(slug, PLAYER_RACETIME["id"], timedelta(hours=1))
    assert (await api.call("POST", race + "/record"))[0] == 200
    calendar = Calendar.from_ical(await (await api.client.get(path)).text())
    assert list(calendar.walk("VEVENT")) == []


async def test_the_url_is_stable_until_rotated(api: Api) -> None:
    first = await feed_path(api)
    assert await feed_path(api) == first
    status, body, _ = await api.call("POST", "/api/v1/calendar/rotate")
    assert status == 200
    rotated = urlsplit(body["url"])
    assert f"{rotated.path}?{rotated.query}" != first
    old = await api.client.get(first)
    assert old.status == 404
    assert_envelope(await old.json(), "not_found", field="key")
    assert (await api.client.get(f"{rotated.path}?{rotated.query}")).status == 200
    status, audit, _ = await api.call("GET", "/api/v1/audit?action=calendar.rotate")
    assert len(audit["items"]) == 1


async def test_feed_needs_a_valid_key(api: Api) -> None:
    for path in ["/api/v1/live-races.ics", "/api/v1/live-races.ics?key=", "/api/v1/live-races.ics?key=guess"]:
        response = await api.client.get(path)
        assert response.status in (404, 422), path
        assert (await response.json())["error"]["code"] in ("not_found", "validation_error")


async def test_calendar_url_needs_manage_scope(api: Api) -> None:
    assert (await api.call("GET", "/api/v1/calendar", token="read"))[0] == 403
    assert (await api.call("POST", "/api/v1/calendar/rotate", token="read"))[0] == 403


async def test_each_guild_has_its_own_feed(api: Api) -> None:
    mine, theirs = await feed_path(api), await feed_path(api, token="other")
    assert mine != theirs
    text = await (await api.client.get(theirs)).text()
    assert FOREIGN_MARK in text and "race mine" not in text
