"""/notify: the private panel of DM preferences, driven by pressing its buttons."""

from __future__ import annotations

from types import SimpleNamespace

from cogs.notify import NotifyPanel
from db.models import EventType
from tests.commands.conftest import MODERATOR_PERMS


def labels(sent) -> list[str]:
    return [button["label"] for button in sent.buttons]


async def test_panel_shows_six_toggles_scope_and_shortcuts(discord_) -> None:
    d = discord_
    reply = await d.harness.run("notify", d.alice)
    panel = reply.with_buttons()
    assert reply.ephemeral and "Showing: **Home**" in panel.text
    assert labels(panel) == [
        "Scheduled: off",
        "Room open: off",
        "Started: off",
        "Finished: off",
        "Cancelled: off",
        "Rescheduled: off",
        "Scope: this server",
        "All on",
        "All off",
    ]
    assert "`415`" in panel.text and "`420` Race rescheduled" in panel.text


async def test_toggle_persists_for_this_server(discord_) -> None:
    d = discord_
    panel = (await d.harness.run("notify", d.alice)).with_buttons()
    pressed = await d.harness.click(panel, "Room open", d.alice)
    updated = pressed.last
    assert updated.type == 7 and "Room open: on" in labels(updated)
    prefs = {p.event_type: p for p in await d.services.notifications.preferences(d.alice.id, d.guild.id)}
    assert prefs[EventType.LIVE_RACE_ROOM_OPENED].guild_setting is True
    assert prefs[EventType.LIVE_RACE_ROOM_OPENED].global_setting is None
    elsewhere = {p.event_type: p for p in await d.services.notifications.preferences(d.alice.id, d.other_guild.id)}
    assert elsewhere[EventType.LIVE_RACE_ROOM_OPENED].effective is False
    reopened = (await d.harness.run("notify", d.alice)).with_buttons()  # the state survives a new panel
    assert "Room open: on" in labels(reopened)
    off = await d.harness.click(reopened, "Room open", d.alice)
    assert "Room open: off" in labels(off.last)


async def test_all_servers_scope_and_all_on(discord_) -> None:
    d = discord_
    panel = (await d.harness.run("notify", d.alice)).with_buttons()
    scoped = await d.harness.click(panel, "Scope", d.alice)
    assert "Scope: all servers" in labels(scoped.last) and "Showing: all servers" in scoped.last.text
    everything = await d.harness.click(scoped.last, "All on", d.alice)
    assert all(label.endswith(": on") for label in labels(everything.last)[:5])
    prefs = await d.services.notifications.preferences(d.alice.id, d.other_guild.id)
    assert all(p.global_setting is True and p.effective for p in prefs)


async def test_server_override_and_reset_to_all_servers(discord_) -> None:
    d = discord_
    panel = (await d.harness.run("notify", d.alice)).with_buttons()
    everything = await d.harness.click(panel, "All on", d.alice)  # this server only
    assert "Use my all-servers settings here" in labels(everything.last)
    reset = await d.harness.click(everything.last, "Use my all-servers", d.alice)
    assert labels(reset.last)[:5] == [
        f"{name}: off" for name in ("Scheduled", "Room open", "Started", "Finished", "Cancelled")
    ]
    prefs = await d.services.notifications.preferences(d.alice.id, d.guild.id)
    assert all(p.guild_setting is None for p in prefs)


async def test_only_the_owner_can_press_the_panel(discord_) -> None:
    d = discord_
    panel = (await d.harness.run("notify", d.alice)).with_buttons()
    other = await d.harness.click(panel, "Scheduled", d.bob)
    assert other.ephemeral and "belong to the person who ran the command" in other.text
    assert await d.services.notifications.preferences(
        d.bob.id, d.guild.id
    ) == await d.services.notifications.preferences(d.alice.id, d.guild.id)
    assert not any(p.effective for p in await d.services.notifications.preferences(d.alice.id, d.guild.id))


async def test_resend_is_for_moderators_and_reports_the_count(discord_) -> None:
    d = discord_
    refused = await d.harness.run("liverace-admin resend", d.alice, race="1")
    assert "Manage Server" in refused.text
    missing = await d.harness.run("liverace-admin resend", d.mod, perms=MODERATOR_PERMS, race="1")
    assert missing.text == "Live race 1 not found."


