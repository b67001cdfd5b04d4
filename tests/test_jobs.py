"""The job runner: a run never overlaps the previous one, and the ticks that come meanwhile pass quietly."""

from __future__ import annotations

import asyncio
import logging

from bot.jobs import JobRunner


async def wait_for(condition, deadline: float = 10.0) -> None:
    """Poll `condition` (a safety net of `deadline` seconds, not a measurement)."""
    for _ in range(int(deadline / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after {deadline} s")


async def test_ticks_during_a_long_run_are_skipped_quietly(caplog):
    release = asyncio.Event()
    started = 0

    async def long_run() -> None:
        nonlocal started
        started += 1
        await release.wait()

    jobs = JobRunner()
    jobs.add("drain", long_run, seconds=0.02)
    caplog.set_level(logging.DEBUG, logger="apscheduler")
    jobs.start()
    try:
        await wait_for(lambda: jobs.status["drain"].skipped_ticks >= 3)
        assert started == 1 and jobs.status["drain"].runs == 0
        release.set()
        await wait_for(lambda: jobs.status["drain"].runs >= 2)
    finally:
        await jobs.shutdown()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


async def test_a_failing_run_is_recorded_and_the_schedule_goes_on():
    async def broken() -> None:
        raise RuntimeError("boom")

    jobs = JobRunner()
    jobs.add("broken", broken, seconds=0.02)
    jobs.start()
    try:
        await wait_for(lambda: jobs.status["broken"].failures >= 2)
    finally:
        await jobs.shutdown()
    assert jobs.status["broken"].last_error == "RuntimeError: boom"


async def test_shutdown_waits_for_the_run_in_progress():
    entered = asyncio.Event()
    finished = []

    async def work() -> None:
        entered.set()
        await asyncio.sleep(0.2)
        finished.append(True)

    jobs = JobRunner()
    jobs.add("work", work, seconds=60)
    jobs.start()
    await asyncio.wait_for(entered.wait(), 10)
    await jobs.shutdown()
    assert finished == [True] and jobs.status["work"].runs == 1


async def test_shutdown_cancels_a_run_that_outlasts_the_grace_period(caplog):
    entered = asyncio.Event()

    async def stuck() -> None:
        entered.set()
        await asyncio.Event().wait()

    jobs = JobRunner()
    jobs.add("stuck", stuck, seconds=60)
    jobs.start()
    await asyncio.wait_for(entered.wait(), 10)
    await jobs.shutdown(grace_seconds=0.05)
    assert "job stuck was cancelled at shutdown" in caplog.text and "Traceback" not in caplog.text
