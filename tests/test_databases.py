"""Each pytest-xdist worker's PostgreSQL database is named after the given one (tests/databases.py)."""

from __future__ import annotations

from tests.databases import worker_database_url

URL = "postgresql+asyncpg://startline_ci:s3cret@127.0.0.1:5433/startline_ci"


def test_a_worker_gets_the_database_named_after_it() -> None:
    assert worker_database_url(URL, "gw1") == "postgresql+asyncpg://startline_ci:s3cret@127.0.0.1:5433/startline_ci_gw1"


def test_without_a_worker_or_a_database_nothing_changes() -> None:
    assert worker_database_url(URL, None) == URL
    assert worker_database_url(None, "gw0") is None
