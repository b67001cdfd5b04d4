"""Configuration: `config.toml` defaults, overridden by `STARTLINE_` environment variables.

Nested keys use `__` (`STARTLINE_DISCORD__TOKEN`, `STARTLINE_DATABASE__URL`). Secrets are `SecretStr`, so they
never appear in a repr, a log line or an error message.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config.toml"
# The RaceTime.gg requests the room opener makes under one claim, at most: a token, the category listing and
# `startrace`. The opener bounds a claim's HTTP work by this many request timeouts (see `open_claim_budget_seconds`).
OPEN_REQUESTS_PER_CLAIM = 3


class ConfigError(Exception):
    """A configuration problem, explained in one line that names the key."""


class SettingsConflict(ValueError):
    """Two settings that are each valid but not together; `key` is the one to change."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DiscordSettings(_Section):
    token: SecretStr | None = None
    dev_guild_ids: list[int] = Field(default_factory=list)
    owner_ids: list[int] = Field(default_factory=list)
    # Unset: one gateway connection. "auto" (as many shards as Discord recommends) or a count: an AutoShardedBot.
    shards: Literal["auto"] | Annotated[int, Field(ge=1, le=4096)] | None = None

    @field_validator("shards", mode="before")
    @classmethod
    def _shards(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().isdigit():  # from the environment: "4"
            return int(value)
        return value


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///data/startline.db"
    echo: bool = False
    busy_timeout_ms: int = Field(default=5000, ge=0)
    pool_size: int = Field(default=20, ge=1, le=1000)
    max_overflow: int = Field(default=10, ge=0, le=1000)

    @field_validator("url")
    @classmethod
    def _known_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value


class ApiSettings(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    public_url: str = "http://127.0.0.1:8080"
    rate_limit_per_minute: int = Field(default=60, ge=1)
    # How long a process may answer from its cache of token lookups: a revoke made through another process is
    # seen here within this time (through this process: at once). 0 turns the cache off.
    token_cache_seconds: float = Field(default=5.0, ge=0, le=60)
    max_body_bytes: int = Field(default=65536, ge=1024)
    secret_key: SecretStr | None = None

    @field_validator("public_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


_CATEGORY_SLUG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


def _check_slug(value: str) -> str:
    if not value or len(value) > 50 or not set(value) <= _CATEGORY_SLUG_CHARS:
        raise ValueError(f"{value!r} is not a RaceTime.gg category slug (lower-case letters, digits, - and _)")
    return value


class CategoryCredentials(_Section):
    """One category bot's OAuth client (RaceTime.gg accepts a category bot only in its own category)."""

    client_id: str
    client_secret: SecretStr

    @field_validator("client_id")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()


class RacetimeSettings(_Section):
    base_url: str = "https://racetime.gg"
    category: str = "alttpr"
    # The default category's bot; `categories` holds the bots of the others (one per category).
    client_id: str | None = None
    client_secret: SecretStr | None = None
    categories: dict[str, CategoryCredentials] = Field(default_factory=dict)
    # RaceTime.gg gives a category bot a client-credentials-only application, so linking players' accounts
    # (the authorization-code flow of /racetime link) needs a second, ordinary OAuth application.
    oauth_client_id: str | None = None
    oauth_client_secret: SecretStr | None = None
    poll_interval_seconds: float = Field(default=30.0, gt=0)
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    # RaceTime.gg serves /o/{category}/data from a cache this old at most: a room younger than this may be missing.
    listing_cache_seconds: float = Field(default=60.0, ge=0)
    # Startline in the rooms it opened, over the bot websocket (pinned summary, eligibility warnings, !commands).
    room_presence: bool = True
    # How often the presence job joins and leaves rooms and re-checks the entrants of the rooms it holds.
    presence_interval_seconds: float = Field(default=10.0, gt=0, le=600)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @field_validator("category")
    @classmethod
    def _category_slug(cls, value: str) -> str:
        return _check_slug(value)

    @field_validator("categories")
    @classmethod
    def _category_slugs(cls, value: dict[str, CategoryCredentials]) -> dict[str, CategoryCredentials]:
        # Environment variable names arrive lower-cased (STARTLINE_RACETIME__CATEGORIES__SMZ3__CLIENT_ID → smz3).
        for slug in value:
            _check_slug(slug)
        return value

    def credentials(self) -> dict[str, tuple[str, str]]:
        """Every configured category bot: category slug → (client id, client secret)."""
        found: dict[str, tuple[str, str]] = {}
        if self.client_id and self.client_secret is not None:
            found[self.category] = (self.client_id, self.client_secret.get_secret_value())
        for slug, bot in self.categories.items():
            found[slug] = (bot.client_id, bot.client_secret.get_secret_value())
        return dict(sorted(found.items()))


class SchedulerSettings(_Section):
    room_open_lead_minutes: int = Field(default=15, ge=0, le=1440)
    opener_interval_seconds: float = Field(default=20.0, gt=0)
    open_max_attempts: int = Field(default=6, ge=1)
    open_backoff_base_seconds: float = Field(default=15.0, gt=0)
    open_claim_lease_seconds: float = Field(default=90.0, gt=0)
    # Rooms the opener opens at once (each waits on RaceTime.gg for most of its time).
    open_concurrency: int = Field(default=8, ge=1, le=64)
    # A race whose start passed longer ago than this is not opened automatically (only by a moderator).
    max_late_open_minutes: int = Field(default=30, ge=0, le=10080)
    score_upkeep_interval_seconds: float = Field(default=3600.0, gt=0)
    # How often each process writes its heartbeat row (the process count of /startline status counts the rows
    # seen within two intervals).
    heartbeat_interval_seconds: float = Field(default=15.0, gt=0, le=3600)


class SeriesSettings(_Section):
    # How far ahead the series job keeps occurrences created, and how often it runs.
    window_days: int = Field(default=14, ge=1, le=366)
    interval_seconds: float = Field(default=300.0, gt=0)
    # Refuse recurrence rules whose occurrences come closer together than this.
    min_interval_minutes: int = Field(default=60, ge=1, le=10080)
    max_batch_lines: int = Field(default=1000, ge=1, le=10000)


class NotificationSettings(_Section):
    dispatch_interval_seconds: float = Field(default=2.0, gt=0)
    dispatch_concurrency: int = Field(default=4, ge=1, le=50)
    batch_size: int = Field(default=200, ge=1)
    max_retries: int = Field(default=8, ge=0)
    backoff_base_seconds: float = Field(default=5.0, gt=0)
    backoff_max_seconds: float = Field(default=900.0, gt=0)
    # Client-side pace for Discord requests, below Discord's global 50/s so the rest of the bot keeps room.
    rate_limit_per_second: float = Field(default=40.0, gt=0, le=1000)
    # How long a dispatcher owns the rows it claimed before another process may take them over.
    claim_lease_seconds: float = Field(default=120.0, ge=10)
    # A start moved again within this time updates the rescheduled notice not yet sent instead of adding one
    # (each notice waits this long before it goes out); 0 sends each move at once.
    reschedule_collapse_seconds: float = Field(default=120.0, ge=0, le=3600)
    # The end of a race's Discord Scheduled Event when its room sets no time limit: this long after the start.
    scheduled_event_length_minutes: int = Field(default=180, ge=5, le=1440)
    # How often the reminders job looks for reminders that are due (one process per cycle, under its lease).
    reminder_interval_seconds: float = Field(default=30.0, gt=0, le=3600)


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # text: one readable line per record; json: one JSON object per line, for a log collector.
    format: Literal["text", "json"] = "text"


class MetricsSettings(_Section):
    # GET /metrics (Prometheus) on its own address and port, off by default.
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    # When set, a scrape must send `Authorization: Bearer <token>` (compared in constant time).
    token: SecretStr | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STARTLINE_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    discord: DiscordSettings = Field(default_factory=DiscordSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    racetime: RacetimeSettings = Field(default_factory=RacetimeSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    notifications: NotificationSettings = Field(default_factory=NotificationSettings)
    series: SeriesSettings = Field(default_factory=SeriesSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file arrives as init kwargs from `load_settings`.
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _lease_outlasts_an_open(self) -> Settings:
        """A crashed opener's claim is taken over after the lease: by then the room it may have created must be in
        the (cached) listing, or the next claim opens a second room."""
        worst = self.open_claim_budget_seconds + self.racetime.listing_cache_seconds
        if self.scheduler.open_claim_lease_seconds < worst:
            raise SettingsConflict(
                "scheduler.open_claim_lease_seconds",
                f"must be at least {worst:g} s (racetime.request_timeout_seconds "
                f"{self.racetime.request_timeout_seconds:g} × {OPEN_REQUESTS_PER_CLAIM} requests + "
                f"racetime.listing_cache_seconds {self.racetime.listing_cache_seconds:g}), or a second room could be "
                "opened for a race",
            )
        return self

    @model_validator(mode="after")
    def _one_bot_per_category(self) -> Settings:
        racetime = self.racetime
        if racetime.client_id and racetime.category in racetime.categories:
            raise SettingsConflict(
                f"racetime.categories.{racetime.category}",
                f"the default category {racetime.category} already has its bot in racetime.client_id; "
                "set one or the other",
            )
        return self

    @property
    def open_claim_budget_seconds(self) -> float:
        """The longest the room opener works on one claim before it records the room or the failure."""
        return self.racetime.request_timeout_seconds * OPEN_REQUESTS_PER_CLAIM

    @property
    def has_discord_token(self) -> bool:
        return self.discord.token is not None and bool(self.discord.token.get_secret_value().strip())

    @property
    def has_racetime_credentials(self) -> bool:
        """At least one category bot is configured."""
        return bool(self.racetime.credentials())

    @property
    def has_racetime_oauth(self) -> bool:
        return bool(self.racetime.oauth_client_id) and self.racetime.oauth_client_secret is not None


def _describe(error: dict[str, Any]) -> str:
    conflict = error.get("ctx", {}).get("error")
    if isinstance(conflict, SettingsConflict):
        env_name = "STARTLINE_" + conflict.key.replace(".", "__").upper()
        return f"configuration error: {conflict.key}: {conflict.message} (set it in the config file or {env_name})"
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "missing":
        message = "required value is missing"
    env_name = "STARTLINE_" + "__".join(str(part) for part in error["loc"]).upper()
    return f"configuration error: {key}: {message} (set it in the config file or {env_name})"


def load_settings(path: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Read the TOML file (default `config.toml` beside the code), then apply the environment.

    Raises ConfigError with one readable line; the offending value itself is never echoed, since it may be
    a secret.
    """
    config_path = Path(path) if path is not None else DEFAULT_CONFIG_PATH
    file_values: dict[str, Any] = {}
    if config_path.exists():
        try:
            with config_path.open("rb") as handle:
                file_values = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration error: {config_path}: not valid TOML ({exc})") from None
    elif path is not None:
        raise ConfigError(f"configuration error: config file {config_path} does not exist")
    for section, values in overrides.items():
        file_values.setdefault(section, {}).update(values)
    try:
        return Settings(**file_values)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0])) from None
