"""Reminders at scale (issue 13): 10,000 players with a reminder offset for one race; the reminders job queues them.

    python benchmarks/bench_reminders.py [--players 10000] [--rsvp] [--database-url URL]

Every player is on the guild's roster, chose the offset 1 h (`reminder_preferences`) and subscribes to the scheduled
notice (415) in the guild, which is who gets reminders for a race they may race; with `--rsvp` they RSVP'd the race
instead and chose nothing (the default offset). The race starts in 30 minutes, so the 1 h reminder is due.

Timed: one `ReminderService.queue_due()` (the `reminders` job's cycle, without its lease), wall and CPU time of this
process (the database is in-process for SQLite; for PostgreSQL, `--database-url`, the server's own CPU is not
counted), with the number of SQL statements it ran and the bound parameters they carried. Then the same cycle again:
it offers the same rows and queues none (their dedupe keys). The outbox's reminder rows are counted after each
cycle: exactly `--players`, then still that many.

`--database-url` takes an empty PostgreSQL database you own (its tables are dropped and made again).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, func, insert, select

from bot.services.reminders import ReminderService, reminder_key_prefix
from db.models import (
    Base,
    EventType,
    GuildPlayer,
    LiveRace,
    Notification,
    NotificationSubscription,
    Player,
    Pool,
    RaceRsvp,
    ReminderPreference,
    Tournament,
)
from db.session import Database
from db.types import utcnow

GUILD = 1
USER_BASE = 10**15


async def build(db: Database, players: int, rsvp: bool) -> int:
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    now = utcnow()
    ids = range(1, players + 1)
    async with db.transaction() as session:
        tournament = Tournament(guild_id=GUILD, name="Bench")
        session.add(tournament)
        await session.flush()
        pool = Pool(tournament_id=tournament.id, name="Pool A")
        session.add(pool)
        await session.flush()
        race = LiveRace(
            guild_id=GUILD,
            tournament_id=tournament.id,
            pool_id=pool.id,
            title="Bench race",
            scheduled_at=now + timedelta(minutes=30),
            marker="bench",
        )
        session.add(race)
        await session.flush()
        await session.execute(
            insert(Player), [{"id": i, "discord_user_id": USER_BASE + i, "racetime_id": f"rt{i:014d}"} for i in ids]
        )
        await session.execute(
            insert(GuildPlayer), [{"guild_id": GUILD, "player_id": i, "display_name": f"player{i:05d}"} for i in ids]
        )
        if rsvp:
            await session.execute(
                insert(RaceRsvp), [{"guild_id": GUILD, "live_race_id": race.id, "player_id": i} for i in ids]
            )
        else:
            await session.execute(
                insert(ReminderPreference), [{"guild_id": GUILD, "player_id": i, "offsets": "60"} for i in ids]
            )
            await session.execute(
                insert(NotificationSubscription),
                [
                    {"player_id": i, "event_type": EventType.LIVE_RACE_SCHEDULED, "guild_id": GUILD, "active": True}
                    for i in ids
                ],
            )
        return race.id


class StatementCounter:
    """Counts the SQL statements (an executemany counts once) and their bound parameters on an engine."""

    def __init__(self, db: Database) -> None:
        self.statements = 0
        self.parameters = 0
        event.listen(db.engine.sync_engine, "before_cursor_execute", self._count)

    def _count(self, conn, cursor, statement, parameters, context, executemany) -> None:
        self.statements += 1
        if executemany:
            self.parameters += sum(len(p) for p in parameters)
        elif parameters:
            self.parameters += len(parameters)

    def reset(self) -> tuple[int, int]:
        counts = (self.statements, self.parameters)
        self.statements = self.parameters = 0
        return counts


async def reminder_rows(db: Database, race_id: int) -> int:
    async with db.read() as session:
        return await session.scalar(
            select(func.count(Notification.id)).where(Notification.dedupe_key.like(f"{reminder_key_prefix(race_id)}%"))
        )


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite+aiosqlite:///{tmp}/bench.db"
        db = Database(url)
        try:
            started = time.perf_counter()
            race_id = await build(db, args.players, args.rsvp)
            print(f"setup: {args.players:,} players ({'RSVPs' if args.rsvp else 'offset 1 h + 415'}) on {db.dialect}")
            print(f"  in {time.perf_counter() - started:.1f} s")
            service = ReminderService(db)
            counter = StatementCounter(db)
            ok = True
            for run in ("first cycle", "rerun"):
                before = await reminder_rows(db, race_id)
                counter.reset()
                wall, cpu = time.perf_counter(), time.process_time()
                offered = await service.queue_due()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                statements, parameters = counter.reset()
                rows = await reminder_rows(db, race_id)
                queued = rows - before
                print(
                    f"{run}: offered {offered:,}, queued {queued:,} (reminder rows now {rows:,}) in "
                    f"{wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU; {statements} SQL statements, "
                    f"{parameters:,} bound parameters"
                )
                expected = args.players if run == "first cycle" else 0
                if queued != expected or rows != args.players:
                    print(f"  WRONG: expected {expected:,} queued and {args.players:,} rows")
                    ok = False
        finally:
            await db.dispose()
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--rsvp", action="store_true", help="the players RSVP'd (default offset) instead of choosing")
    parser.add_argument("--database-url", help="an empty PostgreSQL database (default: a temporary SQLite file)")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
