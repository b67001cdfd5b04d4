"""Rendering is pure: any payload, however sparse or long, gives a message Discord accepts."""

from __future__ import annotations

import re

import pytest

from bot.notifications.message import (
    EMBED_TOTAL_LIMIT,
    ActionKind,
    MessageAction,
    MessageField,
    NotificationMessage,
    action_args,
    action_key,
    action_key_template,
    fit,
)
from bot.notifications.render import duration, ordinal, render, timestamp
from db.models import EVENT_SPECS, OPEN_FAILED_ALERT

EVENTS = [spec.name for spec in EVENT_SPECS]


def assert_acceptable(message: NotificationMessage) -> None:
    assert message.title.strip() and len(message.title) <= 256
    assert message.description.strip() and len(message.description) <= 4096
    assert len(message.fields) <= 25
    assert all(f.name.strip() and f.value.strip() for f in message.fields)
    assert all(len(f.name) <= 256 and len(f.value) <= 1024 for f in message.fields)
    assert message.total_length <= EMBED_TOTAL_LIMIT


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("channel", [False, True])
def test_a_sparse_payload_still_renders_without_empty_fields(event, channel):
    message = render({"event": event, "race": {}}, channel=channel)
    assert_acceptable(message)


@pytest.mark.parametrize("event", EVENTS)
def test_long_text_is_cut_to_discords_limits(event):
    long = "x" * 9000
    payload = {
        "event": event,
        "race": {"title": long, "tournament": long, "pool": long, "cancel_reason": long, "seed_hint": long},
        "alert": {"error": long, "attempts": 6},
        "result": {"status": "finished", "place": 1, "elapsed_us": 1, "score": 1.0},
    }
    message = render(payload)
    assert_acceptable(message)
    assert message.title.endswith("…")


def test_the_announcement_pings_only_its_role():
    payload = {"event": "live_race_started", "race": {"title": "<@&1> sneaky"}, "role_id": 43}
    message = render(payload, channel=True)
    assert (message.content, message.mention_role_ids) == ("<@&43>", (43,))
    assert render(payload).content is None  # a DM pings nobody


def test_an_unknown_event_cannot_render():
    with pytest.raises(KeyError):
        render({"event": "live_race_exploded", "race": {}})


def test_alert_is_its_own_style():
    message = render({"event": OPEN_FAILED_ALERT.name, "race": {"title": "Week 3"}}, channel=True)
    assert (message.title, message.colour) == ("⚠️ Race room could not be opened: Week 3", 0x992D22)


def test_an_alert_that_is_not_a_failed_open_names_itself():
    alert = {"error": "missed: 2026-12-05", "attempts": 0, "summary": "Series Weekly missed a race.", "action": "x"}
    payload = {
        "event": OPEN_FAILED_ALERT.name,
        "race": {"title": "Week 4"},
        "alert": {**alert, "headline": "Series races were missed"},
    }
    message = render(payload, channel=True)
    assert message.title == "⚠️ Series races were missed: Week 4"
    assert "gave up" not in message.description and "Series Weekly missed a race." in message.description


@pytest.mark.parametrize(
    ("number", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"), (12, "12th"), (21, "21st")]
)
def test_ordinals(number, text):
    assert ordinal(number) == text


def test_durations_and_timestamps():
    assert duration(5_025_400_000) == "1:23:45.4"
    assert duration(59_999_999) == "0:00:59.9"
    assert duration(None) == "No time recorded"
    assert timestamp(1767268800) == "<t:1767268800:F> (<t:1767268800:R>)"
    assert timestamp(None) == "Not known yet"


def test_fields_and_text_repair_themselves():
    assert MessageField("  ", "").name == "—"
    assert fit("abc", 2) == "a…"
    many = NotificationMessage(title="t", description="d", colour=1, fields=[MessageField("n", "v")] * 30)
    assert len(many.fields) == 25
    huge = NotificationMessage(
        title="t", description="d" * 5000, colour=1, fields=tuple(MessageField(f"n{i}", "v" * 1024) for i in range(9))
    )
    assert [f.name for f in huge.fields] == ["n0", "n1", "n2", "n3", "n4"]  # the last ones went
    assert huge.description.endswith("…")
    assert_acceptable(huge)


# ---- actions (the buttons under a message) -------------------------------------------------------------------------
def _race_payload(event: str, **extra) -> dict:
    return {"v": 1, "event": event, "occurred_at": 0, "race": {"id": 12, "title": "Weekly", **extra}}


@pytest.mark.parametrize(
    ("event", "room", "expected"),
    [
        ("live_race_scheduled", None, ["rsvp:sl:rsvp:12:yes", "rsvp:sl:rsvp:12:no"]),
        ("live_race_rescheduled", None, ["rsvp:sl:rsvp:12:yes", "rsvp:sl:rsvp:12:no"]),
        ("live_race_room_opened", "https://racetime.gg/a/b", ["room:None"]),
        ("live_race_started", "https://racetime.gg/a/b", ["room:None"]),
        ("live_race_finished", "https://racetime.gg/a/b", []),
        ("live_race_cancelled", None, []),
    ],
)
def test_the_living_announcement_takes_rsvps_then_links_the_room_then_has_no_buttons(event, room, expected):
    message = render({**_race_payload(event, room_url=room), "living": True}, channel=True)
    assert [f"{a.kind.value}:{a.key}" for a in message.actions] == expected


def test_only_the_living_announcement_has_buttons_in_a_channel():
    assert render(_race_payload("live_race_scheduled"), channel=True).actions == ()  # a post of an older race
    alert = {**_race_payload("live_race_open_failed"), "alert": {"error": "x", "attempts": 3}}
    assert render(alert, channel=True).actions == ()


def test_a_dm_links_the_room_when_known_and_mutes_its_type_or_the_whole_guild():
    dm = render(_race_payload("live_race_room_opened", room_url="https://racetime.gg/a/b"), guild_id=55)
    assert [(a.kind.value, a.key, a.url) for a in dm.actions] == [
        ("room", None, "https://racetime.gg/a/b"),
        ("mute", "sl:mute:55:416", None),
        ("dmsoff", "sl:dmsoff:55", None),
    ]
    assert dm.actions[2].label == "No more DMs from {server}"
    scheduled = render(_race_payload("live_race_scheduled"), guild_id=55)
    assert [a.kind.value for a in scheduled.actions] == ["mute", "dmsoff"]  # no room yet: no link
    reminder = {**_race_payload("live_race_reminder"), "reminder": {"offset_minutes": 60}}
    # Not a type one subscribes to: its Mute this kind turns the guild's reminders off.
    assert [a.key for a in render(reminder, guild_id=55).actions] == ["sl:mutereminders:55", "sl:dmsoff:55"]


def test_action_keys_parse_back_and_refuse_what_does_not_fit():
    assert action_key(ActionKind.RSVP, 12, "yes") == "sl:rsvp:12:yes"
    assert re.fullmatch(action_key_template(ActionKind.RSVP), "sl:rsvp:12:yes")["args"] == "12:yes"
    assert action_args("12:yes", int, str) == (12, "yes")
    for bad in ("x:yes", "12", "12:yes:1", ":yes", "1" * 21 + ":yes", "12:"):
        assert action_args(bad, int, str) is None
    with pytest.raises(ValueError):
        action_key(ActionKind.DMS_OFF, "9" * 100)
    with pytest.raises(ValueError):
        MessageAction(ActionKind.OPEN_ROOM, "Open the room")  # a link needs its url
