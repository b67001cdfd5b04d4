"""Logging: human-readable lines by default, or one JSON object per line (`logging.format = "json"`).

Ids that say what a line is about travel as fields, never parsed out of the message: `job`, `guild_id`,
`race_id` and `tournament_id`. They come from two places, and an explicit one wins:

- `extra=`: `log.warning("room not opened", extra={"race_id": race.id, "guild_id": race.guild_id})`;
- the log context, a contextvar: `JobRunner` runs every job body inside `log_context(job=name)`, and
  `race_locks.lock_race` binds the race and its guild for the rest of the job run or API request that locked it.

The human-readable format shows the same ids after the message (`[job=room_opener race_id=12]`), so both formats
carry them.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.settings import LoggingSettings

CONTEXT_FIELDS = ("job", "guild_id", "tournament_id", "race_id")
_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("startline_log_context", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s"
# Request lines of the HTTP libraries would add noise, never needed secrets; keep them quiet.
NOISY_LOGGERS = ("httpx", "httpcore", "alembic", "apscheduler", "discord.http")


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Every line logged inside the block (in this task) carries `fields`; the previous context comes back after."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def bind_log_context(**fields: Any) -> None:
    """Add `fields` to the current context until the enclosing `log_context` ends (or the task does)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: v for k, v in fields.items() if v is not None}})


def context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The ids of a record: the log context, overridden by what the call passed in `extra=`."""
    fields = dict(_CONTEXT.get() or {})
    for name in CONTEXT_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = value
    return {name: fields[name] for name in CONTEXT_FIELDS if name in fields}


class ContextFilter(logging.Filter):
    """Puts the context on the record when it is made (in the task that logged it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = context_fields(record)
        record.startline_context = fields
        record.context = " [" + " ".join(f"{k}={v}" for k, v in fields.items()) + "]" if fields else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the ids, and the exception."""

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "startline_context", None)
        if fields is None:
            fields = context_fields(record)
        at = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        line: dict[str, Any] = {
            "time": at.replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **fields,
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def make_handler(settings: LoggingSettings, stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT))
    return handler


def configure_logging(settings: LoggingSettings) -> None:
    """The root logger for a process of `run.py`: one handler on stderr in the configured format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(settings))
    root.setLevel(settings.level)
    for noisy in NOISY_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.WARNING)
