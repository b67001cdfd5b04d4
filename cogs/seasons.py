"""/template, /series, /phase and /season: a season's schedule (issue 15). `/liverace-admin batch` is in liverace.py."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

import discord
from discord import app_commands
from discord.app_commands import Transform

from bot.errors import ValidationFailed
from bot.services.recurrence import zone_of
from cogs._common.base import StartlineCog
from cogs._common.checks import admin_group, moderator_only, player_group
from cogs._common.formatting import pages, safe, shorten
from cogs._common.options import (
    LeadMinutes,
    PhaseOption,
    PoolOption,
    SeasonOption,
    SeriesOption,
    StartOption,
    TemplateOption,
    TimezoneOption,
    TournamentOption,
    WhenOption,
    given,
)
from cogs._common.respond import respond
from cogs._common.timeparse import ReadDay, ReadTime
from cogs._common.views import Paginator
from db.models import Pool, RaceTemplate, Tournament


def _day(value: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValidationFailed(f"{field} must be a date like 2026-12-05", field=field) from None


def _ts(moment: datetime) -> str:
    return f"<t:{int(moment.timestamp())}:F>"


def series_line(view) -> str:
    series = view.series
    upcoming = ", ".join(_ts(o.starts_at) for o in view.next_occurrences[:1]) or "none"
    reason = f" — {safe(series.status_reason, 200)}" if series.status_reason else ""
    end = (
        f" · {series.count} races in all"
        if series.count
        else f" · until <t:{int(series.until.timestamp())}:d>"
        if series.until
        else ""
    )
    return (
        f"`#{series.id}` **{safe(series.name, 60)}** · `{series.rrule}` in {series.timezone}{end} · "
        f"{series.status.value}{reason} · next: {upcoming}"
    )


_MENTION = re.compile(r"<@!?(\d{15,20})>|(?<![\d<@!])(\d{15,20})(?!\d)")


def _user_ids(text: str) -> list[int]:
    """Discord user ids from mentions (`<@123…>`) or bare ids, in order, each once; anything else is refused."""
    found = [int(a or b) for a, b in _MENTION.findall(text)]
    rest = _MENTION.sub("", text).replace(",", " ").strip()
    if rest or not found:
        shown = f" (not {rest[:40]!r})" if rest else ""
        raise ValidationFailed(
            f"players must be mentions or Discord ids separated by spaces or commas{shown}", field="players"
        )
    return list(dict.fromkeys(found))


def phase_line(view) -> str:
    pools = ", ".join(safe(p.name, 30) for p in view.pools) or "no pools"
    advance = f" · top {view.phase.advance_count} advance" if view.phase.advance_count else ""
    return f"**{safe(view.phase.name, 60)}** · {view.phase.status.value} · pools: {pools}{advance}"


class SeasonCog(StartlineCog):
    template = player_group("template", "Race templates of a tournament")
    template_admin = admin_group("template", "Create, change and use race templates (moderators)")
    series = player_group("series", "Recurring live races")
    series_admin = admin_group("series", "Create and steer recurring live races (moderators)")
    phase = player_group("phase", "Phases of a tournament")
    phase_admin = admin_group("phase", "Add and close phases (moderators)")
    season = player_group("season", "Seasons: tournaments ranked together")
    season_admin = admin_group("season", "Create seasons and choose their tournaments (moderators)")

    # ---- /template ----------------------------------------------------------------------------------------------
    @template_admin.command(name="create", description="Create a race template (pool, title pattern, local start time)")
    @app_commands.describe(
        name="Unique name in the tournament",
        pool="The pool (use /template-admin edit's pools for a rotation)",
        title_pattern="For example: Week {n} — {pool} ({n}, {date}, {pool}, {tournament}, {series})",
        start_time="Local start time, like 20:00",
        timezone="The time zone of the start time (default: the server's)",
        lead_minutes="How long before the start its races' rooms open (default: the tournament's)",
        announcement_channel="Where its races are announced (default: the tournament's channel)",
        announcement_role="Role to ping in its races' announcements (default: the tournament's)",
    )
    @moderator_only()
    async def template_create(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        name: str,
        pool: Transform[Pool, PoolOption],
        title_pattern: str | None = None,
        start_time: str | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,
        lead_minutes: LeadMinutes | None = None,
        announcement_channel: discord.TextChannel | None = None,
        announcement_role: discord.Role | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        if start_time is not None and timezone is None:
            timezone = (await self.services.guilds.get(guild_id)).timezone
        template = await self.services.templates.create(
            guild_id,
            tournament.id,
            self.actor(interaction),
            **given(
                name=name,
                pool_ids=[pool.id],
                title_pattern=title_pattern,
                start_time=start_time,
                timezone=timezone,
                room_open_lead_minutes=lead_minutes,
                announcement_channel_id=announcement_channel.id if announcement_channel else None,
                announcement_role_id=announcement_role.id if announcement_role else None,
            ),
        )
        await respond(interaction, f"Created template **{safe(template.name)}** (#{template.id}).")

    @template_admin.command(name="edit", description="Change a race template (its series follow)")
    @app_commands.describe(
        pools="Pool names or ids in rotation order, separated by commas",
        lead_minutes="How long before the start its races' rooms open",
        announcement_channel="Where its races are announced",
        announcement_role="Role to ping in its races' announcements",
        clear="Go back to the tournament's lead time, channel and role",
    )
    @moderator_only()
    async def template_edit(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        template: Transform[RaceTemplate, TemplateOption],
        pools: str | None = None,
        title_pattern: str | None = None,
        start_time: str | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,
        lead_minutes: LeadMinutes | None = None,
        announcement_channel: discord.TextChannel | None = None,
        announcement_role: discord.Role | None = None,
        clear: bool = False,
    ) -> None:
        guild_id = self.guild_id(interaction)
        changes = given(
            title_pattern=title_pattern,
            start_time=start_time,
            timezone=timezone,
            room_open_lead_minutes=lead_minutes,
            announcement_channel_id=announcement_channel.id if announcement_channel else None,
            announcement_role_id=announcement_role.id if announcement_role else None,
        )
        if clear:
            for key in ("room_open_lead_minutes", "announcement_channel_id", "announcement_role_id"):
                changes.setdefault(key, None)
        if pools is not None:
            wanted = [part.strip() for part in pools.split(",") if part.strip()]
            changes["pool_ids"] = await self._pools_named(guild_id, tournament, wanted)  # a rotation may repeat one
        updated = await self.services.templates.update(
            guild_id, tournament.id, template.id, self.actor(interaction), **changes
        )
        await respond(interaction, f"Template **{safe(updated.name)}** changed.")

    @template_admin.command(name="race", description="Schedule a live race from a template (= /liverace-admin create)")
    @app_commands.describe(
        when="A date (at the template's start time), or a start: Friday 19:00, 2026-12-05 20:00, in 90 minutes"
    )
    @moderator_only()
    async def template_race(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        template: Transform[RaceTemplate, TemplateOption],
        when: Transform[ReadTime | ReadDay, StartOption],
        title: str | None = None,
    ) -> None:
        view = await self.services.templates.create_race(
            self.guild_id(interaction),
            tournament.id,
            template.id,
            self.actor(interaction),
            when=when.day if isinstance(when, ReadDay) else when.at,
            **given(title=title),
        )
        await respond(
            interaction,
            f"Scheduled **{safe(view.race.title)}** (#{view.race.id}) for {_ts(view.race.scheduled_at)}.\n"
            f"Read `when` as {when.echo}.",
        )

    @template.command(name="list", description="The race templates of a tournament")
    async def template_list(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption]
    ) -> None:
        templates = await self.services.templates.list(self.guild_id(interaction), tournament.id)
        lines = [
            f"`#{t.id}` **{safe(t.name, 60)}** · {safe(t.title_pattern or 'default title', 80)} · "
            f"{t.start_time or '—'} {t.timezone or ''} · pools {', '.join(map(str, t.pool_ids))}"
            + (f" · room opens {t.room_open_lead_minutes} min before" if t.room_open_lead_minutes is not None else "")
            + (f" · announced in <#{t.announcement_channel_id}>" if t.announcement_channel_id else "")
            + (f" · pings <@&{t.announcement_role_id}>" if t.announcement_role_id else "")
            for t in templates
        ]
        embeds = pages(f"Templates — {shorten(tournament.name, 200)}", lines, empty="No templates yet.")
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=True)

    @template_admin.command(name="delete", description="Delete a race template no series uses")
    @moderator_only()
    async def template_delete(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        template: Transform[RaceTemplate, TemplateOption],
    ) -> None:
        await self.services.templates.delete(
            self.guild_id(interaction), tournament.id, template.id, self.actor(interaction)
        )
        await respond(interaction, f"Deleted template **{safe(template.name)}**.")

    # ---- /series ------------------------------------------------------------------------------------------------
    @series_admin.command(name="create", description="Repeat a template by an iCalendar RRULE")
    @app_commands.describe(
        name="Unique name in the tournament",
        rrule="For example FREQ=WEEKLY;BYDAY=SA (every Saturday)",
        first_date="The first date the rule starts from, like 2026-12-05 (default: today)",
        count="End after this many races",
        timezone="Default: the template's",
    )
    @moderator_only()
    async def series_create(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        template: Transform[RaceTemplate, TemplateOption],
        name: str,
        rrule: str,
        first_date: str | None = None,
        count: app_commands.Range[int, 1, 1000] | None = None,
        timezone: Transform[str, TimezoneOption] | None = None,
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self.services.series.create(
            self.guild_id(interaction),
            tournament.id,
            self.actor(interaction),
            name=name,
            rrule=rrule,
            template_id=template.id,
            **given(starts_on=_day(first_date, "first_date") if first_date else None, count=count, timezone=timezone),
        )
        await respond(interaction, f"Created series: {series_line(view)}")

    @series.command(name="list", description="The recurring series of a tournament")
    async def series_list(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption]
    ) -> None:
        page = await self.services.series.list(self.guild_id(interaction), tournament.id, limit=200)
        lines = [series_line(view) for view in page.items]
        embeds = pages(f"Series — {shorten(tournament.name, 200)}", lines, empty="No series yet.")
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=True)

    @series_admin.command(name="skip", description="Skip one occurrence (its race, if made, is cancelled)")
    @app_commands.describe(date="The occurrence's local date, like 2026-12-05")
    @moderator_only()
    async def series_skip(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
        date: str,
    ) -> None:
        day = _day(date)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.services.series.skip(
            self.guild_id(interaction), tournament.id, series.series.id, self.actor(interaction), day=day
        )
        await respond(interaction, f"Skipped the {safe(series.series.name)} race of {day}.")

    @series_admin.command(name="move", description="Move one occurrence to another time")
    @app_commands.describe(date="The occurrence's local date, like 2026-12-05", when="The new start")
    @moderator_only()
    async def series_move(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
        date: str,
        when: Transform[ReadTime, WhenOption],
    ) -> None:
        day = _day(date)
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.services.series.move(
            self.guild_id(interaction), tournament.id, series.series.id, self.actor(interaction), day=day, to=when.at
        )
        await respond(
            interaction,
            f"Moved the {safe(series.series.name)} race of {day} to {_ts(when.at)}.\nRead `when` as {when.echo}.",
        )

    @series_admin.command(name="edit", description="Change a series and all its future races (rule, end, template)")
    @app_commands.describe(
        name="A new name",
        template="Another template of the tournament",
        rrule="A new rule, for example FREQ=WEEKLY;BYDAY=SU",
        first_date="The date the rule starts from, like 2026-12-05",
        count="End after this many races in all",
        until="End after this local date, like 2027-03-28",
        no_end="Remove the end (count or until)",
        timezone="The time zone of its start time",
    )
    @moderator_only()
    async def series_edit(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
        name: str | None = None,
        template: Transform[RaceTemplate, TemplateOption] | None = None,
        rrule: str | None = None,
        first_date: str | None = None,
        count: app_commands.Range[int, 1, 1000] | None = None,
        until: str | None = None,
        no_end: bool = False,
        timezone: Transform[str, TimezoneOption] | None = None,
    ) -> None:
        if count is not None and until is not None:
            raise ValidationFailed("give count or until, not both", field="count")
        if no_end and (count is not None or until is not None):
            raise ValidationFailed("no_end removes the end: give it without count or until", field="no_end")
        changes = given(
            name=name,
            template_id=template.id if template else None,
            rrule=rrule,
            starts_on=_day(first_date, "first_date") if first_date else None,
            count=count,
            timezone=timezone,
        )
        if until is not None:
            zone = zone_of(timezone or series.series.timezone)
            last = datetime.combine(_day(until, "until"), time(23, 59), tzinfo=zone)
            changes["until"] = last.astimezone(UTC)
        if no_end:
            changes.update(count=None, until=None)
        if not changes:
            raise ValidationFailed("nothing to change", field="changes")
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self.services.series.update(
            self.guild_id(interaction), tournament.id, series.series.id, self.actor(interaction), **changes
        )
        await respond(interaction, f"Changed series: {series_line(view)}")

    async def _status(self, interaction: discord.Interaction, tournament: Tournament, series, status: str) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        view = await self.services.series.update(
            self.guild_id(interaction), tournament.id, series.series.id, self.actor(interaction), status=status
        )
        await respond(interaction, series_line(view))

    @series_admin.command(name="pause", description="Stop making new races of a series")
    @moderator_only()
    async def series_pause(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
    ) -> None:
        await self._status(interaction, tournament, series, "paused")

    @series_admin.command(name="resume", description="Make a paused series' races again")
    @moderator_only()
    async def series_resume(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
    ) -> None:
        await self._status(interaction, tournament, series, "active")

    @series_admin.command(name="delete", description="Delete a series; its future races are cancelled")
    @moderator_only()
    async def series_delete(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        series: Transform[object, SeriesOption],
    ) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        await self.services.series.delete(
            self.guild_id(interaction), tournament.id, series.series.id, self.actor(interaction)
        )
        await respond(interaction, f"Deleted series **{safe(series.series.name)}**; its future races are cancelled.")

    # ---- /phase -------------------------------------------------------------------------------------------------
    @phase_admin.command(name="create", description="Add a phase after the tournament's last one")
    @app_commands.describe(
        pool="A pool of this phase",
        pools="Several pools: names or ids separated by commas (with or instead of pool)",
        advance="How many players advance when it closes",
    )
    @moderator_only()
    async def phase_create(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        name: str,
        pool: Transform[Pool, PoolOption] | None = None,
        pools: str | None = None,
        advance: app_commands.Range[int, 1, 10000] | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        pool_ids = [pool.id] if pool else []
        if pools is not None:
            pool_ids += [
                pool_id for pool_id in await self._pool_ids(guild_id, tournament, pools) if pool_id not in pool_ids
            ]
        view = await self.services.phases.create(
            guild_id, tournament.id, self.actor(interaction), name=name, advance_count=advance, pool_ids=pool_ids
        )
        await respond(interaction, f"Added phase {view.phase.position}: {phase_line(view)}.")

    @phase_admin.command(name="edit", description="Rename a phase, change how many advance, or replace its pools")
    @app_commands.describe(
        pools="Its pools: names or ids separated by commas (replaces the list)",
        advance="How many players advance when it closes",
    )
    @moderator_only()
    async def phase_edit(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        phase: Transform[object, PhaseOption],
        name: str | None = None,
        advance: app_commands.Range[int, 1, 10000] | None = None,
        pools: str | None = None,
    ) -> None:
        guild_id = self.guild_id(interaction)
        pool_ids = None if pools is None else await self._pool_ids(guild_id, tournament, pools)
        view = await self.services.phases.update(
            guild_id,
            tournament.id,
            phase.phase.id,
            self.actor(interaction),
            name=name,
            advance_count=advance,
            pool_ids=pool_ids,
        )
        await respond(interaction, f"Phase {view.phase.position} changed: {phase_line(view)}.")

    @phase_admin.command(name="delete", description="Delete an open phase (its pools stay, outside any phase)")
    @moderator_only()
    async def phase_delete(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        phase: Transform[object, PhaseOption],
    ) -> None:
        await self.services.phases.delete(
            self.guild_id(interaction), tournament.id, phase.phase.id, self.actor(interaction)
        )
        await respond(interaction, f"Deleted phase **{safe(phase.phase.name)}**; its pools stay in the tournament.")

    async def _pool_ids(self, guild_id: int, tournament: Tournament, text: str) -> list[int]:
        """Pool names or ids separated by commas, in that order, each once; an unknown one is refused by name."""
        wanted = [part.strip().lstrip("#") for part in text.split(",") if part.strip()]
        if not wanted:
            raise ValidationFailed("name at least one pool, separated by commas", field="pools")
        return list(dict.fromkeys(await self._pools_named(guild_id, tournament, wanted)))

    async def _pools_named(self, guild_id: int, tournament: Tournament, wanted: list[str]) -> list[int]:
        """The ids of the tournament's pools named (by name or id) in `wanted`; an unknown one is refused by name."""
        known = await self.services.tournaments.list_pools(guild_id, tournament.id)
        by_name = {p.name.lower(): p.id for p in known} | {str(p.id): p.id for p in known}
        missing = [part for part in wanted if part.lower() not in by_name]
        if missing:
            raise ValidationFailed(f"no pool called {missing[0]!r} in {tournament.name}", field="pools")
        return [by_name[part.lower()] for part in wanted]

    @phase.command(name="list", description="The phases of a tournament")
    async def phase_list(
        self, interaction: discord.Interaction, tournament: Transform[Tournament, TournamentOption]
    ) -> None:
        views = await self.services.phases.list(self.guild_id(interaction), tournament.id)
        lines = [f"**{v.phase.position}.** {phase_line(v)}" for v in views]
        embeds = pages(f"Phases — {shorten(tournament.name, 200)}", lines, empty="No phases.")
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=True)

    @phase_admin.command(name="close", description="Close a phase and advance its top players (or those you list)")
    @app_commands.describe(
        top="How many advance (default: the phase's setting); ties at the cut all advance",
        players="Exactly these players advance instead: mentions or Discord ids, separated by spaces or commas",
    )
    @moderator_only()
    async def phase_close(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        phase: Transform[object, PhaseOption],
        top: app_commands.Range[int, 1, 10000] | None = None,
        players: str | None = None,
    ) -> None:
        chosen = None if players is None else _user_ids(players)
        await interaction.response.defer(ephemeral=True, thinking=True)
        standings = await self.services.phases.close(
            self.guild_id(interaction),
            tournament.id,
            phase.phase.id,
            self.actor(interaction),
            top=top,
            advance_discord_user_ids=chosen,
        )
        advanced = [s for s in standings if s.advanced]
        names = ", ".join(safe(s.display_name, 40) for s in advanced[:30])
        more = f" and {len(advanced) - 30} more" if len(advanced) > 30 else ""
        await respond(
            interaction,
            f"Closed **{safe(phase.phase.name)}**: {len(advanced)} of {len(standings)} players advance"
            + (f": {names}{more}." if advanced else "."),
        )

    @phase.command(name="leaderboard", description="The standings of one phase")
    async def phase_leaderboard(
        self,
        interaction: discord.Interaction,
        tournament: Transform[Tournament, TournamentOption],
        phase: Transform[object, PhaseOption],
    ) -> None:
        board = await self.services.phases.leaderboard(self.guild_id(interaction), tournament.id, phase.phase.id)
        lines = [f"**{e.rank}.** {safe(e.display_name, 40)} — {e.score:.2f}" for e in board.entries]
        title = f"{shorten(tournament.name, 100)} — {shorten(phase.phase.name, 100)}"
        embeds = pages(title, lines, empty="No scored runs in this phase yet.")
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=True)

    # ---- /season ------------------------------------------------------------------------------------------------
    @season_admin.command(name="create", description="Create a season (tournaments ranked together)")
    @app_commands.describe(best_of="Count only each player's best N tournaments (default: the sum of all)")
    @moderator_only()
    async def season_create(
        self, interaction: discord.Interaction, name: str, best_of: app_commands.Range[int, 1, 100] | None = None
    ) -> None:
        view = await self.services.seasons.create(
            self.guild_id(interaction),
            self.actor(interaction),
            name=name,
            rule="best" if best_of else "sum",
            best_of=best_of,
        )
        await respond(
            interaction, f"Created season **{safe(view.season.name)}**. Add tournaments with `/season-admin add`."
        )

    @season_admin.command(name="add", description="Add a tournament to a season")
    @moderator_only()
    async def season_add(
        self,
        interaction: discord.Interaction,
        season: Transform[object, SeasonOption],
        tournament: Transform[Tournament, TournamentOption],
    ) -> None:
        await self.services.seasons.add_tournament(
            self.guild_id(interaction), season.season.id, tournament.id, self.actor(interaction)
        )
        await respond(interaction, f"Added {safe(tournament.name)} to season **{safe(season.season.name)}**.")

    @season_admin.command(name="remove", description="Take a tournament out of a season")
    @moderator_only()
    async def season_remove(
        self,
        interaction: discord.Interaction,
        season: Transform[object, SeasonOption],
        tournament: Transform[Tournament, TournamentOption],
    ) -> None:
        await self.services.seasons.remove_tournament(
            self.guild_id(interaction), season.season.id, tournament.id, self.actor(interaction)
        )
        await respond(interaction, f"Removed {safe(tournament.name)} from season **{safe(season.season.name)}**.")

    @season.command(name="list", description="The seasons of this server")
    async def season_list(self, interaction: discord.Interaction) -> None:
        page = await self.services.seasons.list(self.guild_id(interaction), limit=200)
        lines = [
            f"`#{v.season.id}` **{safe(v.season.name, 60)}** · "
            + (f"best {v.season.best_of}" if v.season.best_of else "sum")
            + f" · {', '.join(safe(t.name, 30) for t in v.tournaments) or 'no tournaments'}"
            for v in page.items
        ]
        await Paginator(interaction.user.id, pages("Seasons", lines, empty="No seasons yet.")).start(
            interaction, ephemeral=True
        )

    @season.command(name="leaderboard", description="A season's standings")
    @app_commands.describe(public="Post it in the channel for everyone (default: only you see it)")
    async def season_leaderboard(
        self, interaction: discord.Interaction, season: Transform[object, SeasonOption], public: bool = False
    ) -> None:
        board = await self.services.seasons.leaderboard(self.guild_id(interaction), season.season.id)
        lines = [
            f"**{e.rank}.** {safe(e.display_name, 40)} — {e.score:.2f} ({len(e.counted)} tournament"
            f"{'s' if len(e.counted) != 1 else ''})"
            for e in board.entries
        ]
        rule = f"best {board.season.best_of} of {len(board.tournaments)}" if board.season.best_of else "sum"
        embeds = pages(
            f"Season — {shorten(board.season.name, 200)}",
            lines,
            empty="No scored runs in this season yet.",
            footer=f"{rule} of the tournament scores",
        )
        await Paginator(interaction.user.id, embeds).start(interaction, ephemeral=not public)

    @season_admin.command(name="delete", description="Delete a season (its tournaments stay)")
    @moderator_only()
    async def season_delete(self, interaction: discord.Interaction, season: Transform[object, SeasonOption]) -> None:
        await self.services.seasons.delete(self.guild_id(interaction), season.season.id, self.actor(interaction))
        await respond(interaction, f"Deleted season **{safe(season.season.name)}**.")


async def setup(bot) -> None:
    await bot.add_cog(SeasonCog(bot))
