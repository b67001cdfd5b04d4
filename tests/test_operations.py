"""Several processes on one database: job leases, heartbeats and the process count, the status report against seeded
states (a stuck job, a full outbox, a failing category), the score upkeep once per interval, and SQLite refusing a
second process."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.app import Application
from bot.services.processes import Heartbeats, Leases, ProcessIdentity
from bot.services.status import ChannelCheck, ChannelNeed
from db.models import (
    Base,
    EventType,
    Notification,
    NotificationKind,
    NotificationStatus,
    ProcessHeartbeat,
)
from db.session import DatabaseInUse, hold_sqlite_for_this_process
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD, make_settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 10, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


# ---- leases ------------------------------------------------------------------------------------------------
async def test_a_lease_is_held_by_one_process_until_it_runs_out(db):
    clock = Clock()
    a, b = Leases(db, "process-a", clock), Leases(db, "process-b", clock)
    assert await a.take("race_poller:alttpr", seconds=60)
    assert not await b.take("race_poller:alttpr", seconds=60)
    assert await a.take("race_poller:alttpr", seconds=60), "the holder renews it"
    clock.advance(59)
    assert not await b.take("race_poller:alttpr", seconds=60)
    clock.advance(2)  # a crashed holder's lease ran out: taken over
    assert await b.take("race_poller:alttpr", seconds=60)
    assert not await a.take("race_poller:alttpr", seconds=60)
    await b.release("race_poller:alttpr")
    assert await a.take("race_poller:alttpr", seconds=60)
    assert await b.take("race_poller:ootr", seconds=60), "leases are per name"


async def test_work_due_once_per_interval_is_done_by_whoever_comes_first(db):
    clock = Clock()
    a, b = Leases(db, "process-a", clock), Leases(db, "process-b", clock)
    assert await a.take("score_upkeep", seconds=600, due_every=3600)
    await a.done("score_upkeep")
    clock.advance(1800)
    assert not await b.take("score_upkeep", seconds=600, due_every=3600)
    assert not await a.take("score_upkeep", seconds=600, due_every=3600)
    clock.advance(1800)
    assert await b.take("score_upkeep", seconds=600, due_every=3600)
    # b crashes before it is done: after the lease a takes it over
    clock.advance(601)
    assert await a.take("score_upkeep", seconds=600, due_every=3600)


async def test_the_score_upkeep_runs_once_per_interval_across_two_processes(services, db):
    tournament = await services.tournaments.create_tournament(GUILD, MODERATOR, name="T")
    pool = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="P")
    for n in range(3):
        await services.tournaments.add_seed(GUILD, tournament.id, pool.id, MODERATOR, url=f"https://s.example/{n}")
    clock = Clock()
    a, b = Leases(db, "process-a", clock), Leases(db, "process-b", clock)
    assert await services.scoring.upkeep(a, every_seconds=3600) == 3
    assert await services.scoring.upkeep(b, every_seconds=3600) == 0
    clock.advance(3600)
    assert await services.scoring.upkeep(b, every_seconds=3600) == 3
    assert await services.scoring.upkeep(None) == 3, "without leases (a single call) it always runs"


# ---- heartbeats --------------------------------------------------------------------------------------------
def heartbeats(db, clock, *, name: str, jobs=None, racetime=None) -> Heartbeats:
    identity = ProcessIdentity(name, "host-" + name, 100, clock())
    return Heartbeats(
        db,
        identity,
        interval_seconds=15,
        version="0.1.0",
        jobs=lambda: jobs or {},
        racetime=lambda: racetime or {},
        discord=lambda: "connected",
        clock=clock,
    )


async def test_the_process_count_is_the_rows_seen_within_two_intervals(db):
    clock = Clock()
    a, b = heartbeats(db, clock, name="a"), heartbeats(db, clock, name="b")
    await a.beat()
    await b.beat()
    await a.beat()  # an upsert: still one row per process
    clock.advance(31)
    await a.beat()
    async with db.read() as session:
        rows = {row.id: row.seen_at for row in (await session.scalars(select(ProcessHeartbeat))).all()}
    assert set(rows) == {"a", "b"}
    window = a.liveness_window
    assert [pid for pid, seen in rows.items() if seen >= clock() - window] == ["a"]
    clock.advance(86_400 + 60)
    await a.beat()  # forgets processes gone for a day
    await a.forget()
    async with db.read() as session:
        assert (await session.scalars(select(ProcessHeartbeat))).all() == []


# ---- the status report -------------------------------------------------------------------------------------
@pytest.fixture
async def app(settings, tmp_path):
    configured = make_settings(
        tmp_path,
        racetime={
            "client_id": "bot",
            "client_secret": "secret",
            "categories": {"ootr": {"client_id": "ootr-bot", "client_secret": "ootr-secret"}},
        },
    )
    application = Application(configured, run_migrations=False, start_jobs=False)
    async with application.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    yield application
    await application.db.dispose()


def job(interval: float, last_success: datetime | None, error: str | None = None, last_run=None) -> dict:
    return {
        "interval_seconds": interval,
        "runs": 10,
        "failures": 1 if error else 0,
        "last_run_at": (last_run or last_success or datetime(2026, 1, 1, tzinfo=UTC)).isoformat(),
        "last_success_at": last_success.isoformat() if last_success else None,
        "last_error": error,
    }


async def seed_process(app, clock, name: str, *, jobs=None, racetime=None, seen_ago: float = 0) -> None:
    values = heartbeats(app.db, clock, name=name, jobs=jobs, racetime=racetime).values(
        clock() - timedelta(seconds=seen_ago)
    )
    async with app.db.transaction() as session:
        session.add(ProcessHeartbeat(id=name, **values))


async def test_a_healthy_guild_shows_no_problem(app):
    report = await app.status.status(GUILD)
    assert report.process_count == 1 and report.processes[0].this_process
    assert report.problems == []
    assert report.outbox_depth == 0 and report.failed_dms_last_day == 0
    assert [h.category for h in report.racetime] == [app.settings.racetime.category]
    assert report.permissions.source == "needs gateway"


async def test_no_racetime_credentials_is_a_problem(settings):
    application = Application(settings, run_migrations=False, start_jobs=False)
    async with application.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    report = await application.status.status(GUILD)
    await application.db.dispose()
    assert "RaceTime.gg (alttpr): RaceTime.gg credentials are not configured." in report.problems


async def test_a_stuck_job_of_another_process_is_shown_with_its_lag(app):
    clock = app.status.clock()
    stuck = clock - timedelta(minutes=10)
    await seed_process(
        app,
        lambda: clock,
        "other",
        jobs={"room_opener": job(20, stuck, error="OperationalError: database is locked", last_run=clock)},
    )
    await seed_process(app, lambda: clock, "gone", seen_ago=120, jobs={"room_opener": job(20, clock)})
    report = await app.status.status(GUILD)
    assert report.process_count == 2, "the process gone for two minutes does not count"
    (opener,) = [j for j in report.jobs if j.name == "room_opener"]
    assert opener.behind and 570 <= opener.lag_seconds <= 590
    assert opener.last_error == "OperationalError: database is locked"
    assert any("room_opener" in p and "10 min ago" in p and "database is locked" in p for p in report.problems)


async def test_a_full_outbox_is_shown_for_its_guild_only(app):
    now = app.status.clock()
    async with app.db.transaction() as session:
        for n in range(250):
            session.add(
                Notification(
                    kind=NotificationKind.DM,
                    event_type=EventType.LIVE_RACE_SCHEDULED,
                    guild_id=GUILD,
                    dedupe_key=f"test:{n}",
                    status=NotificationStatus.PENDING if n % 5 else NotificationStatus.RETRYING,
                    created_at=now - timedelta(minutes=30) + timedelta(seconds=n),
                )
            )
        for n in range(3):
            status = NotificationStatus.FAILED
            session.add(
                Notification(
                    kind=NotificationKind.DM,
                    guild_id=GUILD,
                    dedupe_key=f"failed:{n}",
                    status=status,
                    created_at=now - timedelta(hours=30 if n == 0 else 1),
                )
            )
        session.add(Notification(kind=NotificationKind.DM, guild_id=OTHER_GUILD, dedupe_key="other", created_at=now))
    report = await app.status.status(GUILD)
    assert report.outbox_depth == 250
    assert report.outbox_oldest_at == now - timedelta(minutes=30)
    assert report.failed_dms_last_day == 2, "the one failed 30 h ago is older than a day"
    assert "250 notifications are waiting; the oldest for 30 min." in report.problems
    assert "2 DMs failed in the last day." in report.problems
    other = await app.status.status(OTHER_GUILD)
    assert (other.outbox_depth, other.failed_dms_last_day) == (1, 0)
    assert not any("notifications" in problem for problem in other.problems), "one fresh row is no problem"


async def test_a_failing_category_is_shown_with_its_last_error(app):
    clock = app.status.clock()
    await app.services.tournaments.create_tournament(GUILD, MODERATOR, name="OoT", racetime_category="ootr")
    await app.services.tournaments.create_tournament(GUILD, MODERATOR, name="Default")
    racetime = {
        category: {
            "last_token_at": (clock - timedelta(hours=2)).isoformat(),
            "last_success_at": (clock - timedelta(minutes=5)).isoformat(),
            "last_error": "token: RaceTime.gg refused (invalid_client)",
            "last_error_at": (clock - timedelta(minutes=1)).isoformat(),
        }
        for category in ("alttpr", "ootr")  # each category's bot under its own name
    }
    await seed_process(app, lambda: clock, "other", racetime=racetime)
    report = await app.status.status(GUILD)
    assert [h.category for h in report.racetime] == ["alttpr", "ootr"]
    assert all(not h.healthy and h.last_error == "token: RaceTime.gg refused (invalid_client)" for h in report.racetime)
    assert "RaceTime.gg (ootr): token: RaceTime.gg refused (invalid_client)." in report.problems
    # The same bots succeed again afterwards: healthy.
    racetime["alttpr"]["last_success_at"] = racetime["ootr"]["last_success_at"] = clock.isoformat()
    async with app.db.transaction() as session:
        row = await session.get(ProcessHeartbeat, "other")
        row.racetime = racetime
    assert all(h.healthy for h in (await app.status.status(GUILD)).racetime)


async def test_missing_permissions_are_checked_through_the_probe_and_remembered(app):
    await app.services.guilds.update(
        GUILD, MODERATOR, announcement_channel_id=5001, announcement_role_id=6001, moderator_channel_id=5002
    )
    seen: list[list[ChannelNeed]] = []

    def probe(guild_id: int, needs: list[ChannelNeed]) -> list[ChannelCheck]:
        assert guild_id == GUILD
        seen.append(needs)
        return [ChannelCheck(need.channel_id, need.purpose, ("embed_links",) if need.role_id else ()) for need in needs]

    report = await app.status.status(GUILD, probe=probe)
    assert [(n.channel_id, n.purpose, n.role_id) for n in seen[0]] == [
        (5001, "announcements", 6001),
        (5002, "moderator alerts", None),
    ]
    assert report.permissions.source == "gateway"
    assert "Channel 5001 (announcements) lacks: Embed Links." in report.problems
    later = await app.status.status(GUILD)  # no gateway (the API of a --no-discord process): the last check
    assert later.permissions.source == "last check"
    assert later.permissions.channels == report.permissions.channels
    assert (await app.status.status(OTHER_GUILD)).permissions.source == "needs gateway"


# ---- SQLite is for one process -----------------------------------------------------------------------------
def test_a_second_process_on_one_sqlite_file_is_refused(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'startline.db'}"
    held = hold_sqlite_for_this_process(url)
    assert held is not None
    with pytest.raises(DatabaseInUse, match="another Startline process is already running"):
        hold_sqlite_for_this_process(url)
    env = {"STARTLINE_DATABASE__URL": url, "STARTLINE_API__PORT": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "run.py", "--no-discord"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: another Startline process is already running on {tmp_path / 'startline.db'} (SQLite is for one "
        "process; run several on PostgreSQL, see docs/admin-guide.md)"
    ]
    held.close()  # the first process ends: the next one may start
    assert hold_sqlite_for_this_process(url) is not None
    assert hold_sqlite_for_this_process("postgresql+asyncpg://u:p@127.0.0.1/x") is None
