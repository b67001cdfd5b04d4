from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from racetime.errors import (
    RacetimeAuthError,
    RacetimeConflict,
    RacetimeError,
    RacetimeNotFound,
    RacetimeProtocolError,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import CategoryData, Race, RaceSummary, RoomSettings, StartRaceRequest, User
from tests.fakes.racetime_data import load_json

BASE = "https://racetime.gg"

# Every field of the startrace form in the reference (§4.1).
STARTRACE_FIELDS = {
    "team_race",
    "invitational",
    "ranked",
    "unlisted",
    "partitionable",
    "hide_entrants",
    "info_user",
    "info_bot",
    "recordable",
    "require_even_teams",
    "start_delay",
    "time_limit",
    "time_limit_auto_complete",
    "streaming_required",
    "auto_start",
    "allow_comments",
    "hide_comments",
    "allow_prerace_chat",
    "allow_midrace_chat",
    "allow_non_entrant_chat",
    "chat_message_delay",
}


def test_race_from_captured_finished_sample():
    race = Race.from_json(load_json("captured/race_finished.json"), BASE)
    assert (race.name, race.slug, race.category_slug, race.status) == (
        "alttpr/lawful-pit-3187",
        "lawful-pit-3187",
        "alttpr",
        "finished",
    )
    assert race.url == "https://racetime.gg/alttpr/lawful-pit-3187"
    assert race.data_url == "https://racetime.gg/alttpr/lawful-pit-3187/data"
    assert (race.goal_name, race.goal_custom) == ("Beat the game", False)
    assert race.info == "Seed: https://alttpr.com/h/AbCdEf\nPreset: open"
    assert (race.info_bot, race.info_user) == ("Preset: open", "Seed: https://alttpr.com/h/AbCdEf")
    assert race.entrants_count == 3 and race.version == 16
    assert race.start_delay == timedelta(seconds=15) and race.time_limit == timedelta(hours=24)
    assert race.started_at == datetime(2025, 6, 14, 18, 0, 27, 123000, tzinfo=UTC)
    assert race.ended_at == datetime(2025, 6, 14, 19, 31, 2, 517000, tzinfo=UTC)
    assert race.cancelled_at is None
    assert (race.auto_start, race.streaming_required, race.unlisted) == (True, False, False)
    alice, bob, carol = race.entrants
    assert alice.user == User(
        "7BzeW5ErWom9Xgpb", "Alice", "Alice#2418", "2418", "https://racetime.gg/user/7BzeW5ErWom9Xgpb/alice"
    )
    assert alice.status == "done"
    assert alice.finish_time == timedelta(hours=1, minutes=23, seconds=45, microseconds=678901)
    assert alice.finished_at == datetime(2025, 6, 14, 19, 24, 12, 802000, tzinfo=UTC)
    assert (alice.place, alice.comment) == (1, "GG, fun seed!")
    assert (bob.status, bob.finish_time, bob.place) == ("dnf", None, None)
    assert carol.status == "dq"
    assert race.raw["opened_by_bot"] == "TestBot"


def test_models_ignore_extra_keys_and_hash():
    data = load_json("captured/race_open.json")
    data["brand_new_field"] = {"x": 1}
    data["entrants"][0]["another"] = 1
    race = Race.from_json(data, BASE)
    assert race.status == "open" and race.started_at is None
    assert hash(race.entrants[0]) == hash(Race.from_json(load_json("captured/race_open.json"), BASE).entrants[0])
    hash(race)  # raw is excluded from hashing and comparison


def test_malformed_race_raises_value_error_family():
    data = load_json("captured/race_finished.json")
    data["start_delay"] = "15 seconds"
    with pytest.raises(ValueError):
        Race.from_json(data, BASE)
    del data["status"]
    with pytest.raises(KeyError):
        Race.from_json(data, BASE)


def test_category_data_and_summaries():
    category = CategoryData.from_json(load_json("captured/category_data.json"), BASE)
    assert (category.slug, category.short_name, category.goals) == (
        "alttpr",
        "ALttPR",
        ("Beat the game", "All dungeons"),
    )
    (summary,) = category.current_races
    assert (summary.slug, summary.category_slug, summary.status) == ("lawful-pit-3187", "alttpr", "open")
    assert summary.data_url == "https://racetime.gg/alttpr/lawful-pit-3187/data"
    assert summary.entrants_count == 2 and summary.started_at is None


def test_summaries_of_other_listings():
    for race in load_json("all_races_01.json")["races"] + load_json("races_with_past_entrants.json")["races"]:
        summary = RaceSummary.from_json(race, BASE)
        assert f"{summary.category_slug}/{summary.slug}" == race["name"]
        assert summary.url == BASE + race["url"]


def test_urls_join_to_the_base_with_or_without_slash():
    for base in ("http://127.0.0.1:8000", "http://127.0.0.1:8000/"):
        race = Race.from_json(load_json("captured/race_open.json"), base)
        assert race.url == "http://127.0.0.1:8000/alttpr/gentle-pokey-1396"


def test_room_settings_defaults_are_the_product_defaults():
    s = RoomSettings()
    assert (s.start_delay, s.time_limit, s.chat_message_delay) == (15, 24, 0)
    assert s.streaming_required is False and s.auto_start is True and s.ranked is True
    s.validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_delay", 9),
        ("start_delay", 61),
        ("time_limit", 0),
        ("time_limit", 73),
        ("chat_message_delay", -1),
        ("chat_message_delay", 91),
        ("start_delay", 15.0),
        ("time_limit", True),
        ("unlisted", "false"),
        ("auto_start", 1),
    ],
)
def test_room_settings_validate_names_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        replace(RoomSettings(), **{field: value}).validate()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("start_delay", 10),
        ("start_delay", 60),
        ("time_limit", 1),
        ("time_limit", 72),
        ("chat_message_delay", 0),
        ("chat_message_delay", 90),
    ],
)
def test_room_settings_bounds_are_inclusive(field, value):
    replace(RoomSettings(), **{field: value}).validate()


