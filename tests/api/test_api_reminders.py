"""The reminder offsets and RSVP routes: round trips, bad input, read tokens, another guild's race."""

from __future__ import annotations

from tests.api.conftest import Api
from tests.conftest import GUILD


def rsvps(api: Api, rid: int | None = None) -> str:
    return f"/api/v1/tournaments/{api.mine.tid}/live-races/{rid or api.mine.rid}/rsvps"


async def test_reminder_offsets_round_trip_and_bad_offsets_are_refused(api: Api) -> None:
    path = f"/api/v1/players/{api.mine.discord_user_id}/reminders"
    status, body, _ = await api.call("GET", path, token="read")
    assert (status, body) == (200, {"offsets_minutes": []})
    status, body, _ = await api.call("PUT", path, json={"offsets_minutes": [10, 1440]})
    assert (status, body) == (200, {"offsets_minutes": [1440, 10]})
    for bad in ([7], [-10], [10, 30, 60, 180], ["soon"], [True], None):
        status, body, _ = await api.call("PUT", path, json={"offsets_minutes": bad})
        assert status == 422, bad
    status, body, _ = await api.call("GET", path, token="read")
    assert body == {"offsets_minutes": [1440, 10]}  # refused changes changed nothing
    status, _, _ = await api.call("PUT", path, json={"offsets_minutes": [60]}, token="read")
    assert status == 403


async def test_rsvp_round_trip_and_a_deleted_or_foreign_race_is_not_found(api: Api) -> None:
    user = api.mine.discord_user_id
    status, body, _ = await api.call("PUT", f"{rsvps(api)}/{user}")
    assert (status, body) == (200, {"changed": True})
    status, body, _ = await api.call("PUT", f"{rsvps(api)}/{user}")
    assert (status, body) == (200, {"changed": False})
    status, body, _ = await api.call("GET", rsvps(api), token="read")
    assert status == 200 and [item["discord_user_id"] for item in body["items"]] == [str(user)]
    status, body, _ = await api.call("DELETE", f"{rsvps(api)}/{user}")
    assert (status, body) == (200, {"changed": True})
    status, body, _ = await api.call("GET", rsvps(api), token="read")
    assert body["items"] == []
    foreign = f"/api/v1/tournaments/{api.foreign.tid}/live-races/{api.foreign.rid}/rsvps/{user}"
    status, _, _ = await api.call("PUT", foreign)
    assert status == 404
    status, _, _ = await api.call("PUT", f"{rsvps(api, 999999)}/{user}")
    assert status == 404
    status, _, _ = await api.call("PUT", f"{rsvps(api)}/0")
    assert status in (404, 422)


async def test_rsvps_show_who_pressed_interested_beside_them(api: Api) -> None:
    """The seeded player pressed Interested on the race's Discord Scheduled Event (tests/api/conftest.py)."""
    status, body, _ = await api.call("GET", rsvps(api), token="read")
    assert status == 200 and body["items"] == []
    assert body["interested"] == [{"discord_user_id": str(api.mine.discord_user_id), "display_name": "player mine"}]


async def test_the_guild_default_reminders_round_trip_and_bad_ones_are_refused(api: Api) -> None:
    path = "/api/v1/settings/reminders"
    status, body, _ = await api.call("GET", path, token="read")
    assert (status, body) == (200, {"offsets_minutes": [60]})  # seeded
    status, body, _ = await api.call("PUT", path, json={"offsets_minutes": [10, 1440]})
    assert (status, body) == (200, {"offsets_minutes": [1440, 10]})
    for bad in ([7], [-10], [0], [10, 30, 60, 180], ["soon"], [True], None, "1h"):
        status, body, _ = await api.call("PUT", path, json={"offsets_minutes": bad})
        assert status == 422, bad
    for malformed in ({}, {"offsets_minutes": [60], "extra": 1}):
        status, _, _ = await api.call("PUT", path, json=malformed)
        assert status in (400, 422), malformed
    status, _, _ = await api.call("PUT", path, json={"offsets_minutes": [60]}, token="read")
    assert status == 403
    status, _, _ = await api.call("PUT", path, json={"offsets_minutes": [60]}, token=None)
    assert status == 401
    status, body, _ = await api.call("GET", path, token="other")
    assert body == {"offsets_minutes": [60]}  # the other guild's own default, untouched
    status, body, _ = await api.call("GET", path, token="read")
    assert body == {"offsets_minutes": [1440, 10]}  # refused changes changed nothing
    status, body, _ = await api.call("PUT", path, json={"offsets_minutes": []})
    assert (status, body) == (200, {"offsets_minutes": []})
    # A player's own choice wins over the default.
    await api.call("PUT", path, json={"offsets_minutes": [1440]})
    player = f"/api/v1/players/{api.mine.discord_user_id}/reminders"
    await api.call("PUT", player, json={"offsets_minutes": [30]})
    assert await api.app.services.reminders.personal_offsets(api.mine.discord_user_id, GUILD) == (30,)
