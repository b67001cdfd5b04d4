"""/startline config and /apitoken through the real command tree."""

from __future__ import annotations

from bot.actors import Actor
from cogs._common.options import COMMON_TIMEZONES
from tests.commands.conftest import MODERATOR_PERMS

SYSTEM = Actor.system()


async def admin(d, command: str, **options):
    return await d.harness.run(command, d.mod, perms=MODERATOR_PERMS, **options)


async def test_config_shows_settings_and_the_calendar_url(discord_) -> None:
    d = discord_
    reply = await admin(d, "startline config")
    assert reply.ephemeral and "Startline settings" in reply.text
    assert "Timezone: UTC" in reply.text and "Rooms open: 15 min before the start" in reply.text
    assert "Calendar feed (keep it private): <http://127.0.0.1:8080/api/v1/live-races.ics?key=" in reply.text
    # Each category bot's token health; the test bot has none.
    assert (
        "RaceTime.gg bots (set by the bot's administrator): ⚠️ `alttpr` · no bot · token never · "
        "RaceTime.gg credentials are not configured"
    ) in reply.text


async def test_config_changes_settings(discord_) -> None:
    d = discord_
    role = d.guild.roles[0]
    profile = await d.services.room_profiles.create(d.guild.id, SYSTEM, name="Fast", start_delay=10)
    reply = await admin(
        d,
        "startline config",
        organizer_role=role,
        moderator_channel=d.guild.text_channels[0],
        timezone="Europe/Berlin",
        lead_minutes=30,
        default_room_profile="Fast",
    )
    assert "Updated 5 settings." in reply.text and f"Organizer role: <@&{role.id}>" in reply.text
    settings = await d.services.guilds.get(d.guild.id)
    assert (settings.organizer_role_id, settings.timezone, settings.room_open_lead_minutes) == (
        role.id,
        "Europe/Berlin",
        30,
    )
    assert (settings.moderator_channel_id, settings.default_room_profile_id) == (
        d.guild.text_channels[0].id,
        profile.id,
    )
    cleared = await admin(d, "startline config", clear="organizer_role")
    assert "Organizer role: not set" in cleared.text
    assert (await d.services.guilds.get(d.guild.id)).organizer_role_id is None


async def test_config_refuses_bad_values_and_non_managers(discord_) -> None:
    d = discord_
    zone = await admin(d, "startline config", timezone="Moon/Base")
    assert "Unknown timezone 'Moon/Base'" in zone.text
    lead = await admin(d, "startline config", lead_minutes=5000)
    assert "Room_open_lead_minutes must be a whole number from 0 to 1440." in lead.text
    assert (await d.services.guilds.get(d.guild.id)).timezone == "UTC"
    # The organizer role is not enough here: it is one of the things this command controls.
    await d.services.guilds.update(d.guild.id, SYSTEM, organizer_role_id=d.guild.roles[0].id)
    refused = await d.harness.run("startline config", d.alice, lead_minutes=1)
    assert refused.text == "You need the Manage Server permission to do that."


async def test_config_rotates_the_calendar_url(discord_) -> None:
    d = discord_
    first = await admin(d, "startline config")
    rotated = await admin(d, "startline config", rotate_calendar=True)
    assert "new URL, the old one no longer works" in rotated.text
    key = first.text.split("key=")[1].split(">")[0]
    assert key not in rotated.text


async def test_timezone_autocomplete(discord_) -> None:
    d = discord_
    choices = await d.harness.autocomplete(
        "startline config", d.mod, "timezone", perms=MODERATOR_PERMS, timezone="berl"
    )
    assert [choice["value"] for choice in choices] == ["Europe/Berlin"]
    assert choices[0]["name"] in ("Europe/Berlin (UTC+01:00)", "Europe/Berlin (UTC+02:00)")  # winter or summer
    assert len(await d.harness.autocomplete("startline config", d.mod, "timezone", timezone="")) == 25


async def test_timezone_autocomplete_offers_the_servers_zone_the_users_and_common_ones_first(discord_) -> None:
    d = discord_
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Asia/Singapore")
    await d.services.timezones.set_own(d.guild.id, d.alice.id, "America/Phoenix", SYSTEM)
    values = [c["value"] for c in await d.harness.autocomplete("timezone set", d.alice, "zone", zone="")]
    assert values[:4] == ["Asia/Singapore", "America/Phoenix", "UTC", "Europe/London"]
    assert values[2:20] == list(COMMON_TIMEZONES) and len(values) == 25  # then the others, alphabetically
    names = [c["name"] for c in await d.harness.autocomplete("timezone set", d.alice, "zone", zone="")]
    assert names[0].endswith("· this server's zone") and names[1].endswith("· your zone")
    # typing narrows the list; the preferred zones still come first
    values = [c["value"] for c in await d.harness.autocomplete("timezone set", d.alice, "zone", zone="america/")]
    assert values[:3] == ["America/Phoenix", "America/New_York", "America/Chicago"]
    assert set(values[3:]) and all(value.startswith("America/") for value in values)


