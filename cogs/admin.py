"""/startline config, status and sync, /apitoken create | list | revoke."""

from __future__ import annotations

from typing import Literal

import discord
from discord import app_commands
from discord.app_commands import Transform

from bot.errors import NotFound
from bot.services.reminders import DEFAULT_RSVP_OFFSETS, allowed_text, describe_offset, guild_default_offsets
from bot.services.scheduled_events import describe_state as describe_scheduled_events
from bot.services.status import (
    CHANNEL_PERMISSIONS,
    PERMISSION_LABELS,
    ROLE_PING_PERMISSION,
    CategoryHealth,
    ChannelCheck,
    ChannelNeed,
    StatusReport,
)
from cogs._common.base import StartlineCog
from cogs._common.checks import manage_server_only, moderator_group, moderator_only, owner_only
from cogs._common.formatting import EMBED_COLOUR, pages, safe, ts
from cogs._common.options import LeadMinutes, RecordNumber, RoomProfileOption, TimezoneOption
from cogs._common.respond import respond, think
from cogs._common.sync import sync_commands
from cogs._common.views import ConfirmView, Paginator
from db.models import RoomProfile

CLEARABLE = {
    "organizer_role": "organizer_role_id",
    "announcement_channel": "announcement_channel_id",
    "announcement_role": "announcement_role_id",
    "moderator_channel": "moderator_channel_id",
    "lead_minutes": "room_open_lead_minutes",
    "default_room_profile": "default_room_profile_id",
    "reminders": "default_reminder_offsets",
}


def _default_reminders(settings) -> str:
    offsets = guild_default_offsets(settings)
    if not offsets:
        return (
            f"None: only players who chose reminders (/notify reminders:) get them; RSVP'd and Interested players "
            f"{describe_offset(DEFAULT_RSVP_OFFSETS[0])} before. Offered: {allowed_text()}."
        )
    when = ", ".join(describe_offset(m) for m in offsets)
    return f"{when} before the start, for players who chose no reminders of their own (/notify reminders:)."


def _mention(kind: str, value: int | None) -> str:
    if value is None:
        return "not set"
    return f"<@&{value}>" if kind == "role" else f"<#{value}>"


FIELD_LIMIT = 1024  # characters of an embed field's value


def _field(lines: list[str], empty: str) -> str:
    text = "\n".join(lines) or empty
    return text if len(text) <= FIELD_LIMIT else text[: FIELD_LIMIT - 1] + "…"


def _ago(when) -> str:
    return ts(when, "R") if when is not None else "never"


def channel_permissions(bot: discord.Client, guild_id: int, needs: list[ChannelNeed]) -> list[ChannelCheck] | None:
    """What the bot lacks in each channel, from the gateway's cache (None when the gateway does not know the guild)."""
    guild = bot.get_guild(guild_id)
    if guild is None or guild.me is None:
        return None
    checks = []
    for need in needs:
        channel = guild.get_channel(need.channel_id)
        if channel is None:
            checks.append(ChannelCheck(need.channel_id, need.purpose, ("channel_missing",)))
            continue
        permissions = channel.permissions_for(guild.me)
        missing = [name for name in CHANNEL_PERMISSIONS if not getattr(permissions, name)]
        role = guild.get_role(need.role_id) if need.role_id else None
        if role is not None and not role.mentionable and not permissions.mention_everyone:
            missing.append(ROLE_PING_PERMISSION)
        checks.append(ChannelCheck(need.channel_id, need.purpose, tuple(missing)))
    return checks


def racetime_lines(healths: list[CategoryHealth]) -> list[str]:
    """One line per category: its bot, when its token was last refreshed, and its last error."""
    lines = []
    for health in healths:
        bot = {"none": "no bot", "default": "shared bot"}.get(health.credentials, "own bot")
        mark = "✅" if health.healthy else "⚠️"
        line = f"{mark} `{safe(health.category, 50)}` · {bot} · token {_ago(health.last_token_at)}"
        if health.last_error and health.last_error_at is not None:
            line += f" · last error {_ago(health.last_error_at)}: {safe(health.last_error, 200)}"
        elif health.last_error:
            line += f" · {safe(health.last_error, 200)}"
        lines.append(line)
    return lines


