"""Syncing Discord Scheduled Events after an outage (issue 13): 200 races' events piled up while Discord was
unreachable, then drained against the fake Discord's rate limits.

    python benchmarks/bench_scheduled_events.py [--races 200] [--limit 10] [--per-seconds 10]

A guild's tournament mirrors its races as Discord Scheduled Events (on by default). `--races` races are scheduled in
one batch (`OutboxWriter.write_many`, as the batch command does), which queues one `scheduled_event` outbox row per
race. The fake Discord REST server (`tests/fakes/discord_rest.py`, on 127.0.0.1) is down (503 to everything, the
fault injection of the end-to-end evenings): the real dispatcher and the real discord.py client try every row once
and put it back to retry. Then Discord is back and the dispatcher drains the rows, against the fake's per-guild
bucket for scheduled events (`--limit` requests per `--per-seconds`; the fake's default is 10 per 10 s, which makes
a 200-race run take minutes, so a shorter window is handy for a quick look; the fraction of the limit is what to
compare).

Printed: the requests the drain made (listing a guild's events, creating one), their rate as a fraction of the
bucket's limit, the 429s the fake answered, and, counted at the fake, that every race has exactly one event (none
lost, none made twice) with every outbox row sent.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord
from sqlalchemy import func, select, update

from bot.discord_delivery import DiscordDelivery
from bot.events import LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services.notification_outbox import OutboxWriter
from bot.services.scheduled_events import race_marker
from bot.settings import load_settings
from db.models import Base, LiveRace, Notification, NotificationKind, NotificationStatus, Pool, Tournament
from db.session import Database
from db.types import utcnow
from tests.fakes.discord_rest import EVENTS_ROUTE, FakeDiscordRest, RouteLimit

GUILD = 1


async def build(db: Database, settings, races: int) -> list[int]:
    """`races` races a day ahead, their scheduled-event rows queued as one batch."""
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    now = utcnow()
    async with db.transaction() as session:
        tournament = Tournament(guild_id=GUILD, name="Bench Cup")
        session.add(tournament)
        await session.flush()
        pool = Pool(tournament_id=tournament.id, name="Pool A")
        session.add(pool)
        await session.flush()
        rows = [
            LiveRace(
                guild_id=GUILD,
                tournament_id=tournament.id,
                pool_id=pool.id,
                title=f"Bench race {index + 1}",
                scheduled_at=now + timedelta(days=1, minutes=10 * index),
                marker=f"bench-{index}",
            )
            for index in range(races)
        ]
        session.add_all(rows)
        await session.flush()
        events = [
            LiveRaceScheduled(guild_id=GUILD, tournament_id=tournament.id, live_race_id=race.id, occurred_at=now)
            for race in rows
        ]
        await OutboxWriter(settings).write_many(session, events)
        return [race.id for race in rows]


async def statuses(db: Database) -> Counter:
    async with db.read() as session:
        rows = await session.execute(
            select(Notification.status, func.count(Notification.id))
            .where(Notification.kind == NotificationKind.SCHEDULED_EVENT)
            .group_by(Notification.status)
        )
        return Counter({str(status): count for status, count in rows.all()})


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)  # discord.py logs every 429 it waits out; the fake counts them
    limit_per_second = args.limit / args.per_seconds
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database={"url": f"sqlite+aiosqlite:///{tmp}/bench.db"},
            notifications={"backoff_base_seconds": 30, "backoff_max_seconds": 60},
        )
        db = Database(settings.database.url)
        fake = FakeDiscordRest()
        fake.route_limits[EVENTS_ROUTE] = RouteLimit(args.limit, args.per_seconds)
        await fake.start()
        discord.http.Route.BASE = fake.api_base
        client = discord.Client(intents=discord.Intents.none(), max_ratelimit_timeout=max(30.0, args.per_seconds * 3))
        try:
            race_ids = await build(db, settings, args.races)
            print(f"queued: {sum((await statuses(db)).values())} scheduled-event rows for {args.races} races")
            await client.login("bench-token")
            delivery = DiscordDelivery(
                client, rate_limit_per_second=settings.notifications.rate_limit_per_second, is_available=lambda: True
            )
            dispatcher = NotificationDispatcher(db, settings, lambda: delivery)

            await fake.down(gateway=False)
            report = await dispatcher.run_once()
            print(f"outage: the dispatcher tried {report}; the fake answered {fake.unavailable_answers} times 503")
            print(f"  rows now {dict(await statuses(db))}")
            fake.up()
            fake.requests.clear()
            fake.rate_limited.clear()
            async with db.transaction() as session:  # their backoff runs out: every row is due again
                await session.execute(
                    update(Notification)
                    .where(Notification.status == NotificationStatus.RETRYING)
                    .values(next_attempt_at=utcnow())
                )

            started, cpu = time.perf_counter(), time.process_time()
            cycles = 0
            while True:
                cycles += 1
                await dispatcher.run_once()
                left = await statuses(db)
                if left["pending"] + left["retrying"] == 0:
                    break
                await asyncio.sleep(0.1)  # a row put back by a 429 comes due after its retry_after
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await client.close()
            await fake.stop()
            await db.dispose()

    requests = fake.requests[EVENTS_ROUTE]
    actions = Counter(action for action, _, _ in fake.event_log)
    listings = requests - sum(actions.values())
    rate = requests / elapsed
    print(
        f"drain: {requests} requests in {elapsed:.1f} s ({cycles} dispatcher cycles, {cpu:.2f} s CPU): "
        f"{actions['create']} creates, {actions['edit']} edits, {listings} listings (finding an event by its marker)"
    )
    print(
        f"  {rate:.2f} requests/s = {rate / limit_per_second:.3f} of the fake's limit ({args.limit} per "
        f"{args.per_seconds:g} s per guild); {actions['create'] / elapsed:.2f} events made per second"
    )
    print(f"  429 answers: per route {fake.rate_limited[EVENTS_ROUTE]}, global {fake.rate_limited['global']}")
    per_race = Counter()
    for event in fake.scheduled_events.values():
        for race_id in race_ids:
            if race_marker(race_id) in (event.get("description") or ""):
                per_race[race_id] += 1
    lost = sum(1 for race_id in race_ids if per_race[race_id] == 0)
    twice = sum(1 for count in per_race.values() if count > 1)
    print(f"  events at the fake: {len(fake.scheduled_events)}; races without one {lost}, with two or more {twice}")
    print(f"  outbox rows: {dict(left)}")
    ok = lost == 0 and twice == 0 and len(fake.scheduled_events) == args.races and left["sent"] == args.races
    return 0 if ok else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--races", type=int, default=200)
    parser.add_argument("--limit", type=int, default=10, help="requests per window of the fake's events bucket")
    parser.add_argument("--per-seconds", type=float, default=10.0, help="the window of the fake's events bucket")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
