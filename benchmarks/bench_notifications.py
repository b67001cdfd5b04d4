"""Notifications at scale (PRODUCT.md §8): queue 10,000 DMs for one event, then dispatch them to Discord.

    python benchmarks/bench_notifications.py [--players 10000] [--limit 200] [--cold-fraction 0.1]
                                             [--concurrency 16]

1. Queue: one `LiveRaceScheduled` for a race whose 10,000 eligible players all subscribed; times the outbox
   writer (recipients through the set-wise eligibility plus one bulk insert) in its transaction, then the
   same event again (deduplicated: adds nothing).
2. Dispatch: the real dispatcher and the real discord.py HTTP client against the fake Discord REST server
   on 127.0.0.1 (`tests/fakes/discord_rest.py`), which enforces a global limit of `--limit` requests per
   second plus per-route buckets, answering with Discord's headers and 429s. The dispatcher is given that
   same limit (`notifications.rate_limit_per_second`). `--cold-fraction` of the players have no DM channel
   yet, so their DM costs two requests (open the channel, send); the rest reuse a channel stored on the
   player. The fake counts what arrives: lost and duplicated DMs are counted there, not by the bot.

Reported: requests per second as a fraction of the global limit (what the limit governs), and messages per
second (lower when channels must be opened first). The fake's global bucket starts full, as Discord's does, so a
short run may show slightly more than 1.0. On this 2-core machine the whole setup (fake server, discord.py client
and SQLite in one process) tops out near 470 requests per second, far above Discord's real 50.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import discord
from sqlalchemy import func, insert, select

from bot.discord_delivery import DiscordDelivery
from bot.events import LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services.notification_outbox import OutboxWriter
from bot.settings import load_settings
from db.models import (
    Base,
    EventType,
    GuildPlayer,
    LiveRace,
    Notification,
    NotificationSubscription,
    Player,
    Pool,
    Seed,
    Tournament,
)
from db.session import Database
from db.types import utcnow
from tests.fakes.discord_rest import MESSAGES_ROUTE, OPEN_DM_ROUTE, FakeDiscordRest

GUILD = 1
USER_BASE = 10**15
CHANNEL_BASE = 5 * 10**15


async def build(db: Database, players: int, cold_fraction: float) -> LiveRace:
    async with db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    warm_every = round(1 / cold_fraction) if cold_fraction > 0 else 0
    async with db.transaction() as session:
        tournament = Tournament(guild_id=GUILD, name="Bench")
        session.add(tournament)
        await session.flush()
        pool = Pool(tournament_id=tournament.id, name="Pool A")
        session.add(pool)
        await session.flush()
        seed = Seed(pool_id=pool.id, url="https://example.com/seed")
        session.add(seed)
        await session.flush()
        race = LiveRace(
            guild_id=GUILD,
            tournament_id=tournament.id,
            pool_id=pool.id,
            seed_id=seed.id,
            title="Bench race",
            scheduled_at=utcnow(),
            marker="bench",
        )
        session.add(race)
        await session.execute(
            insert(Player),
            [
                {
                    "id": i,
                    "discord_user_id": USER_BASE + i,
                    "racetime_id": f"rt{i:014d}",
                    "dm_channel_id": None if warm_every and i % warm_every == 0 else CHANNEL_BASE + i,
                }
                for i in range(1, players + 1)
            ],
        )
        await session.execute(
            insert(GuildPlayer),
            [{"guild_id": GUILD, "player_id": i, "display_name": f"player{i:05d}"} for i in range(1, players + 1)],
        )
        await session.execute(
            insert(NotificationSubscription),
            [
                {"player_id": i, "event_type": EventType.LIVE_RACE_SCHEDULED, "guild_id": None, "active": True}
                for i in range(1, players + 1)
            ],
        )
    return race


async def queue(db: Database, settings, race: LiveRace) -> tuple[float, float, int]:
    writer = OutboxWriter(settings)
    event = LiveRaceScheduled(
        guild_id=GUILD, tournament_id=race.tournament_id, live_race_id=race.id, occurred_at=utcnow()
    )
    timings = []
    for _ in range(2):  # the second time is the same event again: deduplicated
        started = time.perf_counter()
        async with db.transaction() as session:
            await writer.write(session, event)
        timings.append(time.perf_counter() - started)
    async with db.read() as session:
        rows = await session.scalar(select(func.count(Notification.id)))
    return timings[0], timings[1], rows


async def dispatch(db: Database, settings, fake: FakeDiscordRest, players: int) -> float:
    async with db.read() as session:
        warm = (await session.execute(select(Player.discord_user_id, Player.dm_channel_id))).all()
    for user_id, channel_id in warm:
        if channel_id is not None:
            fake.add_dm_channel(user_id, channel_id)
    client = discord.Client(intents=discord.Intents.none(), max_ratelimit_timeout=30.0)
    await client.login("bench-token")
    before = fake.total_requests  # the login's own requests are not counted
    fake.requests.clear()
    try:
        delivery = DiscordDelivery(
            client, rate_limit_per_second=settings.notifications.rate_limit_per_second, is_available=lambda: True
        )
        dispatcher = NotificationDispatcher(db, settings, lambda: delivery)
        started = time.perf_counter()
        report = await dispatcher.run_once()
        elapsed = time.perf_counter() - started
    finally:
        await client.close()
    assert before >= 0
    print(f"  dispatcher report: {report}")
    return elapsed


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.ERROR)  # discord.py logs every 429 it waits out; the fake counts them
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            database={"url": f"sqlite+aiosqlite:///{tmp}/bench.db"},
            notifications={
                "rate_limit_per_second": args.limit,
                "dispatch_concurrency": args.concurrency,
                "batch_size": 500,
            },
        )
        db = Database(settings.database.url)
        fake = await FakeDiscordRest(global_limit=args.limit).start()
        discord.http.Route.BASE = fake.api_base
        try:
            race = await build(db, args.players, args.cold_fraction)
            first, again, rows = await queue(db, settings, race)
            print(f"queue: {rows:,} notifications for one event in {first * 1000:.0f} ms (target: well under 1 s)")
            print(f"  the same event again: {again * 1000:.0f} ms, rows still {rows:,} (deduplicated)")

            print(
                f"dispatch: global limit {args.limit:g} req/s (dispatcher given the same), "
                f"{args.cold_fraction:.0%} of players without a DM channel yet, concurrency {args.concurrency}"
            )
            elapsed = await dispatch(db, settings, fake, args.players)
        finally:
            await fake.stop()
            await db.dispose()

    counts = fake.dm_counts()
    lost = sum(1 for i in range(1, args.players + 1) if counts.get(USER_BASE + i, 0) == 0)
    duplicated = sum(n - 1 for n in counts.values() if n > 1)
    requests = fake.total_requests
    delivered = len(fake.delivered)
    request_rate = requests / elapsed
    message_rate = delivered / elapsed
    print(f"  {delivered:,} DMs in {elapsed:.1f} s; {requests:,} requests at the fake Discord")
    print(f"    requests: {request_rate:.1f}/s = {request_rate / args.limit:.3f} of the global limit (target >= 0.9)")
    print(f"    messages: {message_rate:.1f}/s = {message_rate / args.limit:.3f} of the limit in messages")
    print(f"    open-DM requests {fake.requests[OPEN_DM_ROUTE]:,}, message requests {fake.requests[MESSAGES_ROUTE]:,}")
    global_429 = fake.rate_limited["global"]
    print(f"    429 answers: global {global_429}, per route {sum(fake.rate_limited.values()) - global_429}")
    print(f"  lost: {lost}, duplicated: {duplicated} (counted at the fake server)")
    return 0 if lost == 0 and duplicated == 0 else 1


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=10_000)
    parser.add_argument("--limit", type=float, default=200.0, help="global requests per second (fake and dispatcher)")
    parser.add_argument("--cold-fraction", type=float, default=0.1, help="share of players without a DM channel")
    parser.add_argument("--concurrency", type=int, default=16)
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