def status_embed(report: StatusReport) -> discord.Embed:
    """One embed an organizer can read before an event: problems first, then each part."""
    problems = report.problems
    embed = discord.Embed(
        title="Startline status",
        colour=discord.Colour.red() if problems else discord.Colour.green(),
        description=_field([f"⚠️ {problem}" for problem in problems], "✅ Nothing needs attention."),
    )
    processes = [
        f"`{p.hostname}` pid {p.pid} · {safe(p.version, 40)} · Discord {p.discord}"
        + (" · this one" if p.this_process else "")
        for p in report.processes
    ]
    embed.add_field(name=f"Processes ({report.process_count})", value=_field(processes, "none"), inline=False)
    jobs = [
        f"{'⚠️' if job.behind else '✅'} `{job.name}` every {job.interval_seconds:g} s · last success "
        f"{_ago(job.last_success_at)}" + (f" · {int(job.lag_seconds)} s behind" if job.lag_seconds >= 1 else "")
        for job in report.jobs
    ]
    embed.add_field(name="Jobs", value=_field(jobs, "no job has run yet"), inline=False)
    outbox = f"{report.outbox_depth} waiting" + (
        f", the oldest since {ts(report.outbox_oldest_at, 'R')}" if report.outbox_oldest_at else ""
    )
    embed.add_field(
        name="Notifications", value=f"{outbox}\n{report.failed_dms_last_day} DMs failed in the last day", inline=False
    )
    racetime = _field(racetime_lines(report.racetime), "no category in use")
    embed.add_field(name="RaceTime.gg", value=racetime, inline=False)
    permissions = report.permissions
    channels = [
        f"{'⚠️' if check.missing else '✅'} <#{check.channel_id}> ({safe(check.purpose, 100)})"
        + (": lacks " + ", ".join(PERMISSION_LABELS.get(m, m) for m in check.missing) if check.missing else "")
        for check in permissions.channels
    ]
    if permissions.source == "needs gateway":
        channels_text = "not checked yet: needs the bot connected to Discord"
    else:
        channels_text = _field(channels, "no announcement or moderator channel is configured (/startline config)")
    embed.add_field(name="Channel permissions", value=channels_text, inline=False)
    embed.set_footer(text=f"Checked {report.generated_at:%Y-%m-%d %H:%M:%S} UTC")
    return embed


