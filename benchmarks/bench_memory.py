"""Idle memory (RSS) of the whole Startline process (issue 17): without Discord, and connected to the fake Discord
gateway with 100 guilds.

    python benchmarks/bench_memory.py [--guilds 100] [--shards N|auto] [--idle 5]

Starts the real process (`run.py --no-discord`, then `python -m tests.e2e.launcher`, which is `run.py` with
discord.py pointed at the fake Discord of `tests/fakes/`) on a new SQLite file, waits until `/api/v1/health` answers
(and, with Discord, says `connected` after every guild arrived as a GUILD_CREATE with 10 channels and 10 roles),
lets it idle `--idle` seconds with its jobs running, and prints its resident memory (VmRSS, and VmHWM, the peak)
from /proc (Linux). Targets: under 120 MB without Discord, under 160 MB with 100 guilds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import free_port, process_env, sqlite_url  # noqa: E402
from tests.fakes.discord_rest import FakeDiscordRest  # noqa: E402

FIRST_GUILD = 200_000_000_000_000_000


def memory_mb(pid: int) -> tuple[float, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def measure(label: str, command: list[str], env: dict[str, str], port: int, idle: float, discord: bool) -> None:
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)  # noqa: ASYNC220
        try:
            deadline = time.monotonic() + 120
            started = time.monotonic()
            async with httpx.AsyncClient(timeout=2.0) as client:
                while True:
                    if process.poll() is not None:
                        log.seek(0)
                        raise RuntimeError(f"{label}: the process exited:\n{log.read().decode()[-3000:]}")
                    try:
                        health = (await client.get(f"http://127.0.0.1:{port}/api/v1/health")).json()
                        if not discord or health.get("discord") == "connected":
                            break
                    except (httpx.TransportError, ValueError):
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{label}: not ready within 120 s")
                    await asyncio.sleep(0.2)
            ready = time.monotonic() - started
            await asyncio.sleep(idle)
            rss, peak = memory_mb(process.pid)
            print(f"{label:<44} ready in {ready:5.1f} s   RSS {rss:6.1f} MB   peak {peak:6.1f} MB")
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guilds", type=int, default=100)
    parser.add_argument("--shards", default=None, help="discord.shards for the Discord run (default: unset)")
    parser.add_argument("--idle", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = process_env(sqlite_url(Path(tmp) / "alone.db"), port, STARTLINE_LOGGING__LEVEL="WARNING")
        await measure("no Discord (run.py --no-discord)", [sys.executable, "run.py", "--no-discord"], env, port,
                      args.idle, discord=False)  # fmt: skip

        guilds = [FIRST_GUILD + (n << 22) for n in range(args.guilds)]
        fake = await FakeDiscordRest.with_gateway(guilds).start()
        assert fake.gateway is not None
        fake.gateway.guild_create = True
        fake.gateway.recommended_shards = 2
        try:
            port = free_port()
            env = process_env(
                sqlite_url(Path(tmp) / "discord.db"),
                port,
                STARTLINE_LOGGING__LEVEL="WARNING",
                STARTLINE_DISCORD__TOKEN="fake-bot-token",
                E2E_DISCORD_API=fake.api_base,
                E2E_DISCORD_GATEWAY=fake.gateway_url,
            )
            label = f"fake gateway, {args.guilds} guilds"
            if args.shards:
                env["STARTLINE_DISCORD__SHARDS"] = args.shards
                label += f", shards={args.shards}"
            await measure(label, [sys.executable, "-m", "tests.e2e.launcher"], env, port, args.idle, discord=True)
        finally:
            await fake.stop()
    print(f"machine load average (1 min): {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    asyncio.run(main())