async def test_apitoken_create_list_revoke(discord_) -> None:
    d = discord_
    created = await admin(d, "apitoken create", name="ci", scope="manage")
    assert created.ephemeral and "shown only this once" in created.text
    secret = created.text.split("```\n")[1].split("\n```")[0]
    token = await d.services.tokens.authenticate(secret)
    assert token is not None and token.guild_id == d.guild.id and token.scope.value == "manage"
    listed = await admin(d, "apitoken list")
    assert "**ci** · manage" in listed.text and secret not in listed.text
    asked = await admin(d, "apitoken revoke", token=token.id)
    assert "Revoke API token **ci**" in asked.text
    done = await d.harness.click(asked.with_buttons(), "Revoke token", d.mod, perms=MODERATOR_PERMS)
    assert "Revoked token **ci**" in done.last.text
    assert await d.services.tokens.authenticate(secret) is None


async def test_apitoken_refuses_players_and_other_guilds_tokens(discord_) -> None:
    d = discord_
    refused = await d.harness.run("apitoken create", d.alice, name="mine")
    assert "Manage Server" in refused.text and await d.services.tokens.list(d.guild.id) == []
    theirs = await d.services.tokens.create(d.other_guild.id, SYSTEM, name="theirs", scope="read")
    reply = await admin(d, "apitoken revoke", token=theirs.token.id)
    assert reply.text == f"There is no API token #{theirs.token.id} in this server; see /apitoken list."
    assert await d.services.tokens.authenticate(theirs.secret) is not None


async def test_status_shows_jobs_notifications_racetime_and_channel_permissions(discord_) -> None:
    d = discord_
    channel = d.guild.text_channels[0]
    await d.services.guilds.update(d.guild.id, SYSTEM, announcement_channel_id=channel.id, moderator_channel_id=42)
    reply = await admin(d, "startline status")
    assert reply.ephemeral and "Startline status" in reply.text
    assert "Processes (1)" in reply.text and "this one" in reply.text
    assert "0 waiting" in reply.text and "0 DMs failed in the last day" in reply.text
    assert "RaceTime.gg credentials are not configured" in reply.text, "the test bot has no RaceTime.gg credentials"
    assert "`alttpr` · no bot · token never · RaceTime.gg credentials are not configured" in reply.text
    # A channel that does not exist (or that the bot cannot see) is named, from the gateway's cache.
    assert "Channel 42 (moderator alerts) lacks: the channel does not exist or the bot cannot see it." in reply.text
    assert f"<#{channel.id}> (announcements)" in reply.text
    # The API of a process without the gateway reports what this check saw.
    stored = await d.bot.app.status.status(d.guild.id)
    assert stored.permissions.source == "last check"
    assert [c.channel_id for c in stored.permissions.channels] == [channel.id, 42]


async def test_status_is_for_moderators(discord_) -> None:
    d = discord_
    refused = await d.harness.run("startline status", d.alice)
    assert "Manage Server" in refused.text and "Startline status" not in refused.text


async def test_config_switches_scheduled_events_and_shows_a_block(discord_) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import update

    from bot.services.scheduled_events import BLOCKED_LINE
    from db.models import GuildSettings

    d = discord_
    assert "Scheduled events: On" in (await admin(d, "startline config")).text
    off = await admin(d, "startline config", scheduled_events=False)
    assert "Updated 1 setting." in off.text and "Scheduled events: Off" in off.text
    async with d.services.db.transaction() as session:  # the dispatcher found Manage Events missing
        await session.execute(
            update(GuildSettings)
            .where(GuildSettings.guild_id == d.guild.id)
            .values(scheduled_events=True, scheduled_events_blocked_at=datetime.now(UTC))
        )
    assert BLOCKED_LINE in (await admin(d, "startline config")).text
    on = await admin(d, "startline config", scheduled_events=True)  # permission given: on again lifts the block
    assert "Scheduled events: On" in on.text
    assert (await d.services.guilds.get(d.guild.id)).scheduled_events_blocked_at is None


async def test_config_sets_and_clears_the_default_reminders_and_refuses_bad_ones(discord_) -> None:
    d = discord_
    assert "Default reminders: None" in (await admin(d, "startline config")).text
    reply = await admin(d, "startline config", reminders="1h, 24h")
    assert "Updated 1 setting." in reply.text and "Default reminders: 24 h, 1 h before the start" in reply.text
    assert await d.services.reminders.guild_default(d.guild.id) == (1440, 60)
    for bad, says in (
        ("2h", "2 h before the start is not offered"),  # out of range
        ("soon", "'soon' is not a reminder offset"),  # malformed
        ("10m,30m,1h,3h", "At most 3 reminders"),
    ):
        refused = await admin(d, "startline config", reminders=bad)
        assert says in refused.text, refused.text
    assert await d.services.reminders.guild_default(d.guild.id) == (1440, 60)  # nothing changed
    refused = await d.harness.run("startline config", d.alice, reminders="10m")
    assert refused.text == "You need the Manage Server permission to do that."
    cleared = await admin(d, "startline config", clear="reminders")
    assert "Default reminders: None" in cleared.text
    assert await d.services.reminders.guild_default(d.guild.id) == ()
    await admin(d, "startline config", reminders="30m")
    assert "Default reminders: None" in (await admin(d, "startline config", reminders="none")).text