def test_to_form_sends_every_field_as_text():
    request = StartRaceRequest(
        RoomSettings(unlisted=True, time_limit=48),
        goal="Beat the game",
        info_user="user info",
        info_bot="bot info",
    )
    form = request.to_form()
    assert set(form) == STARTRACE_FIELDS | {"goal"}
    assert all(isinstance(v, str) for v in form.values())
    assert form["unlisted"] == "true" and form["streaming_required"] == "false"
    assert form["time_limit"] == "48" and form["start_delay"] == "15" and form["chat_message_delay"] == "0"
    assert (form["info_user"], form["info_bot"]) == ("user info", "bot info")
    booleans = STARTRACE_FIELDS - {"info_user", "info_bot", "start_delay", "time_limit", "chat_message_delay"}
    assert {form[name] for name in booleans} <= {"true", "false"}


def test_to_form_custom_goal_and_edit_form():
    form = StartRaceRequest(RoomSettings(), custom_goal="Async week 3").to_form()
    assert form["custom_goal"] == "Async week 3" and "goal" not in form
    assert form["recordable"] == "false"  # what the server computes for custom goals anyway
    edit = StartRaceRequest(RoomSettings(), goal="Beat the game").to_edit_form()
    assert set(edit) == STARTRACE_FIELDS - {"team_race", "invitational", "partitionable", "hide_entrants"} | {"goal"}


@pytest.mark.parametrize(("goal", "custom_goal"), [(None, None), ("", ""), ("Beat the game", "Something else")])
def test_exactly_one_goal(goal, custom_goal):
    with pytest.raises(ValueError, match="goal"):
        StartRaceRequest(RoomSettings(), goal=goal, custom_goal=custom_goal).to_form()


def test_to_form_rejects_bad_settings_and_lengths():
    with pytest.raises(ValueError, match="time_limit"):
        StartRaceRequest(RoomSettings(time_limit=100), goal="Beat the game").to_form()
    with pytest.raises(ValueError, match="custom_goal"):
        StartRaceRequest(custom_goal="x" * 256).to_form()
    with pytest.raises(ValueError, match="info_bot"):
        StartRaceRequest(goal="g", info_bot="x" * 1001).to_form()


def test_request_from_race_reproduces_the_room():
    race = Race.from_json(load_json("captured/race_open.json"), BASE)
    request = StartRaceRequest.from_race(race)
    assert request.goal == "All dungeons" and request.custom_goal is None
    assert request.info_bot == "Preset: standard"
    assert request.settings.hide_comments is True and request.settings.allow_non_entrant_chat is False
    assert (request.settings.start_delay, request.settings.time_limit) == (15, 24)
    request.to_edit_form()


def test_validation_error_reads_as_one_line():
    err = RacetimeValidationError(
        {
            "start_delay": ["Ensure this value is greater than or equal to 0:00:10."],
            "time_limit": ["Ensure this value is less than or equal to 3 days, 0:00:00."],
            "__all__": ["You need to set a goal for this race."],
        }
    )
    assert str(err) == (
        "start_delay: Ensure this value is greater than or equal to 0:00:10.; "
        "time_limit: Ensure this value is less than or equal to 3 days, 0:00:00.; "
        "You need to set a goal for this race."
    )
    assert err.status == 422 and err.retryable is False and isinstance(err, RacetimeError)


def test_only_unavailable_is_retryable():
    assert RacetimeUnavailable("x", status=503).retryable is True
    for cls in (RacetimeError, RacetimeAuthError, RacetimeNotFound, RacetimeConflict, RacetimeProtocolError):
        assert cls("x").retryable is False
