"""GET /api/v1/status: the caller guild's part only, plus the process-wide health; manage scope."""

from __future__ import annotations

from tests.api.conftest import FOREIGN_MARK


async def test_status_shows_only_the_callers_guild(api):
    status, body, _ = await api.call("GET", "/api/v1/status")
    assert status == 200, body
    # Each guild's world has one failed DM; only this guild's counts.
    assert body["outbox"] == {"depth": 0, "oldest_created_at": None, "failed_dms_last_day": 1}
    assert body["process_count"] == 1 and body["processes"][0]["this_process"] is True
    assert [h["category"] for h in body["racetime"]] == ["alttpr"]
    assert body["permissions"] == {"source": "needs gateway", "checked_at": None, "channels": []}
    assert "1 DMs failed in the last day." in body["problems"]
    assert FOREIGN_MARK not in str(body)
    _, other, _ = await api.call("GET", "/api/v1/status", token="other")
    assert other["outbox"]["failed_dms_last_day"] == 1


async def test_status_needs_a_manage_token(api):
    status, body, _ = await api.call("GET", "/api/v1/status", token="read")
    assert status == 403 and body["error"]["code"]
    status, body, _ = await api.call("GET", "/api/v1/status", token=None)
    assert status == 401
