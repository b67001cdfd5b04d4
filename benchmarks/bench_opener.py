"""Rooms due at once: the room opener against the fake RaceTime.gg answering each `startrace` late (issue 17).

    python benchmarks/bench_opener.py [--rooms 500] [--latency 0.3] [--concurrency 8] [--profile FILE] [--statements]

Makes `--rooms` live races whose rooms are all due now (scheduled one lead time ahead, seeds chosen when the rooms
open), makes the fake answer every `startrace` `--latency` seconds late (RaceTime.gg's own latency is of that
order; the fake runs in a child process, since RaceTime.gg does not share the bot's core), runs one opener cycle
and prints how long it took and each room's lateness (when its room was recorded minus when it was due): the
slowest, the median and the 99th percentile. The target: 500 rooms at 300 ms within 30 s. `--concurrency` sets
`scheduler.open_concurrency`; `--profile` writes a cProfile of the bot's process during the cycle to FILE
(`python -m pstats FILE`).

It also prints the bot's CPU a room and its SQL statements a room (a `before_cursor_execute` listener; an
`executemany` counts once, and SQLite's `BEGIN IMMEDIATE` counts as a statement). Each statement is counted by the
step of the opener that made it (the due list, the sweep, claim batches, record batches, failures, releases,
strays); a statement made outside the cycle's tasks (another job, a subscriber's task) is counted apart and left
out of the figure a room. `--statements` prints them by step, kind and table, with the number of transactions and
rooms of each step: a batch's statements are per transaction, so how many a room takes depends on how the rooms
batched (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import cProfile
import functools
import multiprocessing
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event

from bot.actors import Actor
from bot.app import Application
from bot.settings import load_settings
from db.models import LiveRace, RaceStatus, Seed
from db.types import utcnow
from racetime.client import RacetimeClient
from tests.fakes.racetime_server import FakeRacetime

GUILD = 1
MODERATOR = Actor.player(2, "bench")
LEAD_MINUTES = 15
_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE)\s+"?(\w+)')  # a statement's (first) table, to count statements by
OUTSIDE = "not the opener's"  # a statement made outside the cycle's tasks
_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("bench_opener_step", default=OUTSIDE)
# The opener's steps, by the method that makes them: (step, how many rooms a call handles, or None: one).
STEPS = {
    "due_race_ids": ("due list", None),
    "sweep": ("sweep", None),
    "_claim_batch": ("claim", lambda args: len(args[0])),
    "_claim": ("claim", None),
    "_record_batch": ("record", lambda args: len(args[0])),
    "_record_failure": ("failure", None),
    "_release": ("release", None),
}


class StepCounter:
    """Counts the statements of each step of the opener (`STEPS`), its transactions (calls) and their rooms."""

    def __init__(self) -> None:
        self.statements: collections.Counter[tuple[str, str]] = collections.Counter()
        self.calls: collections.Counter[str] = collections.Counter()
        self.rooms: collections.Counter[str] = collections.Counter()
        self.batches: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)

    def count(self, _conn, _cursor, statement, _params, _context, _many) -> None:
        found = _TABLE.search(statement)
        kind = f"{statement.split(None, 1)[0].upper()} {found.group(1) if found else ''}".strip()
        self.statements[(_STEP.get(), kind)] += 1

    def wrap(self, target: object, name: str, step: str, rooms) -> None:
        method = getattr(target, name)

        @functools.wraps(method)
        async def counted(*args, **kwargs):
            token = _STEP.set(step)
            try:
                return await method(*args, **kwargs)
            finally:
                _STEP.reset(token)
                number = rooms(args) if rooms else 1
                self.calls[step] += 1
                self.rooms[step] += number
                self.batches[step][number] += 1

        setattr(target, name, counted)

    def report(self, rooms: int) -> None:
        per_step: collections.Counter[str] = collections.Counter()
        for (step, _kind), number in self.statements.items():
            per_step[step] += number
        print("SQL statements by step (a transaction is one call; per room: divided by all the rooms):")
        for step, total in per_step.most_common():
            calls = self.calls.get(step, 0)
            sizes = " ".join(f"{size}:{n}" for size, n in sorted(self.batches[step].items()))
            print(
                f"  {step:<16} {total:>6} = {total / max(1, rooms):>4.2f} a room"
                + (
                    f", {calls} calls of {self.rooms[step] / calls:.2f} rooms on average, "
                    f"{total / calls:.2f} a call (rooms a call: number of calls: {sizes})"
                    if calls
                    else ""
                )
            )
            for (kind_step, kind), number in sorted(self.statements.items(), key=lambda item: -item[1]):
                if kind_step == step:
                    print(
                        f"      {number:>6}  {kind:<40} {number / max(1, rooms):>5.2f} a room"
                        + (f", {number / calls:.2f} a call" if calls else "")
                    )


def _serve_fake(latency: float, ready, stop) -> None:
    """Child process: the fake RaceTime.gg, so its work does not share the bot's event loop and core."""

    async def serve() -> None:
        async with FakeRacetime(seed=1) as rt:
            rt.set_delay(latency, "/startrace")
            ready.put((rt.base_url, rt.client_id, rt.client_secret))
            await asyncio.to_thread(stop.wait)

    asyncio.run(serve())


