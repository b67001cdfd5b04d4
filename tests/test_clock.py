"""One clock per process: whatever reads "now" in the application reads the clock `Application` made."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.actors import SYSTEM
from bot.app import Application
from bot.settings import Settings
from tests.conftest import GUILD

INSTANT = datetime(2031, 3, 30, 1, 30, tzinfo=UTC)


async def test_services_jobs_and_the_dispatcher_share_the_applications_clock(settings: Settings) -> None:
    app = Application(settings, start_jobs=False)
    await app.start()
    try:
        app.clock.source = lambda: INSTANT  # moved once, for everything
        services = app.services
        assert services.clock is app.clock and services.live_races.clock is app.clock

        issued = await services.tokens.create(GUILD, SYSTEM, name="clock", scope="read")
        await services.tokens.revoke(GUILD, issued.token.id, SYSTEM)
        [token] = [t for t in await services.tokens.list(GUILD, include_revoked=True) if t.id == issued.token.id]
        assert token.revoked_at == INSTANT

        app.jobs.add("noop", _noop, seconds=3600, first_run_in=3600)
        await app.jobs.run_once("noop")
        assert app.jobs.status["noop"].last_started_at == INSTANT
        assert app.jobs.status["noop"].last_success_at == INSTANT

        assert app.dispatcher._clock is app.clock and app.leases.clock is app.clock
        assert (await app.status.status(GUILD)).generated_at == INSTANT
    finally:
        await app.stop()


async def _noop() -> None:
    return None
