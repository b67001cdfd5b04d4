"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on the way in and on the way out.

    SQLite has no timezone support and hands back naive datetimes; a naive datetime given to Discord's
    `format_dt` is read as server-local time, so every value is normalised to UTC and re-tagged on load.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; attach a timezone first")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Store naive UTC so SQLite's text comparison orders values correctly.
            return value.replace(tzinfo=None)
        return value

    def result_processor(self, dialect, coltype):
        if dialect.name != "sqlite":
            return super().result_processor(dialect, coltype)

        # SQLite hands back the stored text: one C-level parse instead of SQLAlchemy's regular expression and
        # then the re-tagging below (list reads parse thousands of these; about a third of a page's read time).
        def process(value):
            if value.__class__ is str:
                try:  # parsed with its offset: a `datetime.replace(tzinfo=)` afterwards costs five times more
                    return datetime.fromisoformat(value + "+00:00")
                except ValueError:  # text that carries an offset of its own (not written by this type)
                    return _aware(value)
            if value is None:
                return None
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

        return process

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _aware(text: str) -> datetime:
    """Stored text that carries an offset of its own (not written by this type), as an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
