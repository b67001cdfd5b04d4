"""The one clock of a process.

`Application` makes one `Clock` and hands the same instance to every service, job, the notification dispatcher and
the adapters (`app.clock`), so "now" has one meaning in a process and a test moves all of it at once
(`app.clock.source = fake`). Nothing else in `bot/`, `cogs/`, `db/` or `racetime/` reads the system time for a
decision: ruff's banned-api rule (TID251, see `pyproject.toml`) refuses `datetime.now`, `datetime.utcnow` and
`db.types.utcnow` outside this module. Row bookkeeping defaults (`created_at`, `updated_at` in `db/models.py`)
are the one exception: SQLAlchemy calls them without a service, and they decide nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from db.types import utcnow as system_now


class Clock:
    """Aware UTC "now", from `source` (the system time unless a test or a benchmark replaces it)."""

    __slots__ = ("source",)

    def __init__(self, source: Callable[[], datetime] | None = None) -> None:
        self.source: Callable[[], datetime] = source or system_now

    def __call__(self) -> datetime:
        return self.source()


SYSTEM_CLOCK = Clock()
"""For code built outside an `Application` (scripts, one-off tools); services default to it."""