class AdminCog(StartlineCog):
    startline = moderator_group("startline", "Server settings for Startline")
    apitoken = moderator_group("apitoken", "Tokens for the REST API (moderators)")

    # ---- /startline config -----------------------------------------------------------------------------------------
    @startline.command(name="config", description="Show or change this server's settings")
    @app_commands.describe(
        organizer_role="Members with this role may run moderator commands",
        announcement_channel="Default channel for race announcements",
        announcement_role="Role to ping in announcements",
        moderator_channel="Where moderators are told about problems (a room that would not open)",
        timezone="Timezone for times typed without an offset, like Europe/Berlin",
        lead_minutes="How long before the start rooms open, in minutes",
        default_room_profile="Room settings for tournaments that name none",
        clear="Unset one setting",
        rotate_calendar="Issue a new calendar feed URL (the old one stops working)",
        scheduled_events="Mirror live races as Discord Scheduled Events (needs Manage Events); on again retries",
        reminders="Default reminders for players who chose none, like 24h,1h (from 10m, 30m, 1h, 3h, 12h, 24h)",
    )
    @manage_server_only()
    async def config(
        self,
        interaction: discord.Interaction,
        organizer_role: discord.Role | None = None,
        announcement_channel: discord.TextChannel | None = None,
        announcement_role: discord.Role | None = None,
        moderator_channel: discord.TextChannel | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,
        lead_minutes: LeadMinutes | None = None,
        default_room_profile: Transform[RoomProfile, RoomProfileOption] | None = None,
        clear: Literal[
            "organizer_role",
            "announcement_channel",
            "announcement_role",
            "moderator_channel",
            "lead_minutes",
            "default_room_profile",
            "reminders",
        ]
        | None = None,
        rotate_calendar: bool = False,
        scheduled_events: bool | None = None,
        reminders: str | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        changes = {
            key: value
            for key, value in {
                "organizer_role_id": organizer_role.id if organizer_role else None,
                "announcement_channel_id": announcement_channel.id if announcement_channel else None,
                "announcement_role_id": announcement_role.id if announcement_role else None,
                "moderator_channel_id": moderator_channel.id if moderator_channel else None,
                "timezone": timezone,
                "room_open_lead_minutes": lead_minutes,
                "default_room_profile_id": default_room_profile.id if default_room_profile else None,
                "scheduled_events": scheduled_events,
                "default_reminder_offsets": reminders,
            }.items()
            if value is not None
        }
        if clear is not None:
            changes[CLEARABLE[clear]] = None
        actor = self.actor(interaction)
        settings = await self.services.guilds.update(guild_id, actor, **changes) if changes else None
        settings = settings or await self.services.guilds.get(guild_id)
        calendar_url = await self.services.calendar.feed_url(guild_id, actor, rotate=rotate_calendar)
        profile_name = None
        if settings.default_room_profile_id is not None:
            profile_name = (await self.services.room_profiles.get(guild_id, settings.default_room_profile_id)).name
        lead = settings.room_open_lead_minutes
        default_lead = self.services.settings.scheduler.room_open_lead_minutes
        embed = discord.Embed(title="Startline settings", colour=EMBED_COLOUR)
        embed.add_field(name="Organizer role", value=_mention("role", settings.organizer_role_id))
        embed.add_field(name="Announcements", value=_mention("channel", settings.announcement_channel_id))
        embed.add_field(name="Announcement ping", value=_mention("role", settings.announcement_role_id))
        embed.add_field(name="Moderator channel", value=_mention("channel", settings.moderator_channel_id))
        embed.add_field(name="Timezone", value=settings.timezone)
        embed.add_field(name="Rooms open", value=f"{lead if lead is not None else default_lead} min before the start")
        embed.add_field(name="Default room profile", value=safe(profile_name) if profile_name else "built-in")
        embed.add_field(name="Scheduled events", value=describe_scheduled_events(settings), inline=False)
        embed.add_field(name="Default reminders", value=_default_reminders(settings), inline=False)
        embed.add_field(
            name="Calendar feed (keep it private)",
            value=f"<{calendar_url}>" + (" — new URL, the old one no longer works" if rotate_calendar else ""),
            inline=False,
        )
        bots = await self.bot.app.status.racetime_health()
        embed.add_field(
            name="RaceTime.gg bots (set by the bot's administrator)",
            value=_field(racetime_lines(bots), "none configured: rooms cannot open"),
            inline=False,
        )
        done = f"Updated {len(changes)} setting{'s' if len(changes) != 1 else ''}." if changes else None
        await respond(interaction, done, embed=embed)

    # ---- /startline status ----------------------------------------------------------------------------------------
    async def cog_load(self) -> None:
        # The API's /status asks the gateway through this, when this process has one.
        self.app.permission_probe = lambda guild_id, needs: channel_permissions(self.bot, guild_id, needs)

    async def cog_unload(self) -> None:
        self.app.permission_probe = None

    @startline.command(
        name="status", description="Jobs, notifications, RaceTime.gg and channel permissions at a glance"
    )
    @moderator_only()
    async def status(self, interaction: discord.Interaction) -> None:
        report = await self.app.status.status(self.guild_id(interaction), probe=self.app.permission_probe)
        await respond(interaction, embed=status_embed(report))

    # ---- /startline sync -------------------------------------------------------------------------------------------
    @startline.command(name="sync", description="Publish the slash commands to Discord (bot owners only)")
    @app_commands.describe(scope="here: this server at once; global: every server, within about an hour")
    @owner_only()
    async def sync(self, interaction: discord.Interaction, scope: Literal["here", "global"] = "here") -> None:
        await think(interaction)
        if scope == "global":
            report = await sync_commands(self.bot.tree, include_global=True)
        else:
            report = await sync_commands(self.bot.tree, guild_ids=[self.guild_id(interaction)])
        await respond(interaction, "Synced:\n" + "\n".join(f"- {line}" for line in report))

    # ---- /apitoken ---------------------------------------------------------------------------------------------------
    @apitoken.command(name="create", description="Create a REST API token for this server (shown once)")
    @app_commands.describe(name="What it is for, like ci or spreadsheet", scope="read: look only; manage: change")
    @moderator_only()
    async def apitoken_create(
        self, interaction: discord.Interaction, name: str, scope: Literal["read", "manage"] = "read"
    ) -> None:
        player = await self.services.players.get(self.guild_id(interaction), interaction.user.id)
        issued = await self.services.tokens.create(
            self.guild_id(interaction), self.actor(interaction), name=name, scope=scope, owner_player_id=player.id
        )
        await respond(
            interaction,
            f"Created token **{safe(issued.token.name)}** (#{issued.token.id}, {issued.token.scope.value}). "
            f"Copy it now, it is shown only this once:\n```\n{issued.secret}\n```"
            "Send it as `Authorization: Bearer <token>`. Revoke it with `/apitoken revoke`.",
        )

    @apitoken.command(name="list", description="The active REST API tokens of this server")
    @moderator_only()
    async def apitoken_list(self, interaction: discord.Interaction) -> None:
        tokens = await self.services.tokens.list(self.guild_id(interaction))
        lines = [
            f"`#{token.id}` **{safe(token.name, 60)}** · {token.scope.value} · `{token.token_prefix}…`"
            f" · created {ts(token.created_at, 'D')}"
            + (f" · last used {ts(token.last_used_at, 'R')}" if token.last_used_at else " · never used")
            for token in tokens
        ]
        embeds = pages("API tokens", lines, empty="No active tokens. Create one with `/apitoken create`.")
        await Paginator(interaction.user.id, embeds).start(interaction)

    @apitoken.command(name="revoke", description="Revoke a REST API token")
    @app_commands.describe(token="The token's number from /apitoken list")
    @moderator_only()
    async def apitoken_revoke(self, interaction: discord.Interaction, token: RecordNumber) -> None:
        guild_id = self.guild_id(interaction)
        actor = self.actor(interaction)
        known = {item.id: item for item in await self.services.tokens.list(guild_id, include_revoked=True)}
        if token not in known:
            raise NotFound(f"there is no API token #{token} in this server; see /apitoken list")

        async def revoke(_click: discord.Interaction) -> str:
            revoked = await self.services.tokens.revoke(guild_id, token, actor)
            return f"Revoked token **{safe(revoked.name)}** (#{revoked.id}); scripts using it are now refused."

        await ConfirmView(interaction.user.id, revoke, confirm_label="Revoke token").ask(
            interaction,
            f"Revoke API token **{safe(known[token].name)}** (#{token})? Scripts using it stop working at once.",
        )


async def setup(bot) -> None:
    await bot.add_cog(AdminCog(bot))
