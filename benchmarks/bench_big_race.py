"""A thousand-entrant race (issue 17): from RaceTime.gg's finish to every run recorded, the seed's scores
recomputed and the finish DMs queued, on SQLite.

    python benchmarks/bench_big_race.py [--entrants 1000]

Seeds `--entrants` linked players (in bulk), all subscribed to the finish DM, opens one live race's room on the fake
RaceTime.gg, puts every player in it and starts it (one poll records the start and creates the runs), then finishes
them all on the fake (a few forfeit) and times the one poll cycle that records the finish. Prints its wall time, the
poller's detail requests (one per room that changed is the target), the runs recorded and the DMs queued.
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

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.actors import Actor
from bot.app import Application
from bot.settings import load_settings
from db.models import (
    EventType,
    GuildPlayer,
    Notification,
    NotificationKind,
    NotificationSubscription,
    Player,
    RaceStatus,
    Run,
    RunStatus,
)
from db.types import utcnow
from racetime.client import RacetimeClient
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

GUILD = 1
MODERATOR = Actor.player(2, "bench")


def fake_user(index: int) -> dict:
    user = dict(captured_user("Alice"))
    user.update(id=f"bigrace{index:08d}", name=f"Racer{index}", full_name=f"Racer{index}#0001")
    return user


async def poll(app: Application, rt: FakeRacetime) -> tuple[float, int, object]:
    started = time.perf_counter()
    report = await app.services.live_races.poller.run_cycle()
    return time.perf_counter() - started, report.detail_requests, report


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entrants", type=int, default=1000)
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
                GUILD, MODERATOR, name="Qualifier", racetime_goal="Beat the game"
            )
            pool = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="Pool")
            await services.tournaments.add_seed(GUILD, tournament.id, pool.id, MODERATOR, url="https://x/seed")
            users = [fake_user(index) for index in range(args.entrants)]
            async with app.db.transaction() as session:  # bulk: the benchmark measures the finish, not sign-ups
                players = [Player(discord_user_id=10_000_000 + index) for index in range(args.entrants)]
                session.add_all(players)
                await session.flush()
                session.add_all(
                    GuildPlayer(guild_id=GUILD, player_id=player.id, display_name=user["name"], racetime_id=user["id"])
                    for player, user in zip(players, users, strict=True)
                )
                session.add_all(
                    NotificationSubscription(player_id=p.id, event_type=EventType.LIVE_RACE_FINISHED, guild_id=GUILD)
                    for p in players
                )
            view = await services.live_races.create(
                GUILD, tournament.id, MODERATOR, pool_id=pool.id, scheduled_at=utcnow() + timedelta(minutes=5)
            )
            await services.live_races.opener.run_cycle()
            slug = (await services.live_races.get(GUILD, view.race.id)).race.racetime_slug
            for user in users:
                rt.add_entrant(slug, user)
            rt.start(slug)
            started_poll, _, _ = await poll(app, rt)
            assert (await services.live_races.get(GUILD, view.race.id)).race.status is RaceStatus.IN_PROGRESS

            for index, user in enumerate(users):
                if index % 20 == 19:
                    rt.dnf(slug, user["id"])
                else:
                    rt.finish_entrant(slug, user["id"], timedelta(hours=1, seconds=index, microseconds=index))
            elapsed, details, _ = await poll(app, rt)
            race = (await services.live_races.get(GUILD, view.race.id)).race
            async with app.db.read() as session:
                runs = dict((await session.execute(select(Run.status, func.count()).group_by(Run.status))).all())
                scored = await session.scalar(select(func.count()).where(Run.score.is_not(None)))
                dms = await session.scalar(
                    select(func.count()).where(
                        Notification.kind == NotificationKind.DM,
                        Notification.event_type == EventType.LIVE_RACE_FINISHED,
                    )
                )
            print(f"{args.entrants} entrants: the start was recorded in {started_poll:.2f} s")
            print(
                f"finish: recorded in {elapsed:.2f} s (one poll cycle: {details} detail request(s)); "
                f"race {race.status.value}; "
                f"runs {runs.get(RunStatus.FINISHED, 0)} finished, {runs.get(RunStatus.FORFEIT, 0)} forfeit, "
                f"{scored} scored; {dms} finish DMs queued"
            )
            print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
            await app.stop()
            await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
