"""/timezone and /calendar through the real command tree: what a member sets up for themselves."""

from __future__ import annotations

from bot.actors import Actor

SYSTEM = Actor.system()


async def test_timezone_set_show_clear(discord_) -> None:
    d = discord_
    await d.services.guilds.update(d.guild.id, SYSTEM, timezone="Europe/Berlin")
    shown = await d.harness.run("timezone show", d.alice)
    assert shown.ephemeral and "read in this server's, **Europe/Berlin**" in shown.text
    saved = await d.harness.run("timezone set", d.alice, zone="America/New_York")
    assert saved.ephemeral and "Saved. Your time zone is **America/New_York**" in saved.text
    assert "This server's zone is Europe/Berlin." in saved.text
    assert (await d.services.timezones.zones(d.other_guild.id, d.alice.id)).own == "America/New_York"  # global
    cleared = await d.harness.run("timezone clear", d.alice)
    assert "Forgot your time zone" in cleared.text and "**Europe/Berlin**" in cleared.text
    assert (await d.services.timezones.zones(d.guild.id, d.alice.id)).own is None


async def test_an_unknown_zone_is_refused_and_nothing_changes(discord_) -> None:
    d = discord_
    await d.harness.run("timezone set", d.alice, zone="Asia/Tokyo")
    refused = await d.harness.run("timezone set", d.alice, zone="Mars/Base")
    assert refused.ephemeral and refused.text.startswith("Unknown timezone 'Mars/Base'; use an IANA name")
    assert (await d.services.timezones.zones(d.guild.id, d.alice.id)).own == "Asia/Tokyo"
