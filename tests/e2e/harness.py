"""The real process and its REST API, driven from a test: start, health, SIGKILL, restart, and an API client
that waits out a restarting process.

Every wait polls with a deadline. A deadline is a safety net that fails the test with what it was waiting for,
never a claim about speed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bot.settings import OPEN_REQUESTS_PER_CLAIM
from tests.databases import TEST_DATABASE_URL, wipe_postgres
from tests.fakes.discord_rest import FakeDiscordRest
from tests.fakes.racetime_server import FakeRacetime

ROOT = Path(__file__).resolve().parents[2]
GUILD = 123_456_789_012_345_678
T = TypeVar("T")


class DeadlineExceeded(AssertionError):
    pass


async def wait_until(
    check: Callable[[], Awaitable[T | None]],
    what: str | Callable[[], str],
    *,
    deadline: float = 60.0,
    interval: float = 0.1,
) -> T:
    """Poll `check` until it returns something truthy; fail saying `what` was awaited after `deadline` s."""
    give_up = time.monotonic() + deadline
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > give_up:
            described = what() if callable(what) else what
            raise DeadlineExceeded(f"waited {deadline:.0f} s for {described}")
        await asyncio.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def fresh_database_url(workdir: Path) -> str:
    """A new, empty database for one process: a SQLite file in `workdir`, or, when the suite runs against
    PostgreSQL (STARTLINE_TEST_DATABASE_URL), that database emptied."""
    if not TEST_DATABASE_URL:
        return sqlite_url(workdir / "startline.db")
    await wipe_postgres(TEST_DATABASE_URL)
    return TEST_DATABASE_URL


def direct_engine(database_url: str) -> AsyncEngine:
    """An engine of the test's own on the process's database, for what the API does not offer."""
    # SQLite: wait for the process's writers rather than fail at once.
    connect_args = {"timeout": 30} if database_url.startswith("sqlite") else {}
    return create_async_engine(database_url, connect_args=connect_args)


def process_env(database_url: str, api_port: int, **settings: str) -> dict[str, str]:
    """The environment of a Startline process: ours without any STARTLINE_ variable, plus `settings`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STARTLINE_")}
    env.update(
        STARTLINE_DATABASE__URL=database_url,
        STARTLINE_API__HOST="127.0.0.1",
        STARTLINE_API__PORT=str(api_port),
        STARTLINE_API__PUBLIC_URL=f"http://127.0.0.1:{api_port}",
    )
    env.update(settings)
    return env


REQUEST_TIMEOUT_SECONDS = 2.0
RESCHEDULE_COLLAPSE_SECONDS = 20.0


def settings_env(racetime: FakeRacetime, discord: FakeDiscordRest | None) -> dict[str, str]:
    """Short intervals, so an evening takes seconds; everything else is the shipped configuration. The bot
    waits for the fake's listing cache, and the opener's claim lease is the shortest the settings accept."""
    lease = REQUEST_TIMEOUT_SECONDS * OPEN_REQUESTS_PER_CLAIM + racetime.cache_ttl
    env = {
        "STARTLINE_RACETIME__BASE_URL": racetime.base_url,
        "STARTLINE_RACETIME__CLIENT_ID": racetime.client_id,
        "STARTLINE_RACETIME__CLIENT_SECRET": racetime.client_secret,
        "STARTLINE_RACETIME__CATEGORY": "alttpr",
        "STARTLINE_RACETIME__POLL_INTERVAL_SECONDS": "0.5",
        "STARTLINE_RACETIME__REQUEST_TIMEOUT_SECONDS": f"{REQUEST_TIMEOUT_SECONDS:g}",
        "STARTLINE_RACETIME__LISTING_CACHE_SECONDS": f"{racetime.cache_ttl:g}",
        "STARTLINE_RACETIME__CONNECT_TIMEOUT_SECONDS": "2",
        "STARTLINE_SCHEDULER__OPENER_INTERVAL_SECONDS": "0.5",
        "STARTLINE_SCHEDULER__OPEN_CLAIM_LEASE_SECONDS": f"{lease:g}",
        "STARTLINE_SCHEDULER__OPEN_BACKOFF_BASE_SECONDS": "1",
        "STARTLINE_NOTIFICATIONS__DISPATCH_INTERVAL_SECONDS": "0.5",
        "STARTLINE_NOTIFICATIONS__CLAIM_LEASE_SECONDS": "10",
        "STARTLINE_NOTIFICATIONS__BACKOFF_BASE_SECONDS": "0.5",
        "STARTLINE_NOTIFICATIONS__BACKOFF_MAX_SECONDS": "4",
        "STARTLINE_NOTIFICATIONS__MAX_RETRIES": "30",
        "STARTLINE_NOTIFICATIONS__RATE_LIMIT_PER_SECOND": "100",
        # Moves of a start within this time make one rescheduled notice: longer than a restart after a SIGKILL.
        "STARTLINE_NOTIFICATIONS__RESCHEDULE_COLLAPSE_SECONDS": f"{RESCHEDULE_COLLAPSE_SECONDS:g}",
        "STARTLINE_NOTIFICATIONS__REMINDER_INTERVAL_SECONDS": "0.5",
        "STARTLINE_API__RATE_LIMIT_PER_MINUTE": "100000",  # a script importing a roster
    }
    if discord is not None:
        env.update(
            STARTLINE_DISCORD__TOKEN="fake-bot-token",
            E2E_DISCORD_API=discord.api_base,
            E2E_DISCORD_GATEWAY=discord.gateway_url,
        )
    return env