async def test_the_panel_has_a_toggle_per_type_five_to_a_row(discord_) -> None:
    """Every notification type gets its toggle, with its short label; a sixth type starts a second row (Discord
    allows five buttons a row), and the scope and shortcut buttons go below the toggles."""
    d = discord_
    panel = (await d.harness.run("notify", d.alice)).with_buttons()
    assert labels(panel)[: len(EventType)] == [f"{event_type.spec.short_label}: off" for event_type in EventType]

    prefs = await d.services.notifications.preferences(d.alice.id, d.guild.id)
    interaction = SimpleNamespace(user=d.alice, guild_id=d.guild.id, guild=d.guild)
    seven = NotifyPanel(d.bot.get_cog("NotifyCog"), interaction, [prefs[i % len(prefs)] for i in range(7)])
    rows = [(item.label, item.row) for item in seven.children]
    assert [row for _, row in rows[:7]] == [0, 0, 0, 0, 0, 1, 1]
    assert {row for label, row in rows[7:]} == {2}


# ---- in direct messages ------------------------------------------------------------------------------------------


async def test_notify_in_dms_uses_the_only_server_and_saves_for_it(discord_) -> None:
    d = discord_
    await d.harness.run("notify", d.alice)  # alice is a player of Home only
    reply = await d.harness.run_in_dm("notify", d.alice)
    panel = reply.with_buttons()
    assert reply.ephemeral and f"Showing: **{d.guild.name}**" in panel.text
    await d.harness.click(panel, "Rescheduled", d.alice)
    prefs = {p.event_type: p for p in await d.services.notifications.preferences(d.alice.id, d.guild.id)}
    assert prefs[EventType.LIVE_RACE_RESCHEDULED].guild_setting is True


async def test_notify_in_dms_asks_which_server_and_refuses_one_it_does_not_know(discord_) -> None:
    d = discord_
    await d.harness.run("notify", d.alice)
    await d.services.players.touch(d.other_guild.id, d.alice.id, "alice")  # now on two rosters
    asked = await d.harness.run_in_dm("notify", d.alice)
    assert asked.text.startswith("Which server?") and d.guild.name in asked.text and d.other_guild.name in asked.text
    choices = await d.harness.run_in_dm("notify", d.alice, focused="server", server="")
    assert {c["value"] for c in choices.choices} == {str(d.guild.id), str(d.other_guild.id)}
    chosen = await d.harness.run_in_dm("notify", d.alice, server=str(d.other_guild.id))
    assert f"Showing: **{d.other_guild.name}**" in chosen.with_buttons().text
    for bad in ("123", "not a server"):
        refused = await d.harness.run_in_dm("notify", d.alice, server=bad)
        assert refused.ephemeral and refused.text.startswith("You get no race DMs from that server.")


async def test_notify_in_dms_before_any_server_says_what_to_do(discord_) -> None:
    d = discord_
    reply = await d.harness.run_in_dm("notify", d.bob)
    assert reply.text.startswith("No server sends you race DMs yet")


async def test_notify_reminders_sets_and_refuses_offsets(discord_) -> None:
    d = discord_
    reply = await d.harness.run("notify", d.alice, reminders="24h, 10m")
    assert reply.ephemeral and "Reminders for **Home**: 24 h, 10 min before the start" in reply.text
    assert await d.services.reminders.offsets(d.alice.id, d.guild.id) == (1440, 10)
    bad = await d.harness.run("notify", d.alice, reminders="5m")
    assert bad.text.startswith("❌") and "choose from 10 min, 30 min, 1 h, 3 h, 12 h, 24 h" in bad.text
    assert "Nothing changed" in bad.text
    assert await d.services.reminders.offsets(d.alice.id, d.guild.id) == (1440, 10)
    off = await d.harness.run("notify", d.alice, reminders="none")
    assert "Reminders off" in off.text and await d.services.reminders.offsets(d.alice.id, d.guild.id) == ()
