"""The reminder offsets and RSVP routes: round trips, bad input, read tokens, another guild's race."""

from __future__ import annotations

from tests.api.conftest import Api


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
