"""The real process: `run.py --no-discord` serves health and stops cleanly; `run.py token create`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from db.migrate import head_revision

ROOT = Path(__file__).resolve().parent.parent


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STARTLINE_")}
    env["STARTLINE_DATABASE__URL"] = f"sqlite+aiosqlite:///{tmp_path / 'run.db'}"
    env["STARTLINE_API__PORT"] = "0"
    env.update(extra)
    return env


def read_until(process: subprocess.Popen, pattern: str, limit: int = 200) -> re.Match:
    for _ in range(limit):
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"process never printed {pattern!r}; stderr: {process.stderr.read()}")


@pytest.mark.parametrize("flag", [[], ["--no-discord"]])
def test_no_discord_process_serves_health_and_stops_on_sigterm(tmp_path, flag) -> None:
    process = subprocess.Popen(
        [sys.executable, "run.py", *flag],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(read_until(process, r"API on port (\d+)").group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as response:
            body = json.loads(response.read())
        assert response.status == 200
        assert body["status"] == "ok" and body["database"] == "ok" and body["discord"] == "disabled"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stderr = process.stderr.read()
    if not flag:  # no token configured: the notice says why Discord is off
        assert "No Discord token is configured" in stderr
    assert "Traceback" not in stderr
    assert "Startline stopped" in stderr


def test_token_create_prints_secret_once_and_stores_hash(tmp_path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "token",
            "create",
            "--guild",
            "123456789012345678",
            "--name",
            "ci",
            "--scope",
            "manage",
        ],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    secret = result.stdout.strip()
    assert secret.startswith("slt_") and "\n" not in secret
    assert "shown only this once" in result.stderr and secret not in result.stderr
    engine = create_engine(f"sqlite:///{tmp_path / 'run.db'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT guild_id, name, scope, token_hash FROM api_tokens")).all()
    engine.dispose()
    assert len(rows) == 1
    guild_id, name, scope, token_hash = rows[0]
    assert (guild_id, name, scope) == (123456789012345678, "ci", "manage")
    assert secret not in token_hash and len(token_hash) == 64


@pytest.mark.parametrize(
    "args",
    [
        ["token", "create", "--guild", "abc", "--name", "x"],
        ["token", "create", "--guild", "-4", "--name", "x"],
        ["token", "create", "--guild", "1", "--name", "x", "--scope", "admin"],
        ["token", "create", "--name", "x"],
    ],
)
def test_token_create_rejects_bad_arguments(tmp_path, args) -> None:
    result = subprocess.run(
        [sys.executable, "run.py", *args], cwd=ROOT, env=clean_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "error" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "run.db").exists()


def test_db_upgrade_command(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "run.py", "db", "upgrade"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert f"database is at revision {head_revision()}" in result.stdout


# ---- run.py sync: where it publishes, decided before any network --------------------------------------------------
def test_sync_without_a_token_refuses_with_one_clear_line(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "run.py", "sync", "--guild", "123456789012345678"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: sync needs the Discord token; set STARTLINE_DISCORD__TOKEN"]
    assert result.stdout == ""


@pytest.mark.parametrize("guild", ["abc", "-4", "0", str(2**63)])
def test_sync_rejects_a_guild_that_is_no_discord_id(guild, capsys) -> None:
    import run

    with pytest.raises(SystemExit) as exit_info:
        run.build_parser().parse_args(["sync", "--guild", guild])
    assert exit_info.value.code == 2
    assert f"argument --guild: {guild!r} is not a" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "dev_guilds", "expected"),
    [
        (["sync", "--guild", "11", "--guild", "12"], [99], ([11, 12], False)),
        (["sync"], [98, 99], ([98, 99], False)),  # the configured development servers
        (["sync", "--global"], [99], ([], True)),
        (["sync", "--global", "--guild", "11"], [], ([11], True)),
    ],
)
def test_sync_publishes_where_it_is_told(tmp_path, monkeypatch, argv, dev_guilds, expected) -> None:
    import run
    from tests.conftest import make_settings

    published = []

    async def fake_sync(settings, guild_ids, include_global):  # stands in for the Discord round trip
        published.append((guild_ids, include_global))
        return 0

    monkeypatch.setattr(run, "_sync", fake_sync)
    settings = make_settings(tmp_path, discord={"token": "a-token", "dev_guild_ids": dev_guilds})
    args = run.build_parser().parse_args(argv)
    assert run.sync(settings, args.guild, args.sync_global) == 0
    assert published == [expected]


def test_sync_with_nowhere_to_publish_says_how(tmp_path, monkeypatch, capsys) -> None:
    import run
    from tests.conftest import make_settings

    monkeypatch.setattr(run, "_sync", None)  # must not be reached
    settings = make_settings(tmp_path, discord={"token": "a-token"})
    assert run.sync(settings, [], False) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: say where to publish: --guild ID") and "--global" in line
