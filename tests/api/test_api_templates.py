"""Templates through the API: lead time, announcement channel and ping role; bad values get the error envelope."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.api.test_api_core import assert_envelope


async def test_a_template_keeps_lead_channel_and_role_and_gives_them_to_its_races(api: Api) -> None:
    tid, pid = api.mine.tid, api.mine.pid
    status, created, _ = await api.call(
        "POST",
        f"/api/v1/tournaments/{tid}/templates",
        json={
            "name": "weekly",
            "pool_ids": [pid],
            "start_time": "20:00",
            "timezone": "Europe/Berlin",
            "room_open_lead_minutes": 45,
            "announcement_channel_id": "123456789012345678",
            "announcement_role_id": "223456789012345678",
        },
    )
    assert status == 201, created
    assert (created["room_open_lead_minutes"], created["announcement_channel_id"], created["announcement_role_id"]) == (
        45,
        "123456789012345678",
        "223456789012345678",
    )
    status, race, _ = await api.call(
        "POST", f"/api/v1/tournaments/{tid}/templates/{created['id']}/races", json={"when": "2030-01-05"}
    )
    assert status == 201, race
    assert race["room_opens_at"] == "2030-01-05T18:15:00Z"  # 20:00 Berlin (19:00 UTC) less 45 minutes
    status, changed, _ = await api.call(
        "PATCH",
        f"/api/v1/tournaments/{tid}/templates/{created['id']}",
        json={"room_open_lead_minutes": None, "announcement_role_id": None},
    )
    assert status == 200 and changed["room_open_lead_minutes"] is None and changed["announcement_role_id"] is None
    assert changed["announcement_channel_id"] == "123456789012345678"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("room_open_lead_minutes", -1),
        ("room_open_lead_minutes", 1441),
        ("room_open_lead_minutes", "soon"),
        ("announcement_channel_id", "0"),
        ("announcement_channel_id", "general"),
        ("announcement_role_id", 12.5),
    ],
)
async def test_bad_values_are_refused_with_the_envelope(api: Api, field: str, value) -> None:
    tid, pid = api.mine.tid, api.mine.pid
    status, body, _ = await api.call(
        "POST", f"/api/v1/tournaments/{tid}/templates", json={"name": "bad", "pool_ids": [pid], field: value}
    )
    assert status == 422, body
    assert_envelope(body, "validation_error")
    _, listed, _ = await api.call("GET", f"/api/v1/tournaments/{tid}/templates")
    assert "bad" not in [item["name"] for item in listed["items"]]
