"""REST API throughput and latency, beside a bare aiohttp handler serving the same bytes.

    python benchmarks/bench_api.py [--requests 3000] [--concurrency 16] [--races 1000] [--profile FILE]

The servers run in a child process (the Startline API on a SQLite file with one tournament of `--races` live
races, and a bare aiohttp app whose handlers return the bytes the API returned); this process generates the
load with aiohttp's client, so the two do not share a core. For each route it prints requests per second,
p50 and p99 latency, the server's CPU time per request (user + system, all its threads; Linux), and the ratio
of the API to the bare handler. On a machine shared with other work the throughput swings from run to run; the
CPU time per request is the steadier figure to compare versions by; it also prints the SQL statements per request.
`--profile FILE` writes a cProfile of the API server's process while it serves the list route (`python -m pstats
FILE`). Every request count and run time is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GUILD = 111_111_111_111_111_111
MODERATOR_ID = 900_000_000_000_000_001
WARM_UP = 50  # requests before each timed run


async def _seed(app, races: int) -> tuple[str, int]:
    from bot.actors import Actor
    from db.models import Base, LiveRace
    from db.types import utcnow

    actor = Actor.player(MODERATOR_ID, "bench")
    async with app.db.engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    services = app.services
    tournament = await services.tournaments.create_tournament(GUILD, actor, name="Bench Cup")
    pool = await services.tournaments.add_pool(GUILD, tournament.id, actor, name="Main")
    seed = await services.tournaments.add_seed(GUILD, tournament.id, pool.id, actor, url="https://seeds.example/bench")
    start = utcnow() + timedelta(days=1)
    async with app.db.transaction() as session:  # bulk insert: the benchmark measures reads, not creation
        session.add_all(
            LiveRace(
                guild_id=GUILD,
                tournament_id=tournament.id,
                pool_id=pool.id,
                seed_id=seed.id,
                title=f"Race {index}",
                scheduled_at=start + timedelta(hours=index),
                marker=f"bench-{index}",
                created_by=actor.label,
            )
            for index in range(races)
        )
    issued = await services.tokens.create(GUILD, actor, name="bench", scope="read")
    return issued.secret, tournament.id


def _serve(races: int, ready, commands, profile_path: str | None) -> None:
    """Child process: the API and the bare app on 127.0.0.1, until the parent says "stop"."""

    async def main() -> None:
        from bot.api.server import create_api_app
        from bot.app import Application
        from bot.settings import load_settings

        workdir = Path(tempfile.mkdtemp(prefix="startline-bench-"))
        settings = load_settings(
            database={"url": f"sqlite+aiosqlite:///{workdir / 'bench.db'}"},
            api={"host": "127.0.0.1", "port": 0, "rate_limit_per_minute": 10_000_000},
        )
        app = Application(settings, run_migrations=False, start_jobs=False)
        secret, tid = await _seed(app, races)
        api_runner = web.AppRunner(create_api_app(app), access_log=None)
        await api_runner.setup()
        api_site = web.TCPSite(api_runner, "127.0.0.1", 0)
        await api_site.start()
        api_port = api_runner.addresses[0][1]

        paths = {"list": f"/api/v1/tournaments/{tid}/live-races", "health": "/api/v1/health"}
        captured: dict[str, bytes] = {}
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {secret}"}) as client:
            for name, path in paths.items():
                async with client.get(f"http://127.0.0.1:{api_port}{path}") as response:
                    assert response.status == 200, await response.text()
                    captured[name] = await response.read()

        bare = web.Application()
        for name, path in paths.items():
            body = captured[name]

            async def handler(_request: web.Request, body: bytes = body) -> web.Response:
                return web.Response(body=body, content_type="application/json")

            bare.router.add_get(path, handler)
        bare_runner = web.AppRunner(bare, access_log=None)
        await bare_runner.setup()
        bare_site = web.TCPSite(bare_runner, "127.0.0.1", 0)
        await bare_site.start()
        statements = [0]

        def count(*_args: object) -> None:
            statements[0] += 1

        from sqlalchemy import event

        event.listen(app.db.engine.sync_engine, "before_cursor_execute", count)
        if app.db._loop_reader is not None:  # SQLite's page reads on the event loop (Database.rows)
            app.db._loop_reader.connection.set_trace_callback(count)
        ready.put(
            {
                "api": api_port,
                "bare": bare_runner.addresses[0][1],
                "paths": paths,
                "token": secret,
                "bytes": {name: len(body) for name, body in captured.items()},
            }
        )
        profile = cProfile.Profile() if profile_path else None
        while True:  # the parent's commands: "count" (statements so far), "profile on/off", "stop"
            command = await asyncio.to_thread(commands.get)
            if command == "stop":
                break
            if command == "count":
                ready.put(statements[0])
            elif command == "profile on" and profile is not None:
                profile.enable()
            elif command == "profile off" and profile is not None:
                profile.disable()
                profile.dump_stats(profile_path)
        await api_runner.cleanup()
        await bare_runner.cleanup()
        await app.db.dispose()

    asyncio.run(main())


async def _load(url: str, token: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = requests
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={"Authorization": f"Bearer {token}"}) as client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with client.get(url) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"{url} answered {response.status}")
                latencies.append(time.perf_counter() - started)

        for _ in range(WARM_UP):  # connections, caches
            async with client.get(url) as response:
                await response.read()
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its threads, from Linux's /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _p(latencies: list[float], q: float) -> float:
    return statistics.quantiles(latencies, n=1000)[int(q * 1000) - 1] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--races", type=int, default=1000)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile of the API server to FILE")
    args = parser.parse_args()

    context = multiprocessing.get_context("spawn")
    ready, commands = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(args.races, ready, commands, args.profile), daemon=True)
    server.start()
    try:
        info = ready.get(timeout=120)
        print(f"{args.races} live races, {args.requests} requests per run, concurrency {args.concurrency}")
        columns = ("route", 44, "<"), ("server", 6, "<"), ("bytes", 7, ">"), ("req/s", 8, ">"), ("p50 ms", 8, ">")
        columns += ("p99 ms", 8, ">"), ("cpu ms", 7, ">"), ("SQL", 5, ">")
        header = " ".join(f"{title:{align}{width}}" for title, width, align in columns)
        print(header)
        print("-" * len(header))
        for name, path in info["paths"].items():
            figures = {}
            for kind in ("api", "bare"):
                url = f"http://127.0.0.1:{info[kind]}{path}"
                commands.put("count")
                statements_before = ready.get(timeout=60)
                profiled = kind == "api" and name == "list" and args.profile
                if profiled:
                    commands.put("profile on")
                cpu_before = _cpu_seconds(server.pid)
                rps, latencies = asyncio.run(_load(url, info["token"], args.requests, args.concurrency))
                cpu_after = _cpu_seconds(server.pid)
                if profiled:
                    commands.put("profile off")
                commands.put("count")
                statements = (ready.get(timeout=60) - statements_before) / (args.requests + WARM_UP)
                figures[kind] = rps
                cpu = "n/a"
                if cpu_before is not None and cpu_after is not None:  # the warm-up requests count too
                    cpu = f"{(cpu_after - cpu_before) * 1000 / (args.requests + WARM_UP):.2f}"
                print(
                    f"{path:<44} {kind:<6} {info['bytes'][name]:>7} {rps:>8.0f} "
                    f"{_p(latencies, 0.5):>8.2f} {_p(latencies, 0.99):>8.2f} {cpu:>7} {statements:>5.2f}"
                )
            print(f"{'':<44} ratio api/bare: {figures['api'] / figures['bare']:.2f}")
        print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    finally:
        commands.put("stop")
        server.join(timeout=30)
        if server.is_alive():
            server.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
