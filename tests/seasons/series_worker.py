"""A series job process for tests/seasons/test_series_process.py: one `keep_series` at a fixed time.

`python -m tests.seasons.series_worker SERIES_ID NOW_ISO` on the database of STARTLINE_DATABASE__URL; it prints
`made <date>` after each occurrence it created and `done` at the end, so the test can SIGKILL it anywhere.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime

from bot.services import build_services
from bot.settings import load_settings
from db.session import Database


async def main(series_id: int, now: datetime) -> None:
    settings = load_settings()
    db = Database.from_settings(settings.database)
    services = build_services(settings, db)
    services.live_races.clock = lambda: now
    series = services.series
    create = series._create_occurrence

    async def reporting(series_id, occurrence, **kwargs):
        made = await create(series_id, occurrence, **kwargs)
        print(f"{'made' if made else 'found'} {occurrence.local_date}", flush=True)
        return made

    series._create_occurrence = reporting  # type: ignore[method-assign]
    try:
        await series.keep_series(series_id)
    finally:
        await db.dispose()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), datetime.fromisoformat(sys.argv[2])))
