"""Polling 500 open rooms against the fake RaceTime.gg over real HTTP (PRODUCT.md §8).

    python benchmarks/bench_poller.py [--races 500] [--changes 50]

Opens the rooms with the room opener, then runs poll cycles: idle, with `--changes` rooms starting, with them
finishing, and idle again. Prints the requests each cycle made (one listing per category plus one detail per
change is the target) and its wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.actors import Actor
from bot.app import Application
from bot.settings import load_settings
from db.types import utcnow
from racetime.client import RacetimeClient
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

GUILD = 1
MODERATOR = Actor.player(2, "bench")


def fake_user(index: int) -> dict:
    user = dict(captured_user("Alice"))
    user.update(id=f"benchuser{index:07d}", name=f"Racer{index}", full_name=f"Racer{index}#0001")
    return user


async def cycle(app: Application, rt: FakeRacetime, label: str) -> None:
    before = len(rt.requests)
    started = time.perf_counter()
    report = await app.services.live_races.poller.run_cycle()
    elapsed = (time.perf_counter() - started) * 1000
    made = rt.requests[before:]
    listings = sum(1 for method, path in made if path.startswith("/o/") and path.endswith("/data"))
    print(
        f"{label:<28} requests {len(made):4d} (listing {listings}, detail {report.detail_requests:3d}, "
        f"applied {report.applied:3d}, errors {report.errors})  wall {elapsed:7.1f} ms"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=500)
    parser.add_argument("--changes", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database={"url": f"sqlite+aiosqlite:///{tmp}/bench.db"},
            api={"enabled": False},
            logging={"level": "WARNING"},
        )
        async with FakeRacetime(seed=1) as rt:
            client = RacetimeClient(rt.base_url, rt.client_id, rt.client_secret, timeout=30.0)
            app = Application(settings, start_jobs=False, racetime_client=client)
            await app.start()
            services = app.services
            tournament = await services.tournaments.create_tournament(
                GUILD, MODERATOR, name="Bench", runs_per_pool=20, racetime_goal="Beat the game"
            )
            pool = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Pool")
            for index in range(args.races):
                await services.tournaments.add_seed(
                    GUILD, tournament.id, pool.id, MODERATOR, url=f"https://example.com/seed/{index}"
                )
            users = [fake_user(index) for index in range(2 * args.changes)]
            for index, user in enumerate(users):
                await services.players.upsert(
                    GUILD, 10_000 + index, MODERATOR, display_name=user["name"], racetime_id=user["id"]
                )
            now = utcnow()
            ids = [
                (
                    await services.live_races.create(
                        GUILD, tournament.id, MODERATOR, pool_id=pool.id, scheduled_at=now + timedelta(minutes=5)
                    )
                ).race.id
                for _ in range(args.races)
            ]

            started = time.perf_counter()
            report = await services.live_races.opener.run_cycle()
            print(
                f"room opener: {report.opened} rooms opened in {time.perf_counter() - started:.2f} s "
                f"({rt.count('POST', '/startrace')} startrace requests)"
            )
            slugs = [(await services.live_races.get(GUILD, race_id)).race.racetime_slug for race_id in ids]

            await cycle(app, rt, f"idle, {args.races} open")
            changed = slugs[: args.changes]
            for number, slug in enumerate(changed):
                rt.add_entrant(slug, users[2 * number])
                rt.add_entrant(slug, users[2 * number + 1])
                rt.start(slug)
            await cycle(app, rt, f"{args.changes} rooms started")
            await cycle(app, rt, "idle")
            for number, slug in enumerate(changed):
                rt.finish_entrant(slug, users[2 * number]["id"], timedelta(hours=1, microseconds=number))
                rt.dnf(slug, users[2 * number + 1]["id"])
            await cycle(app, rt, f"{args.changes} rooms finished")
            await cycle(app, rt, f"idle, {args.races - args.changes} open")
            print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            await app.stop()
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
