"""Room settings are declared once, as `RoomSetting` records, and everything else is made from them or checked
against them: validation, resolution, the RaceTime.gg form, the API models, the slash command options (tested on
the built tree in tests/commands/test_tree.py), the Discord error example and the docs table (tests/test_docs.py).

The last test follows docs/architecture.md's "Where to add a room setting" with two settings of the kinds issue 14
brings (a choice Startline acts on itself, and a number): one record each, and every layer takes them.
"""

from __future__ import annotations

import discord
import pytest
from discord import app_commands
from pydantic import ValidationError, create_model

from bot.api import schemas
from bot.errors import ValidationFailed
from bot.services import room_profiles
from bot.services.room_profiles import ROOM_SETTINGS, RoomSetting, racetime_settings, resolve, validate_room_settings
from cogs._common.respond import error_text
from cogs._common.room_options import RoomValues, option_description, room_setting_options
from db.models import RoomProfile
from racetime.models import RoomSettings as RacetimeRoomSettings
from tests.test_docs import room_settings_table

START_MODE = RoomSetting("start_mode", str, "auto", "How the race starts", choices=("auto", "scheduled"), per_race=True)
MIN_READY = RoomSetting("min_ready", int, 2, "Entrants ready before a scheduled start", low=1, high=100)


def test_every_setting_is_a_nullable_column_of_room_profiles() -> None:
    columns = RoomProfile.__table__.columns
    assert set(columns.keys()) - {"id", "guild_id", "name", "created_at", "updated_at"} == set(ROOM_SETTINGS)
    assert all(columns[name].nullable for name in ROOM_SETTINGS)  # NULL: inherit


@pytest.mark.parametrize("setting", [s for s in ROOM_SETTINGS.values() if s.form_field], ids=lambda s: s.name)
def test_what_is_sent_to_racetime_matches_its_form(setting: RoomSetting) -> None:
    """The client's model of RaceTime.gg's form (racetime/) agrees with the record: field, default and range."""
    assert getattr(RacetimeRoomSettings(), setting.form_field) == setting.default
    if setting.kind is int:
        for value in (setting.low, setting.high):
            RacetimeRoomSettings(**{setting.form_field: value}).validate()
        for value in (setting.low - 1, setting.high + 1):
            with pytest.raises(ValueError, match=setting.form_field):
                RacetimeRoomSettings(**{setting.form_field: value}).validate()


def test_resolved_settings_make_the_whole_form() -> None:
    form = racetime_settings(resolve({"start_delay": 30}, {"unlisted": True}))
    assert (form.start_delay, form.unlisted, form.time_limit) == (30, True, 24)


@pytest.mark.parametrize(
    "model", [schemas.RoomSettings, schemas.RoomProfileCreate, schemas.RoomProfileUpdate], ids=lambda m: m.__name__
)
def test_api_models_take_every_setting_with_its_range(model) -> None:
    assert set(model.model_fields) - {"name"} == set(ROOM_SETTINGS)
    assert set(schemas.RoomProfileOut.model_fields) >= set(ROOM_SETTINGS)
    name = {"name": "x"} if "name" in model.model_fields else {}
    for setting in ROOM_SETTINGS.values():
        assert setting.help_text in model.model_fields[setting.name].description
        if setting.kind is int:
            model.model_validate({**name, setting.name: setting.high})
            with pytest.raises(ValidationError):
                model.model_validate({**name, setting.name: setting.high + 1})


def test_out_of_range_values_are_refused_with_an_example_for_discord() -> None:
    with pytest.raises(ValidationFailed) as refused:
        validate_room_settings({"chat_message_delay": 91}, field_prefix="room.")
    assert refused.value.field == "room.chat_message_delay" and refused.value.example == 0
    assert error_text(refused.value) == (
        "Chat_message_delay must be a whole number of seconds from 0 to 90. For example `chat_message_delay: 0`."
    )
    with pytest.raises(ValidationFailed) as unknown:
        validate_room_settings({"colour": 1})
    assert unknown.value.example is None and error_text(unknown.value) == "Unknown room setting 'colour'."


def test_a_malformed_record_fails_at_once() -> None:
    with pytest.raises(ValueError):
        RoomSetting("broken", int, 5, "No range")
    with pytest.raises(ValueError):
        RoomSetting("broken", str, "a", "No choices")
    with pytest.raises(ValueError, match="the default is not valid"):
        RoomSetting("broken", int, 99, "Default out of range", low=1, high=10)


async def test_a_new_setting_is_one_record(monkeypatch) -> None:
    for setting in (START_MODE, MIN_READY):
        monkeypatch.setitem(ROOM_SETTINGS, setting.name, setting)

    # validation, with a message and an example
    assert validate_room_settings({"start_mode": "scheduled", "min_ready": 5}) == {
        "start_mode": "scheduled",
        "min_ready": 5,
    }
    with pytest.raises(ValidationFailed) as refused:
        validate_room_settings({"start_mode": "later"}, field_prefix="room.")
    assert error_text(refused.value) == "Start_mode must be one of auto, scheduled. For example `start_mode: auto`."
    with pytest.raises(ValidationFailed, match="min_ready must be a whole number from 1 to 100"):
        validate_room_settings({"min_ready": 0})

    # resolution; a setting Startline acts on itself stays out of the RaceTime.gg form
    resolved = room_profiles.resolve({"min_ready": 3})
    assert (resolved["start_mode"], resolved["min_ready"]) == ("auto", 3)
    assert not hasattr(racetime_settings(resolved), "start_mode")

    # the API field
    model = create_model("Probe", **{s.name: schemas.room_setting_field(s) for s in (START_MODE, MIN_READY)})
    assert model(start_mode="scheduled", min_ready=100).start_mode == "scheduled"
    with pytest.raises(ValidationError):
        model(start_mode="later")
    with pytest.raises(ValidationError):
        model(min_ready=101)

    # the slash command options, with choices and range, and what the callback receives
    received: list[RoomValues] = []

    @room_setting_options(per_race=True)
    async def probe(interaction: discord.Interaction, *, room: RoomValues) -> None:
        received.append(room)

    per_race = {p.name: p for p in app_commands.Command(name="probe", description="-", callback=probe).parameters}
    assert "start_mode" in per_race and "min_ready" not in per_race
    assert [choice.value for choice in per_race["start_mode"].choices] == ["auto", "scheduled"]
    assert per_race["start_mode"].description == option_description(START_MODE, per_race=True)

    @room_setting_options()
    async def probe_all(interaction: discord.Interaction, *, room: RoomValues) -> None:
        received.append(room)

    every = {p.name: p for p in app_commands.Command(name="all", description="-", callback=probe_all).parameters}
    assert (every["min_ready"].min_value, every["min_ready"].max_value) == (1, 100)
    assert list(every) == list(ROOM_SETTINGS)
    await probe_all(None, start_mode="scheduled", min_ready=None, unlisted=False)
    assert received == [{"start_mode": "scheduled", "unlisted": False}]

    # the docs table
    table = room_settings_table(ROOM_SETTINGS.values())
    assert "| `start_mode` | auto, scheduled | auto | yes | — (Startline's own) | How the race starts |" in table
    assert "| `min_ready` | 1–100 | 2 | no | — (Startline's own) |" in table
