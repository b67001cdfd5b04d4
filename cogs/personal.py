"""/timezone and /calendar: what a member sets up for themselves."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import discord
from discord.app_commands import Transform

from bot.services.timezones import Zones
from cogs._common.base import StartlineCog
from cogs._common.checks import player_group
from cogs._common.formatting import EMBED_COLOUR
from cogs._common.options import TimezoneOption
from cogs._common.respond import respond
from cogs._common.timeparse import wall


def describe_zones(zones: Zones, now: datetime) -> str:
    local = now.astimezone(ZoneInfo(zones.effective))
    now = f"it is {wall(local)} there now"
    if zones.own is None:
        return (
            f"You have no time zone of your own, so the times you type are read in this server's, "
            f"**{zones.server}** ({now}). Set yours with `/timezone set`."
        )
    server = "" if zones.own == zones.server else f" This server's zone is {zones.server}."
    return f"Your time zone is **{zones.own}** ({now}): the times you type are read in it.{server}"


class PersonalCog(StartlineCog):
    timezone = player_group("timezone", "Your time zone, for the times you type and the lists you read")

    @timezone.command(name="set", description="Save your time zone (for every server that shares the bot with you)")
    async def timezone_set(self, interaction: discord.Interaction, zone: Transform[str, TimezoneOption]) -> None:
        zones = await self.services.timezones.set_own(
            self.guild_id(interaction), interaction.user.id, zone, self.actor(interaction)
        )
        await respond(interaction, "Saved. " + describe_zones(zones, self.services.clock()))

    @timezone.command(name="show", description="Which time zone your typed times are read in")
    async def timezone_show(self, interaction: discord.Interaction) -> None:
        zones = await self.services.timezones.zones(self.guild_id(interaction), interaction.user.id)
        await respond(interaction, describe_zones(zones, self.services.clock()))

    @timezone.command(name="clear", description="Forget your time zone and use the server's")
    async def timezone_clear(self, interaction: discord.Interaction) -> None:
        zones = await self.services.timezones.set_own(
            self.guild_id(interaction), interaction.user.id, None, self.actor(interaction)
        )
        await respond(interaction, "Forgot your time zone. " + describe_zones(zones, self.services.clock()))

    calendar = player_group("calendar", "Live races in your calendar app")

    @calendar.command(name="show", description="The calendar feed URLs: every race, and only the ones you may race")
    async def calendar_show(self, interaction: discord.Interaction) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)
        everything = await self.services.calendar.feed_url(guild_id, actor)
        mine = await self.services.calendar.personal_url(guild_id, interaction.user.id, actor)
        embed = discord.Embed(title="Live races in your calendar", colour=EMBED_COLOUR)
        embed.description = (
            'Subscribe to a URL in Google Calendar, Apple Calendar, Outlook or Thunderbird ("subscribe from URL" / '
            '"from the internet"). Calendar apps refresh it on their own, about every 15 minutes to a few hours.'
        )
        embed.add_field(name="Only the races you may race (yours: keep it private)", value=f"<{mine}>", inline=False)
        embed.add_field(name="Every race of this server", value=f"<{everything}>", inline=False)
        embed.set_footer(text="/calendar reset replaces your URL if it leaked; the old one stops working.")
        await respond(interaction, embed=embed)

    @calendar.command(name="reset", description="Replace your personal calendar URL (the old one stops working)")
    async def calendar_reset(self, interaction: discord.Interaction) -> None:
        url = await self.services.calendar.personal_url(
            self.guild_id(interaction), interaction.user.id, self.actor(interaction), rotate=True
        )
        await respond(
            interaction,
            f"Your personal calendar URL is now <{url}>. The old one stops working: subscribe to this one instead.",
        )


async def setup(bot) -> None:
    await bot.add_cog(PersonalCog(bot))
