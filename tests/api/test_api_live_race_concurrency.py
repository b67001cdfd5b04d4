"""The API's answers when a live race changed on RaceTime.gg before the bot saw it (issue 11)."""

from __future__ import annotations

from datetime import timedelta

from tests.api.conftest import NEWCOMER_RACETIME, PLAYER_RACETIME, Api
from tests.api.test_api_core import assert_envelope


async def test_cancelling_a_race_that_finished_on_racetime_records_it_and_answers_409(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    _, opened, _ = await api.call("POST", race + "/open")
    slug = opened["racetime"]["slug"]
    for user in (NEWCOMER_RACETIME, PLAYER_RACETIME):
        api.rt.add_entrant(slug, user)
    api.rt.start(slug)
    api.rt.finish_entrant(slug, NEWCOMER_RACETIME["id"], timedelta(hours=1))
    api.rt.finish_entrant(slug, PLAYER_RACETIME["id"], timedelta(hours=2))  # over there; the poller has not seen it
    status, body, _ = await api.call("POST", race + "/cancel", json={"reason": "Too late"})
    assert status == 409
    assert assert_envelope(body, "conflict")["message"] == (
        f"race {api.mine.rid} already finished on RaceTime.gg; its results (2 finishers) were recorded instead of "
        "cancelling"
    )
    _, recorded, _ = await api.call("GET", race)
    assert recorded["status"] == "finished" and recorded["cancel_reason"] is None
    assert recorded["entrant_count"] == 2 and api.rt.room(slug)["status"]["value"] == "finished"
    _, results, _ = await api.call("GET", race + "/results")
    assert [(e["racetime_name"], e["status"], e["place"]) for e in results["entrants"]] == [
        (NEWCOMER_RACETIME["name"], "finished", 1),
        (PLAYER_RACETIME["name"], "finished", 2),
    ]
