"""The process in Discord mode against the fake Discord, at start-up.

Regressions: a process started (or restarted) while Discord was down exited at once, since the login failed before
the API and the jobs were started; now they run at once, rooms open, and the bot logs in and delivers the waiting
notifications when Discord is back. A token Discord refuses ended in a traceback; now it is one
line naming the setting."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from tests.e2e.harness import (
    GUILD,
    ROOT,
    Api,
    StartlineProcess,
    create_token,
    free_port,
    process_env,
    settings_env,
    sqlite_url,
    wait_until,
)
from tests.fakes.discord_rest import FakeDiscordRest
from tests.fakes.racetime_server import FakeRacetime

pytestmark = pytest.mark.slow

PLAYER = 301_000_000_000_000_777
CHANNEL = 555_000_000_000_000_009


async def scenario(workdir) -> None:
    async with FakeRacetime() as racetime:
        discord = await FakeDiscordRest.with_gateway([GUILD]).start()
        discord.add_text_channel(CHANNEL)
        await discord.down()
        port = free_port()
        env = process_env(sqlite_url(workdir / "startline.db"), port, **settings_env(racetime, discord))
        process = StartlineProcess.with_fake_discord(env, workdir / "process.log", port)
        try:
            process.start()
            health = await process.wait_healthy()
            assert health["discord"] == "connecting"
            async with Api(process.base_url, create_token(env), process) as api:
                tournament = await api.call(
                    "POST",
                    "/api/v1/tournaments",
                    json={
                        "name": "Outage Cup",
                        "racetime_goal": "Beat the game",
                        "announcement_channel_id": CHANNEL,
                        "scheduled_events": False,  # this test is about messages (events: test_scheduled_events.py)
                    },
                )
                base = f"/api/v1/tournaments/{tournament['id']}"
                pool = await api.call("POST", f"{base}/pools", json={"name": "Main"})
                await api.call("POST", f"{base}/pools/{pool['id']}/seeds", json={"url": "https://alttpr.com/h/x"})
                starts = datetime.now(UTC) + timedelta(minutes=5)
                race = await api.call(
                    "POST", f"{base}/live-races", json={"pool_id": pool["id"], "scheduled_at": starts.isoformat()}
                )

                async def opened() -> bool:
                    return (await api.get(f"{base}/live-races/{race['id']}"))["status"] == "room_open"

                await wait_until(opened, "the room to open while Discord is down")
                assert len(racetime.rooms) == 1 and discord.delivered == []
                assert process.popen.poll() is None

                discord.up()

                async def announced() -> bool:
                    log = await api.all_items(f"{base}/live-races/{race['id']}/notifications")
                    return sorted((row["event_type"], row["kind"], row["status"]) for row in log) == [
                        ("live_race_room_opened", "channel", "sent"),  # posted: it is the announcement now
                        ("live_race_room_opened", "channel_edit", "sent"),  # its edit, once it was posted
                        ("live_race_scheduled", "channel", "expired"),  # stale: the room had opened meanwhile
                    ]

                await wait_until(announced, "the announcements once Discord is back", deadline=90)
            assert [post["embeds"][0]["title"][:1] for post in discord.posts_in(CHANNEL)] == ["🔓"]
            assert (await process.wait_healthy())["discord"] == "connected"
            assert "Discord cannot be reached (HTTP 503)" in process.log_text()
            assert process.stop() == 0
        finally:
            if process.popen is not None and process.popen.poll() is None:
                process.kill()
            await discord.stop()


def test_the_process_runs_while_discord_is_unreachable_at_start_and_catches_up(tmp_path):
    asyncio.run(scenario(tmp_path))


def run_until_refused(tmp_path, discord: FakeDiscordRest) -> subprocess.CompletedProcess:
    """Run the process in Discord mode against `discord` until it exits (it is expected to be refused)."""

    async def scenario() -> subprocess.CompletedProcess:
        async with FakeRacetime() as racetime:
            await discord.start()
            try:
                env = process_env(sqlite_url(tmp_path / "startline.db"), free_port(), **settings_env(racetime, discord))
                command = StartlineProcess.with_fake_discord(env, tmp_path / "process.log", 0).command
                return await asyncio.to_thread(
                    subprocess.run, command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
                )
            finally:
                await discord.stop()

    return asyncio.run(scenario())


def test_a_refused_token_stops_the_process_with_one_line(tmp_path):
    result = run_until_refused(tmp_path, FakeDiscordRest.with_gateway([GUILD], token="the-right-token"))
    assert result.returncode == 2
    assert "error: Discord refused the token (STARTLINE_DISCORD__TOKEN)" in result.stderr
    assert "Traceback" not in result.stderr and "fake-bot-token" not in result.stderr


def test_a_refused_server_members_intent_stops_the_process_with_one_line(tmp_path):
    """The bot needs the privileged Server Members intent (members leaving and joining); when the developer
    portal's switch is off Discord closes the gateway with 4014, and the process says what to switch on."""
    discord = FakeDiscordRest.with_gateway([GUILD])
    discord.gateway.privileged_intents = False
    result = run_until_refused(tmp_path, discord)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: Discord refused the Server Members intent: switch on" in result.stderr
    assert "Traceback" not in result.stderr