def create_token(env: dict[str, str], guild_id: int = GUILD) -> str:
    """`run.py token create`: a manage token for the guild, as a script's author would make one."""
    result = subprocess.run(
        [sys.executable, "run.py", "token", "create", "--guild", str(guild_id), "--name", "e2e", "--scope", "manage"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@dataclass
class StartlineProcess:
    """`python run.py …` (or the fake-Discord launcher) on a database that outlives it; the output of every
    start goes to one log file."""

    command: list[str]
    env: dict[str, str]
    log_path: Path
    api_port: int
    starts: int = 0
    kills: int = 0
    popen: subprocess.Popen | None = None
    exit_codes: list[int] = field(default_factory=list)

    @classmethod
    def no_discord(cls, env: dict[str, str], log_path: Path, api_port: int) -> StartlineProcess:
        return cls([sys.executable, "run.py", "--no-discord"], env, log_path, api_port)

    @classmethod
    def with_fake_discord(cls, env: dict[str, str], log_path: Path, api_port: int) -> StartlineProcess:
        return cls([sys.executable, "-m", "tests.e2e.launcher"], env, log_path, api_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> None:
        assert self.popen is None or self.popen.poll() is not None, "already running"
        self.starts += 1
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts} =====\n")
            log.flush()
            self.popen = subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def assert_running(self) -> None:
        if self.popen is not None and self.popen.poll() is not None:
            raise AssertionError(f"the process exited with {self.popen.returncode}:\n{self.log_tail()}")

    async def wait_healthy(self, *, deadline: float = 60.0) -> dict[str, Any]:
        async def healthy() -> dict[str, Any] | None:
            self.assert_running()
            try:
                async with httpx.AsyncClient(timeout=2.0) as client:
                    response = await client.get(f"{self.base_url}/api/v1/health")
            except httpx.TransportError:
                return None
            return response.json() if response.status_code == 200 else None

        return await wait_until(healthy, "the API to answer /health", deadline=deadline)

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a power cut or an OOM kill."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.popen.wait(timeout=30))
        self.kills += 1

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a service manager stops it; returns the exit code."""
        assert self.popen is not None
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.exit_codes.append(self.popen.returncode)
        return self.popen.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class ApiError(AssertionError):
    def __init__(self, method: str, path: str, response: httpx.Response) -> None:
        super().__init__(f"{method} {path} answered {response.status_code}: {response.text[:500]}")
        self.status = response.status_code
        self.body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}


@dataclass
class Api:
    """A script's view of Startline: JSON over HTTP with a bearer token.

    A request that gets no answer (the process is being restarted) is sent again until `outage_deadline`:
    like a careful script, callers of non-idempotent POSTs treat a 409 on a repeat as "it was done".
    """

    base_url: str
    token: str
    process: StartlineProcess | None = None  # a request without an answer first checks it still runs
    outage_deadline: float = 90.0
    requests: int = 0
    repeats: int = 0
    before_request: Callable[[int], Awaitable[None]] | None = None

    async def __aenter__(self) -> Api:
        self._client = httpx.AsyncClient(
            base_url=self.base_url, headers={"Authorization": f"Bearer {self.token}"}, timeout=30.0
        )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._client.aclose()

    async def call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200, 201, 204), repeat: bool = True, **kwargs: Any
    ) -> Any:
        """One request; `repeat=False` raises the `httpx.TransportError` of a request that got no answer instead of
        sending it again (for a change that is not idempotent: the caller reads back whether it happened)."""
        self.requests += 1
        if self.before_request is not None:
            await self.before_request(self.requests)
        give_up = time.monotonic() + self.outage_deadline
        while True:
            try:
                response = await self._client.request(method, path, **kwargs)
                break
            except httpx.TransportError:
                if self.process is not None:
                    self.process.assert_running()
                if not repeat or time.monotonic() > give_up:
                    raise
                self.repeats += 1
                await asyncio.sleep(0.2)
        if response.status_code not in ok:
            raise ApiError(method, path, response)
        return response.json() if response.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params={k: v for k, v in params.items() if v is not None})

    async def all_items(self, path: str, **params: Any) -> list[dict[str, Any]]:
        """Every page of a list route."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            page = await self.get(path, limit=200, cursor=cursor, **params)
            items += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return items