async def _in_step(work, step: str):
    """Run `work` with its statements counted as `step` (the tasks it starts inherit it)."""
    _STEP.set(step)
    return await work


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=500)
    parser.add_argument("--latency", type=float, default=0.3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the cycle to FILE")
    parser.add_argument("--statements", action="store_true", help="print the SQL statements by kind and table")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database={"url": f"sqlite+aiosqlite:///{tmp}/bench.db"},
            api={"enabled": False},
            logging={"level": "WARNING"},
            scheduler={"open_concurrency": args.concurrency, "room_open_lead_minutes": LEAD_MINUTES},
        )
        context = multiprocessing.get_context("spawn")
        ready, stop = context.Queue(), context.Event()
        fake = context.Process(target=_serve_fake, args=(args.latency, ready, stop), daemon=True)
        fake.start()
        try:
            base_url, client_id, client_secret = ready.get(timeout=120)
            client = RacetimeClient(base_url, client_id, client_secret, timeout=30.0)
            app = Application(settings, start_jobs=False, racetime_client=client)
            await app.start()
            services = app.services
            tournament = await services.tournaments.create_tournament(
                GUILD, MODERATOR, name="Bench", racetime_goal="Beat the game"
            )
            pool = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Pool")
            due_at = utcnow()
            async with app.db.transaction() as session:  # bulk: the benchmark measures the opener, not creation
                session.add_all(
                    Seed(pool_id=pool.id, url=f"https://example.com/seed/{index}") for index in range(args.rooms)
                )
                session.add_all(
                    LiveRace(
                        guild_id=GUILD,
                        tournament_id=tournament.id,
                        pool_id=pool.id,
                        title=f"Race {index}",
                        scheduled_at=due_at + timedelta(minutes=LEAD_MINUTES),
                        marker=f"bench{index:05d}",
                        created_by=MODERATOR.label,
                    )
                    for index in range(args.rooms)
                )

            counter = StepCounter()
            opener = services.live_races.opener
            for name, (step, rooms) in STEPS.items():
                counter.wrap(opener, name, step, rooms)
            counter.wrap(opener.strays, "close", "strays", None)
            event.listen(app.db.engine.sync_engine, "before_cursor_execute", counter.count)
            profile = cProfile.Profile() if args.profile else None
            started, cpu_started = time.perf_counter(), time.process_time()
            if profile is not None:
                profile.enable()
            report = await asyncio.create_task(_in_step(opener.run_cycle(), "cycle (other)"))
            if profile is not None:
                profile.disable()
                profile.dump_stats(args.profile)
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            event.remove(app.db.engine.sync_engine, "before_cursor_execute", counter.count)
            async with app.db.read() as session:
                rows = (await session.execute(LiveRace.__table__.select())).all()
            late = sorted(
                (row.room_opened_at - due_at).total_seconds() for row in rows if row.status == RaceStatus.ROOM_OPEN
            )
            print(
                f"{args.rooms} rooms due at once, startrace answered {args.latency * 1000:.0f} ms late, "
                f"open_concurrency {args.concurrency}"
            )
            print(
                f"opened {report.opened}, failed {report.failed} in {elapsed:.1f} s "
                f"({client.stats['startrace']} startrace requests); CPU of the bot's process "
                f"{cpu:.1f} s, {cpu * 1000 / max(1, args.rooms):.0f} ms a room"
            )
            outside = sum(number for (step, _), number in counter.statements.items() if step == OUTSIDE)
            total = sum(counter.statements.values()) - outside
            begins = sum(n for (step, kind), n in counter.statements.items() if kind == "BEGIN" and step != OUTSIDE)
            print(
                f"SQL statements of the opener: {total}, {total / max(1, args.rooms):.1f} a room "
                f"({(total - begins) / max(1, args.rooms):.1f} without SQLite's BEGIN IMMEDIATE); "
                f"claimed in {counter.calls['claim']} transactions, recorded in {counter.calls['record']}; "
                f"{outside} other statements meanwhile (not the opener's)"
            )
            # A batch's statements are per transaction: how many a room takes depends on how the rooms batched,
            # which depends on the machine's load. Load-independent: a claim transaction for `open_concurrency`
            # rooms plus a record transaction for one room alone (a quiet machine's usual record batch).
            per_call = {
                step: sum(n for (kind_step, _), n in counter.statements.items() if kind_step == step) / calls
                for step, calls in counter.calls.items()
                if calls
            }
            if "claim" in per_call and "record" in per_call:
                print(
                    f"statements a transaction: claim {per_call['claim']:.1f} "
                    f"({counter.rooms['claim'] / counter.calls['claim']:.1f} rooms on average), "
                    f"record {per_call['record']:.1f} "
                    f"({counter.rooms['record'] / counter.calls['record']:.2f} rooms on average); "
                    f"a room recorded alone: {per_call['record'] + per_call['claim'] / args.concurrency:.1f}"
                )
            if args.statements:
                counter.report(args.rooms)
            if late:
                p99 = statistics.quantiles(late, n=100)[98] if len(late) > 1 else late[0]
                print(
                    f"lateness: slowest room {late[-1]:.1f} s, median {statistics.median(late):.1f} s, p99 {p99:.1f} s"
                )
            print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            await app.stop()
            await client.aclose()
        finally:
            stop.set()
            fake.join(timeout=30)


if __name__ == "__main__":
    asyncio.run(main())
