"""The series job as real processes: SIGKILLed at random points, then two at once; every occurrence exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from bot.services import Services
from db.models import LiveRace, SeriesOccurrence
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, make_world

ROOT = Path(__file__).resolve().parents[2]
SETUP_AT = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)
RUN_AT = SETUP_AT + timedelta(days=30)
WINDOW_DAYS = 20  # daily occurrences: about twenty to make per run


def _worker(settings, series_id: int) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("STARTLINE_")}
    env["STARTLINE_DATABASE__URL"] = settings.database.url
    env["STARTLINE_SERIES__WINDOW_DAYS"] = str(WINDOW_DAYS)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.seasons.series_worker", str(series_id), RUN_AT.isoformat()],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_series_job_killed_anywhere_then_racing_itself_makes_each_occurrence_once(
    settings, services: Services
) -> None:
    services.live_races.clock = Clock(SETUP_AT)
    world = await make_world(services, seeds=40)
    template = await services.templates.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        name="daily",
        pool_ids=[world.pool.id],
        start_time="20:00",
        timezone="America/New_York",
    )
    view = await services.series.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        name="Daily",
        template_id=template.id,
        rrule="FREQ=DAILY",
        starts_on=(RUN_AT + timedelta(days=1)).date(),
    )
    series_id = view.series.id
    rng = random.Random(os.environ.get("SERIES_KILL_SEED", "15"))
    for _ in range(3):
        process = _worker(settings, series_id)
        try:
            for _ in range(rng.randint(0, 4)):
                if not process.stdout.readline():
                    break
            process.send_signal(signal.SIGKILL)  # between two occurrences, or inside one's transaction
        finally:
            process.wait(timeout=60)
    racing = [_worker(settings, series_id) for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in racing]
    for process, (out, err) in zip(racing, outputs, strict=True):
        assert process.returncode == 0, err
        assert out.strip().endswith("done")
    made_lines = sum(out.count("made ") for out, _ in outputs)

    async with services.db.read() as session:
        occurrences = (
            await session.execute(
                select(SeriesOccurrence.occurrence_date, SeriesOccurrence.live_race_id)
                .where(SeriesOccurrence.series_id == series_id)
                .order_by(SeriesOccurrence.occurrence_date)
            )
        ).all()
        races = await session.scalar(select(func.count(LiveRace.id)))
    expected = [RUN_AT.date() + timedelta(days=offset) for offset in range(1, WINDOW_DAYS)]
    assert [day for day, _ in occurrences] == expected  # none missing, none doubled (the key forbids it)
    assert races == len(expected)  # no race without its occurrence row: a killed creation left nothing
    assert len({race_id for _, race_id in occurrences}) == len(expected)
    assert made_lines <= len(expected)
