"""Configuration: file defaults, environment overrides, readable errors, no secret in any output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import ConfigError, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_committed_defaults_load(settings) -> None:
    defaults = load_settings()
    assert defaults.database.url == "sqlite+aiosqlite:///data/startline.db"
    assert defaults.scheduler.room_open_lead_minutes == 15
    assert defaults.racetime.base_url == "https://racetime.gg"
    assert defaults.api.rate_limit_per_minute == 60
    assert defaults.discord.token is None and not defaults.has_discord_token


def test_environment_overrides_nested_keys(settings, monkeypatch) -> None:
    monkeypatch.setenv("STARTLINE_DISCORD__TOKEN", "discord-secret-value")
    monkeypatch.setenv("STARTLINE_RACETIME__CLIENT_SECRET", "rt-secret-value")
    monkeypatch.setenv("STARTLINE_SCHEDULER__ROOM_OPEN_LEAD_MINUTES", "30")
    loaded = load_settings()
    assert loaded.has_discord_token
    assert loaded.discord.token.get_secret_value() == "discord-secret-value"
    assert loaded.scheduler.room_open_lead_minutes == 30
    # the rest of the section still comes from the file
    assert loaded.scheduler.open_claim_lease_seconds == 90
    assert "discord-secret-value" not in repr(loaded)
    assert "rt-secret-value" not in str(loaded.model_dump())


def test_config_path_is_honoured(settings, tmp_path) -> None:
    path = tmp_path / "other.toml"
    path.write_text('[api]\nport = 9999\n[racetime]\ncategory = "smz3"\n')
    loaded = load_settings(path)
    assert loaded.api.port == 9999
    assert loaded.racetime.category == "smz3"
    assert loaded.scheduler.room_open_lead_minutes == 15


@pytest.mark.parametrize(
    ("toml", "env", "expected"),
    [
        ("[api]\nport = 70000\n", {}, "api.port"),
        ("[api]\nport = 'x'\n", {}, "api.port"),
        ("[database]\nurl = 'mysql://x'\n", {}, "database.url"),
        ("[database]\npool_size = 0\n", {}, "database.pool_size"),
        ("", {"STARTLINE_DATABASE__MAX_OVERFLOW": "-1"}, "database.max_overflow"),
        ("[racetime]\nbase_url = 'ftp://x'\n", {}, "racetime.base_url"),
        ("[scheduler]\nroom_open_lead_minutes = -1\n", {}, "scheduler.room_open_lead_minutes"),
        ("[scheduler]\nunknown_key = 1\n", {}, "scheduler.unknown_key: unknown key"),
        ("[nonsense]\na = 1\n", {}, "nonsense"),
        ("", {"STARTLINE_NOTIFICATIONS__MAX_RETRIES": "many"}, "notifications.max_retries"),
        ("[api\n", {}, "not valid TOML"),
    ],
)
def test_bad_values_give_one_line_naming_the_key(settings, tmp_path, monkeypatch, toml, env, expected) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


def test_missing_config_file_is_an_error(settings, tmp_path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_run_py_reports_config_error_without_traceback_or_secret(tmp_path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[api]\nport = 'not-a-port'\n")
    env = {"PATH": "/usr/bin:/bin", "STARTLINE_DISCORD__TOKEN": "very-secret-token"}
    result = subprocess.run(
        [sys.executable, "run.py", "--config", str(path), "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("configuration error: api.port")
    assert "Traceback" not in result.stderr
    assert "very-secret-token" not in result.stderr + result.stdout
