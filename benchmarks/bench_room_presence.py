"""Room presence at scale: one process in 200 open rooms, idle and while 2,000 entrants join within a minute.

    python benchmarks/bench_room_presence.py [--rooms 200] [--entrants 2000] [--seconds 60] [--idle 10]

The fake RaceTime.gg runs in a child process (its rooms, sockets and JSON cost nothing here); this process is
Startline's: an `Application` on a SQLite file with one live race per room, whose `RoomPresence` holds a bot
websocket in every room. It prints this process's resident memory before and after joining the rooms, its CPU time
(user + system) over `--idle` seconds with every socket open and nothing happening, and its CPU time, the memory
and how long the last warning took while `--entrants` unlinked entrants join, spread evenly over `--seconds` (each
join is a `race.data` to the room's socket, an eligibility check and a warning addressed to the entrant, recorded
in `room_messages`). Linux only (`/proc/self/status`). Every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GUILD = 111_111_111_111_111_111
MODERATOR_ID = 900_000_000_000_000_001


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _fake(rooms: int, entrants: int, seconds: float, pipe) -> None:
    """Child process: the fake RaceTime.gg with `rooms` rooms; on "join", `entrants` joins over `seconds`."""

    async def main() -> None:
        from tests.fakes.racetime_data import captured_user
        from tests.fakes.racetime_server import FakeRacetime

        template = captured_user("Alice")
        async with FakeRacetime(seed=1) as rt:
            slugs = [rt.open_room(info_bot=f"bench room {index}") for index in range(rooms)]
            pipe.send((rt.base_url, rt.client_id, rt.client_secret, slugs))
            loop = asyncio.get_running_loop()
            while not pipe.poll():  # noqa: ASYNC110 - the parent process, not a task
                await asyncio.sleep(0.05)
            assert pipe.recv() == "join"
            started = loop.time()
            for index in range(entrants):
                await asyncio.sleep(max(0.0, started + index * seconds / entrants - loop.time()))
                user = {
                    **template,
                    "id": f"bench{index:06d}",
                    "full_name": f"Runner{index}#{index % 10000:04d}",
                    "name": f"Runner{index}",
                    "discriminator": f"{index % 10000:04d}",
                }
                rt.add_entrant(slugs[index % rooms], user, ready=False)
            pipe.send(("joined", loop.time() - started))
            while not pipe.poll():  # noqa: ASYNC110 - the parent process, not a task
                await asyncio.sleep(0.05)

    asyncio.run(main())


async def _run(args: argparse.Namespace) -> None:
    from sqlalchemy import func, select

    from bot.actors import Actor
    from bot.app import Application
    from bot.settings import load_settings
    from db.models import Base, LiveRace, RaceStatus, RoomMessage
    from db.types import utcnow

    parent, child = multiprocessing.Pipe()
    fake = multiprocessing.Process(target=_fake, args=(args.rooms, args.entrants, args.seconds, child), daemon=True)
    fake.start()
    base_url, client_id, client_secret, slugs = parent.recv()

    workdir = Path(tempfile.mkdtemp(prefix="startline-bench-"))
    settings = load_settings(
        database={"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
        api={"enabled": False},
        racetime={"base_url": base_url, "client_id": client_id, "client_secret": client_secret},
    )
    app = Application(settings, run_migrations=False, start_jobs=False)
    async with app.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    actor = Actor.player(MODERATOR_ID, "bench")
    services = app.services
    tournament = await services.tournaments.create_tournament(GUILD, actor, name="Bench Cup")
    pool = await services.tournaments.add_pool(GUILD, tournament.id, actor, name="Main")
    seed = await services.tournaments.add_seed(GUILD, tournament.id, pool.id, actor, url="https://seeds.example/b")
    start = utcnow() + timedelta(hours=1)
    async with app.db.transaction() as session:
        session.add_all(
            LiveRace(
                guild_id=GUILD,
                tournament_id=tournament.id,
                pool_id=pool.id,
                seed_id=seed.id,
                title=f"Race {index}",
                scheduled_at=start,
                marker=f"{index:08x}",
                created_by=actor.label,
                status=RaceStatus.ROOM_OPEN,
                racetime_category="alttpr",
                racetime_slug=slug,
            )
            for index, slug in enumerate(slugs)
        )
    presence = app.presence
    before = _rss_mib()
    cpu = _cpu()
    report = await presence.run_cycle()
    async with asyncio.timeout(120):
        while sum(1 for room in presence.rooms.values() if room.race_status == "open") < len(slugs):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    print(f"rooms: {report.held} joined, {sum(presence.connections.values())} sockets open")
    print(f"memory: {before:.1f} MiB before, {_rss_mib():.1f} MiB with every socket open and pinned")
    print(f"joining: {_cpu() - cpu:.2f} s CPU ({len(slugs)} connections, tokens, pinned messages)")

    cpu, wall = _cpu(), time.monotonic()
    await asyncio.sleep(args.idle)
    idle = _cpu() - cpu
    print(f"idle: {idle:.3f} s CPU over {args.idle:g} s ({100 * idle / (time.monotonic() - wall):.2f} % of a core)")

    async def warnings() -> int:
        async with app.db.read() as session:
            return await session.scalar(
                select(func.count()).select_from(RoomMessage).where(RoomMessage.key.like("warn:%"))
            )

    cpu, wall = _cpu(), time.monotonic()
    parent.send("join")
    peak = _rss_mib()
    async with asyncio.timeout(args.seconds * 5 + 120):
        while (sent := await warnings()) < args.entrants:
            peak = max(peak, _rss_mib())
            await asyncio.sleep(0.25)
    busy, elapsed = _cpu() - cpu, time.monotonic() - wall
    _, joined_in = parent.recv()
    print(
        f"{args.entrants} joins over {joined_in:.1f} s: {sent} warnings sent, the last {elapsed - joined_in:.2f} s "
        f"after the last join; {busy:.2f} s CPU ({100 * busy / elapsed:.1f} % of a core, "
        f"{1000 * busy / args.entrants:.2f} ms per join); memory peak {peak:.1f} MiB"
    )
    parent.send("stop")
    await presence.close()
    await app.db.dispose()
    fake.join(timeout=10)
    if fake.is_alive():
        fake.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rooms", type=int, default=200)
    parser.add_argument("--entrants", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--idle", type=float, default=10.0)
    asyncio.run(_run(parser.parse_args()))


if __name__ == "__main__":
    main()
