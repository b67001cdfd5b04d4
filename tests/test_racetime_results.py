from datetime import UTC, datetime, timedelta

from racetime.durations import parse_datetime, parse_duration
from racetime.models import Race
from racetime.results import EntrantResult, entrant_results, participants_at_start
from tests.fakes.racetime_data import load_json, past_races
from tests.fakes.racetime_server import FakeRacetime, client_for

BASE = "https://racetime.gg"
STATUS_MAP = {"done": "finished", "dnf": "forfeit", "dq": "disqualified"}


def _race(data):
    return Race.from_json(data, BASE)


def test_captured_finished_race():
    results = entrant_results(_race(load_json("captured/race_finished.json")))
    assert results == [
        EntrantResult(
            "7BzeW5ErWom9Xgpb",
            "Alice",
            "finished",
            timedelta(hours=1, minutes=23, seconds=45, microseconds=678901),
            1,
            datetime(2025, 6, 14, 19, 24, 12, 802000, tzinfo=UTC),
        ),
        EntrantResult("xr85vpEMBoX32zJ4", "Bob", "forfeit", None, None, None),
        EntrantResult("4GRrp1EXNj0B5DbX", "Carol", "disqualified", None, None, None),
    ]
    assert participants_at_start(_race(load_json("captured/race_finished.json"))) == results


def test_disqualified_finisher_keeps_no_result():
    data = load_json("captured/race_finished.json")
    carol = data["entrants"][2]
    carol["finish_time"], carol["finished_at"] = "P0DT01H30M00S", "2025-06-14T19:30:27.123Z"
    (_, _, result) = entrant_results(_race(data))
    assert (result.status, result.elapsed, result.place, result.finished_at) == (
        "disqualified",
        None,
        None,
        None,
    )


def test_open_race_has_no_participants_yet():
    race = _race(load_json("captured/race_open.json"))
    # Carol is only invited: not a participant.
    assert [(r.racetime_name, r.status) for r in entrant_results(race)] == [
        ("Alice", "not_started"),
        ("Bob", "not_started"),
    ]
    assert participants_at_start(race) == []


def test_deleted_accounts_and_unknown_statuses_are_skipped():
    data = load_json("captured/race_finished.json")
    data["entrants"][1]["user"] = None
    data["entrants"][2]["status"]["value"] = "requested"
    assert [r.racetime_name for r in entrant_results(_race(data))] == ["Alice"]


def test_running_race_and_cancel_after_start():
    data = load_json("captured/race_open.json")
    data["status"]["value"] = "in_progress"
    data["started_at"] = "2025-06-14T20:10:00Z"
    data["entrants"] = data["entrants"][:2]
    for entrant in data["entrants"]:
        entrant["status"]["value"] = "in_progress"
    assert {r.status for r in participants_at_start(_race(data))} == {"in_progress"}
    # A cancelled race shows runners as "ready" again; they were still in progress when it stopped.
    data["status"]["value"] = "cancelled"
    data["cancelled_at"] = data["ended_at"] = "2025-06-14T20:30:00Z"
    for entrant in data["entrants"]:
        entrant["status"]["value"] = "ready"
    assert [r.status for r in participants_at_start(_race(data))] == ["in_progress", "in_progress"]


def test_pending_race_participants_have_not_started():
    data = load_json("captured/race_open.json")
    data["status"]["value"] = "pending"
    data["started_at"] = "2025-06-14T20:10:00Z"
    data["entrants"] = data["entrants"][:1]
    assert [(r.racetime_name, r.status) for r in participants_at_start(_race(data))] == [("Alice", "not_started")]


def test_cancelled_before_start_has_no_participants():
    data = load_json("captured/race_open.json")
    data["status"]["value"] = "cancelled"
    data["cancelled_at"] = "2025-06-14T20:30:00Z"
    assert participants_at_start(_race(data)) == []


async def test_every_real_past_race_maps_exactly_over_http():
    """Replay all 20 real races in the fake, read them back over HTTP, and map them."""
    races = past_races()
    async with FakeRacetime(seed=7) as rt, client_for(rt) as client:
        slugs = []
        for past in races:
            slug = rt.open_room("alttpr")
            rt.replay(slug, past)
            slugs.append(slug)
        checked = 0
        for past, slug in zip(races, slugs, strict=True):
            race = await client.race_detail("alttpr", slug)
            assert race.status == "finished"
            assert race.started_at == parse_datetime(past["started_at"])
            by_id = {r.racetime_id: r for r in entrant_results(race)}
            assert len(by_id) == len(past["entrants"])
            for entrant in past["entrants"]:
                result = by_id[entrant["user"]["id"]]
                assert result.racetime_name == entrant["user"]["name"]
                assert result.status == STATUS_MAP[entrant["status"]["value"]]
                assert result.place == entrant["place"]
                if entrant["finish_time"] is None:
                    assert result.elapsed is None
                else:
                    assert result.elapsed == parse_duration(entrant["finish_time"])
                    checked += 1
            assert participants_at_start(race) == entrant_results(race)
        assert checked == 76
