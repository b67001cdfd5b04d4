"""Eligibility of every player of a guild for one live race (PRODUCT.md §8).

    python benchmarks/bench_eligibility.py [--players 10000] [--runs 100000] [--repeat 7]

Builds a SQLite file with the players, runs spread over 10 pools of 10 seeds, then times
`compute_eligibility` for the whole guild and counts its SQL statements (a `before_cursor_execute` listener).
The time spent in the garbage collector during each evaluation is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, insert

from bot.app import freeze_startup_objects
from bot.services.eligibility import compute_eligibility
from db.models import Base, GuildPlayer, Player, Pool, Run, RunStatus, Seed, Tournament
from db.session import Database

GUILD = 1
POOLS = 10
SEEDS_PER_POOL = 10


class CollectorClock:
    """A `gc.callbacks` entry adding up the time spent in collections."""

    def __init__(self) -> None:
        self.total = 0.0
        self._started = 0.0

    def __call__(self, phase: str, _info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.total += time.perf_counter() - self._started


async def build(db: Database, players: int, runs: int, rng: random.Random) -> tuple[Tournament, Pool, int]:
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    async with db.transaction() as session:
        tournament = Tournament(guild_id=GUILD, name="Bench", runs_per_pool=2)
        session.add(tournament)
        await session.flush()
        pools = [Pool(tournament_id=tournament.id, name=f"Pool {i}") for i in range(POOLS)]
        session.add_all(pools)
        await session.flush()
        seeds = [
            Seed(pool_id=pool.id, url=f"https://example.com/{pool.id}/{n}")
            for pool in pools
            for n in range(SEEDS_PER_POOL)
        ]
        session.add_all(seeds)
        await session.flush()
        seed_ids = [seed.id for seed in seeds]
        await session.execute(
            insert(Player),
            [
                # Half the links verified (on the player), half set by moderators (on the roster entry).
                {"id": i, "discord_user_id": 10**15 + i, "racetime_id": f"rt{i:014d}" if i % 2 else None}
                for i in range(1, players + 1)
            ],
        )
        await session.execute(
            insert(GuildPlayer),
            [
                {
                    "guild_id": GUILD,
                    "player_id": i,
                    "display_name": f"player{i:05d}",
                    "racetime_id": None if i % 2 or i % 20 == 0 else f"rt{i:014d}",
                }
                for i in range(1, players + 1)
            ],
        )
        statuses = [RunStatus.FINISHED] * 90 + [RunStatus.FORFEIT] * 8 + [RunStatus.IN_PROGRESS] * 2
        rows = []
        for _ in range(runs):
            status = rng.choice(statuses)
            rows.append(
                {
                    "tournament_id": tournament.id,
                    "seed_id": rng.choice(seed_ids),
                    "player_id": rng.randint(1, players),
                    "status": status,
                    "elapsed_us": rng.randint(3_000, 9_000) * 1_000_000 if status is RunStatus.FINISHED else None,
                    "reattempted": rng.random() < 0.05,
                }
            )
        await session.execute(insert(Run), rows)
        return tournament, pools[0], seed_ids[0]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
        started = time.perf_counter()
        tournament, pool, seed_id = await build(db, args.players, args.runs, random.Random(42))
        print(f"setup: {args.players} players, {args.runs} runs in {time.perf_counter() - started:.1f} s")
        freeze_startup_objects()  # as `run.py serve` does once the process is wired

        statements: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        collector = CollectorClock()
        gc.callbacks.append(collector)
        timings, cpu, in_gc, report = [], [], [], None
        for _ in range(args.repeat):
            statements.clear()
            async with db.read() as session:
                collector.total = 0.0
                started, started_cpu = time.perf_counter(), time.process_time()
                report = await compute_eligibility(
                    session, guild_id=GUILD, tournament=tournament, pool=pool, seed_id=seed_id
                )
                timings.append((time.perf_counter() - started) * 1000)
                in_gc.append(collector.total * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)  # every thread of the process
        queries = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert report is not None
        reasons: dict[str, int] = {}
        for _candidate, reason in report.ineligible:
            key = reason if not reason.startswith("Already ran") else "Already ran N of M in pool P"
            reasons[key] = reasons.get(key, 0) + 1
        print(f"eligibility for {args.players} players: {len(report.eligible)} eligible, {len(report.ineligible)} not")
        for reason, count in sorted(reasons.items(), key=lambda item: -item[1]):
            print(f"  {count:6d}  {reason}")
        print(f"queries per evaluation: {len(queries)}")
        print(
            f"time over {args.repeat} runs: median {statistics.median(timings):.1f} ms, "
            f"min {min(timings):.1f} ms, max {max(timings):.1f} ms (first {timings[0]:.1f} ms)"
        )
        print(f"CPU time of this process (all threads): median {statistics.median(cpu):.1f} ms")
        print(f"of that in the garbage collector: median {statistics.median(in_gc):.1f} ms, max {max(in_gc):.1f} ms")
        print(f"machine load average (1 min) during the run: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        await db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
