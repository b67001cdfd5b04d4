"""Batch creation of live races (issue 15: a batch of 500 lines answers in under a second).

    python benchmarks/bench_batch.py [--lines 500] [--subscribers 200] [--repeat 5]

Builds a SQLite file with a tournament of 5 pools (100 seeds each) and players subscribed to "scheduled" DMs (so
every race also queues its notifications, as in production), then times `BatchService.create_from_csv` for a CSV
of `--lines` races, checked and created in one transaction; each repeat uses a fresh tournament. It also times the
dry run (the checks alone). Prints the median and the spread, and the
median CPU time of the process (SQLite's thread included), which a busy machine does not inflate as it does the
wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from bot.actors import Actor
from bot.services import build_services
from bot.settings import load_settings
from db.models import Base, EventType, GuildPlayer, NotificationSubscription, Player
from db.session import Database

GUILD = 1
POOLS = 5
ACTOR = Actor.system("bench")


async def setup_players(db: Database, subscribers: int) -> None:
    if not subscribers:
        return
    async with db.transaction() as session:
        await session.execute(
            insert(Player), [{"discord_user_id": 10_000 + i, "racetime_id": f"rt{i:08d}"} for i in range(subscribers)]
        )
        await session.execute(
            insert(GuildPlayer),
            [{"guild_id": GUILD, "player_id": i + 1, "display_name": f"P{i}"} for i in range(subscribers)],
        )
        await session.execute(
            insert(NotificationSubscription),
            [
                {"player_id": i + 1, "event_type": EventType.LIVE_RACE_SCHEDULED, "guild_id": None, "active": True}
                for i in range(subscribers)
            ],
        )


async def tournament_with_pools(services, index: int) -> int:
    tournament = await services.tournaments.create_tournament(GUILD, ACTOR, name=f"Bench {index}")
    for p in range(POOLS):
        await services.tournaments.add_pool(GUILD, tournament.id, ACTOR, name=f"Pool {p}")
    return tournament.id


def csv_text(lines: int) -> str:
    start = datetime.now(UTC) + timedelta(days=2)
    rows = ["pool,scheduled_at,title,episode_id"]
    for i in range(lines):
        at = (start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"Pool {i % POOLS},{at},Race {i},ep-{i}")
    return "\n".join(rows) + "\n"


async def main(lines: int, subscribers: int, repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="startline-bench-batch-"))
    settings = load_settings(database={"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"})
    db = Database.from_settings(settings.database)
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    services = build_services(settings, db)
    await setup_players(db, subscribers)
    text = csv_text(lines)
    created, checked, cpu = [], [], []
    for index in range(repeat):
        tid = await tournament_with_pools(services, index)
        started = time.perf_counter()
        preview = await services.batch.create_from_csv(GUILD, tid, ACTOR, text, timezone="UTC", dry_run=True)
        checked.append(time.perf_counter() - started)
        assert len(preview.planned) == lines
        text_for_run = text.replace(",ep-", f",t{index}-ep-")
        started, cpu_started = time.perf_counter(), time.process_time()
        result = await services.batch.create_from_csv(GUILD, tid, ACTOR, text_for_run, timezone="UTC")
        created.append(time.perf_counter() - started)
        cpu.append(time.process_time() - cpu_started)
        assert len(result.created) == lines
    await db.dispose()
    print(f"batch of {lines} lines, {subscribers} players subscribed to 'scheduled' DMs, SQLite, {repeat} runs")
    print(f"  dry run (checks only): median {statistics.median(checked) * 1000:7.1f} ms")
    print(
        f"  created (one transaction, audit, events, outbox): median {statistics.median(created) * 1000:7.1f} ms "
        f"(min {min(created) * 1000:.1f}, max {max(created) * 1000:.1f})"
    )
    # CPU time of the process, SQLite's thread included: what the batch costs when the machine is not shared.
    print(f"  created, CPU time of the process: median {statistics.median(cpu) * 1000:7.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.lines, args.subscribers, args.repeat))
