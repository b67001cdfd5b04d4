"""Logs a collector can read: `logging.format = "json"` writes one JSON object per line with the ids as fields."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

from bot.jobs import JobRunner
from bot.logs import log_context, make_handler
from bot.services.race_locks import lock_race
from bot.settings import LoggingSettings
from db.types import utcnow
from tests.conftest import GUILD, MODERATOR


def capture(fmt: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    logger = logging.getLogger(f"test.logs.{fmt}")
    logger.handlers[:] = [make_handler(LoggingSettings(format=fmt), stream)]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger, stream


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_parses_and_carries_the_ids_given_with_extra():
    logger, stream = capture("json")
    logger.warning("room for %s not opened", "race 7", extra={"race_id": 7, "guild_id": GUILD})
    (line,) = lines(stream)
    assert line["message"] == "room for race 7 not opened"
    assert (line["level"], line["logger"], line["race_id"], line["guild_id"]) == ("WARNING", logger.name, 7, GUILD)
    assert line["time"].endswith("Z")
    assert "exception" not in line


def test_an_exception_goes_into_its_own_field_and_stays_on_one_line():
    logger, stream = capture("json")
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        logger.exception("failed")
    assert len(stream.getvalue().splitlines()) == 1
    (line,) = lines(stream)
    assert line["message"] == "failed" and "ValueError: bad" in line["exception"]


async def test_the_job_runner_and_the_race_lock_put_their_ids_on_every_line(services, db):
    logger, stream = capture("json")
    tournament = await services.tournaments.create_tournament(GUILD, MODERATOR, name="T")
    pool = await services.tournaments.add_pool(GUILD, tournament.id, MODERATOR, name="P")
    race = await services.live_races.create(
        GUILD, tournament.id, MODERATOR, pool_id=pool.id, scheduled_at=utcnow() + timedelta(days=1), title="R"
    )

    async def body() -> None:
        logger.info("before the lock")
        async with db.transaction() as session:
            await lock_race(session, race.race.id)
        logger.info("after the lock")
        logger.info("explicit wins", extra={"race_id": 999})

    runner = JobRunner()
    runner.add("room_opener", body, seconds=60)
    await runner.run_once("room_opener")
    logger.info("outside the job")
    before, after, explicit, outside = lines(stream)
    assert before["job"] == "room_opener" and "race_id" not in before
    assert (after["job"], after["race_id"], after["guild_id"]) == ("room_opener", race.race.id, GUILD)
    assert explicit["race_id"] == 999
    assert "job" not in outside and "race_id" not in outside


def test_the_default_text_format_is_human_readable_and_shows_the_ids():
    logger, stream = capture("text")
    with log_context(job="race_poller"):
        logger.info("polled %d rooms", 3)
    text = stream.getvalue()
    assert "INFO" in text and "polled 3 rooms [job=race_poller]" in text
    assert not text.lstrip().startswith("{")
    assert LoggingSettings().format == "text"
