"""The guild's settings that scripts change: its default reminder offsets (`/startline config reminders:`)."""

from __future__ import annotations

from bot.api.registry import ApiCall, RouteTable
from bot.api.schemas import GuildRemindersOut, RemindersIn

routes = RouteTable(tag="settings")
REMINDERS = "/api/v1/settings/reminders"


@routes.read(
    REMINDERS,
    "The guild's default reminder offsets",
    GuildRemindersOut,
    description="The minutes before a live race's start at which players who chose no reminders of their own are "
    "reminded by DM ([] when the guild set none).",
)
async def get_guild_reminders(call: ApiCall) -> GuildRemindersOut:
    return GuildRemindersOut(offsets_minutes=list(await call.services.reminders.guild_default(call.guild_id)))


@routes.manage(
    "PUT",
    REMINDERS,
    "Set the guild's default reminder offsets",
    body=RemindersIn,
    response=GuildRemindersOut,
    description="The same offsets a player may choose (10, 30, 60, 180, 720, 1440 minutes, at most 3; 422 "
    "otherwise); [] removes the default. A player's own choice (PUT /api/v1/players/{discord_user_id}/reminders) "
    "wins over it.",
)
async def put_guild_reminders(call: ApiCall) -> GuildRemindersOut:
    await call.services.guilds.update(call.guild_id, call.actor, default_reminder_offsets=call.body.offsets_minutes)
    return await get_guild_reminders(call)
