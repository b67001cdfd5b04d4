"""`/startline status` and `GET /api/v1/status`: what an organizer checks before an event.

One report per guild: the processes the database sees (heartbeats), the jobs' last run and lag across them, this
guild's outbox depth and failed DMs of the last day, RaceTime.gg health for the categories its tournaments use,
and the Discord permissions its configured channels lack. Process-wide facts (processes, jobs, RaceTime.gg) are
the same for every guild; everything else is read for the caller's guild only.

Discord permissions come from the gateway's cache, which only the Discord adapter has: it passes a `probe`, whose
answer is stored (`permission_checks`) so that the API, without a gateway of its own, reports what the last check
saw (or that one is needed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from bot.clock import SYSTEM_CLOCK
from bot.services.processes import Heartbeats
from bot.settings import Settings
from db.models import (
    GuildSettings,
    Notification,
    NotificationKind,
    NotificationStatus,
    PermissionCheck,
    ProcessHeartbeat,
    Tournament,
)
from db.session import Database
from racetime.errors import RacetimeNoCredentials

if TYPE_CHECKING:
    from racetime.clients import RacetimeClients

DUE_STATUSES = (NotificationStatus.PENDING, NotificationStatus.RETRYING)
FAILED_WINDOW = timedelta(days=1)
OUTBOX_AGE_ALERT = timedelta(minutes=5)  # a due notification older than this is a problem worth showing
MIN_LAG_ALERT_SECONDS = 60.0
# What the bot needs in each kind of channel it posts to (discord.py's Permissions attribute names).
CHANNEL_PERMISSIONS = ("view_channel", "send_messages", "embed_links")
ROLE_PING_PERMISSION = "mention_everyone"  # needed for a role that is not mentionable by everyone
PERMISSION_LABELS = {
    "view_channel": "View Channel",
    "send_messages": "Send Messages",
    "embed_links": "Embed Links",
    "mention_everyone": "Mention Everyone (for the role ping)",
    "channel_missing": "the channel does not exist or the bot cannot see it",
}


def credentials_for(racetime: RacetimeClients | None, category: str) -> str | None:
    """Which bot serves a category: its own (health kept under the category's name), one serving every category
    (`default`), or none (None)."""
    return racetime.credentials_for(category) if racetime is not None else None


@dataclass(frozen=True)
class ChannelNeed:
    channel_id: int
    purpose: str  # "announcements" or "moderator alerts", with the tournament's name when it is one's
    role_id: int | None = None  # a role the announcements ping


@dataclass(frozen=True)
class ChannelCheck:
    channel_id: int
    purpose: str
    missing: tuple[str, ...]  # keys of PERMISSION_LABELS


# The gateway's answer for a guild's channels; None when the gateway does not know the guild.
PermissionProbe = Callable[[int, list[ChannelNeed]], list[ChannelCheck] | None]


@dataclass(frozen=True)
class ProcessSeen:
    id: str
    hostname: str
    pid: int
    version: str
    discord: str
    started_at: datetime
    seen_at: datetime
    this_process: bool


@dataclass(frozen=True)
class JobState:
    name: str
    interval_seconds: float
    last_run_at: datetime | None
    last_success_at: datetime | None
    lag_seconds: float
    last_error: str | None
    behind: bool


@dataclass(frozen=True)
class CategoryHealth:
    category: str
    credentials: str  # the bot's name: the category's own slug, `default` (one bot for all) or `none`
    last_token_at: datetime | None
    last_success_at: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    healthy: bool


@dataclass(frozen=True)
class PermissionsState:
    source: str  # "gateway" (checked now), "last check" (stored), "needs gateway" (never checked)
    checked_at: datetime | None
    channels: list[ChannelCheck]


@dataclass(frozen=True)
class StatusReport:
    generated_at: datetime
    processes: list[ProcessSeen]
    jobs: list[JobState]
    outbox_depth: int
    outbox_oldest_at: datetime | None
    failed_dms_last_day: int
    racetime: list[CategoryHealth]
    permissions: PermissionsState
    problems: list[str] = field(default_factory=list)

    @property
    def process_count(self) -> int:
        """How many processes the database saw lately."""
        return len(self.processes)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _latest(*values: datetime | None) -> datetime | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


class StatusService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        heartbeats: Heartbeats,
        *,
        racetime: RacetimeClients | None,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
    ) -> None:
        self.db = db
        self.settings = settings
        self.heartbeats = heartbeats
        self.racetime = racetime
        self.clock = clock

    @property
    def configured_categories(self) -> list[str]:
        """The categories with a bot of their own (the default category when one bot serves all)."""
        if self.racetime is None:
            return []
        return list(self.racetime.categories) or [self.settings.racetime.category]

    async def racetime_health(self, categories: list[str] | None = None) -> list[CategoryHealth]:
        """Each category's bot health across the live processes (default: every configured category)."""
        now = self.clock()
        async with self.db.read() as session:
            rows = (
                await session.scalars(
                    select(ProcessHeartbeat).where(ProcessHeartbeat.seen_at >= now - self.heartbeats.liveness_window)
                )
            ).all()
        wanted = categories if categories is not None else self.configured_categories
        return self._racetime(list(rows), wanted or [self.settings.racetime.category], now)

    async def status(self, guild_id: int, *, probe: PermissionProbe | None = None) -> StatusReport:
        """The guild's status: processes, jobs, RaceTime.gg, the outbox and, with `probe`, channel permissions."""
        now = self.clock()
        async with self.db.read() as session:
            rows = (
                await session.scalars(
                    select(ProcessHeartbeat)
                    .where(ProcessHeartbeat.seen_at >= now - self.heartbeats.liveness_window)
                    .order_by(ProcessHeartbeat.started_at)
                )
            ).all()
            depth, oldest = (
                await session.execute(
                    select(func.count(), func.min(Notification.created_at)).where(
                        Notification.guild_id == guild_id, Notification.status.in_(DUE_STATUSES)
                    )
                )
            ).one()
            failed = await session.scalar(
                select(func.count()).where(
                    Notification.guild_id == guild_id,
                    Notification.kind == NotificationKind.DM,
                    Notification.status == NotificationStatus.FAILED,
                    Notification.created_at >= now - FAILED_WINDOW,
                )
            )
            guild = await session.get(GuildSettings, guild_id)
            tournaments = (
                await session.execute(
                    select(
                        Tournament.name,
                        Tournament.racetime_category,
                        Tournament.announcement_channel_id,
                        Tournament.announcement_role_id,
                    )
                    .where(Tournament.guild_id == guild_id, Tournament.active.is_(True))
                    .order_by(Tournament.id)
                )
            ).all()
            stored = await session.get(PermissionCheck, guild_id)
        processes = self._processes(rows, now)
        jobs = self._jobs(rows, processes, now)
        categories = sorted({category or self.settings.racetime.category for _, category, _, _ in tournaments})
        racetime = self._racetime(rows, categories or [self.settings.racetime.category], now)
        needs = channel_needs(guild, tournaments)
        permissions = await self._permissions(guild_id, needs, probe, stored, now)
        report = StatusReport(
            generated_at=now,
            processes=processes,
            jobs=jobs,
            outbox_depth=depth or 0,
            outbox_oldest_at=oldest,
            failed_dms_last_day=failed or 0,
            racetime=racetime,
            permissions=permissions,
        )
        report.problems.extend(problems_of(report, now))
        return report

    # ---- parts -----------------------------------------------------------------------------------------
    def _processes(self, rows: list[ProcessHeartbeat], now: datetime) -> list[ProcessSeen]:
        me = self.heartbeats.identity
        seen = [
            ProcessSeen(row.id, row.hostname, row.pid, row.version, row.discord, row.started_at, row.seen_at, False)
            for row in rows
            if row.id != me.id
        ]
        # This process, as it is now (its row may be an interval old, or not written yet).
        values = self.heartbeats.values(now)
        seen.append(
            ProcessSeen(me.id, me.hostname, me.pid, values["version"], values["discord"], me.started_at, now, True)
        )
        return seen

    def _job_snapshots(self, rows: list[ProcessHeartbeat], now: datetime) -> list[tuple[datetime, dict[str, Any]]]:
        """(process start, its jobs) of every live process, this one fresh."""
        me = self.heartbeats.identity
        snapshots = [(row.started_at, row.jobs or {}) for row in rows if row.id != me.id]
        snapshots.append((me.started_at, self.heartbeats.values(now)["jobs"]))
        return snapshots

    def _jobs(self, rows: list[ProcessHeartbeat], processes: list[ProcessSeen], now: datetime) -> list[JobState]:
        merged: dict[str, dict[str, Any]] = {}
        earliest_start = min(process.started_at for process in processes)
        for _started, jobs in self._job_snapshots(rows, now):
            for name, job in jobs.items():
                state = merged.setdefault(
                    name, {"interval": float(job.get("interval_seconds") or 0), "run": None, "ok": None, "error": None}
                )
                state["interval"] = min(state["interval"], float(job.get("interval_seconds") or 0)) or state["interval"]
                run_at = _time(job.get("last_run_at"))
                if run_at is not None and (state["run"] is None or run_at > state["run"]):
                    state["run"], state["error"] = run_at, job.get("last_error")
                state["ok"] = _latest(state["ok"], _time(job.get("last_success_at")))
        states = []
        for name in sorted(merged):
            state = merged[name]
            reference = state["ok"] or earliest_start
            lag = max(0.0, (now - reference).total_seconds() - state["interval"])
            states.append(
                JobState(
                    name=name,
                    interval_seconds=state["interval"],
                    last_run_at=state["run"],
                    last_success_at=state["ok"],
                    lag_seconds=lag,
                    last_error=state["error"],
                    behind=lag > max(state["interval"], MIN_LAG_ALERT_SECONDS),
                )
            )
        return states

    def _racetime(self, rows: list[ProcessHeartbeat], categories: list[str], now: datetime) -> list[CategoryHealth]:
        me = self.heartbeats.identity
        snapshots = [row.racetime or {} for row in rows if row.id != me.id]
        snapshots.append(self.heartbeats.values(now)["racetime"])
        health = []
        for category in categories:
            credentials = credentials_for(self.racetime, category)
            configured = credentials is not None
            token = success = error_at = None
            error = None
            for snapshot in snapshots:
                entry = (snapshot.get(credentials) or {}) if credentials is not None else {}
                token = _latest(token, _time(entry.get("last_token_at")))
                success = _latest(success, _time(entry.get("last_success_at")))
                at = _time(entry.get("last_error_at"))
                if at is not None and (error_at is None or at > error_at):
                    error_at, error = at, entry.get("last_error")
            if self.racetime is None:
                error = error or "RaceTime.gg credentials are not configured"
            elif not configured:
                error = error or str(RacetimeNoCredentials(category, self.racetime.categories))
            healthy = configured and (error_at is None or (success is not None and success > error_at))
            health.append(CategoryHealth(category, credentials or "none", token, success, error, error_at, healthy))
        return health

    async def _permissions(
        self,
        guild_id: int,
        needs: list[ChannelNeed],
        probe: PermissionProbe | None,
        stored: PermissionCheck | None,
        now: datetime,
    ) -> PermissionsState:
        checked = probe(guild_id, needs) if probe is not None else None
        if checked is not None:
            result = {
                "channels": [
                    {"channel_id": str(c.channel_id), "purpose": c.purpose, "missing": list(c.missing)} for c in checked
                ]
            }
            async with self.db.transaction() as session:
                row = await session.get(PermissionCheck, guild_id)
                if row is None:
                    session.add(PermissionCheck(guild_id=guild_id, checked_at=now, result=result))
                else:
                    row.checked_at, row.result = now, result
            return PermissionsState("gateway", now, checked)
        if stored is None:
            return PermissionsState("needs gateway", None, [])
        channels = [
            ChannelCheck(int(c["channel_id"]), str(c["purpose"]), tuple(c.get("missing", ())))
            for c in stored.result.get("channels", [])
        ]
        return PermissionsState("last check", stored.checked_at, channels)


def channel_needs(guild: GuildSettings | None, tournaments: list[Any]) -> list[ChannelNeed]:
    """Every channel the guild configured for the bot to post in, with what it is for."""
    needs: list[ChannelNeed] = []
    if guild is not None and guild.announcement_channel_id:
        needs.append(ChannelNeed(guild.announcement_channel_id, "announcements", guild.announcement_role_id))
    if guild is not None and guild.moderator_channel_id:
        needs.append(ChannelNeed(guild.moderator_channel_id, "moderator alerts"))
    for name, _category, channel_id, role_id in tournaments:
        if channel_id:
            needs.append(ChannelNeed(channel_id, f"announcements of {name}", role_id))
    return needs


def problems_of(report: StatusReport, now: datetime) -> list[str]:
    """What an organizer should act on, one sentence each."""
    problems = []
    for job in report.jobs:
        if job.behind:
            since = (
                "never completed a run"
                if job.last_success_at is None
                else (f"last completed a run {_minutes(now - job.last_success_at)} ago")
            )
            error = f" (last error: {job.last_error})" if job.last_error else ""
            problems.append(f"Job {job.name} {since}; it runs every {job.interval_seconds:g} s{error}.")
    if report.outbox_oldest_at is not None and now - report.outbox_oldest_at > OUTBOX_AGE_ALERT:
        waited = _minutes(now - report.outbox_oldest_at)
        problems.append(f"{report.outbox_depth} notifications are waiting; the oldest for {waited}.")
    if report.failed_dms_last_day:
        problems.append(f"{report.failed_dms_last_day} DMs failed in the last day.")
    for health in report.racetime:
        if not health.healthy:
            problems.append(f"RaceTime.gg ({health.category}): {health.last_error or 'no successful request yet'}.")
    for channel in report.permissions.channels:
        if channel.missing:
            missing = ", ".join(PERMISSION_LABELS.get(name, name) for name in channel.missing)
            problems.append(f"Channel {channel.channel_id} ({channel.purpose}) lacks: {missing}.")
    return problems
