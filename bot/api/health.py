"""`GET /api/v1/health`: no auth; says whether the process and its parts are working."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import Health, JobHealth, RacetimeBotHealth

routes = RouteTable()


@routes.route(
    "GET",
    "/api/v1/health",
    summary="Is the process working",
    tag="health",
    scope=None,
    response=Health,
    other_statuses=(503,),
    description="No token needed. 503 (same body) when the database does not answer.",
)
async def health(call: ApiCall) -> Reply:
    app = call.app
    database = "ok"
    try:
        async with app.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # health must answer even when the database does not
        database = f"error: {type(exc).__name__}"
    body = Health(
        status="ok" if database == "ok" else "degraded",
        version=app.version,
        database=database,
        discord=app.discord_state,
        racetime="configured" if app.racetime is not None else "not configured",
        racetime_bots=racetime_bots(app),
        jobs={
            name: JobHealth(runs=status.runs, failures=status.failures, last_error=status.last_error)
            for name, status in app.jobs.status.items()
        },
    )
    return Reply(body, 200 if database == "ok" else 503)


def racetime_bots(app: Any) -> dict[str, RacetimeBotHealth]:
    """Each configured category bot, keyed by category, with this process's view of its token (memory only: the
    health check answers while the database does not)."""
    if app.racetime is None:
        return {}
    seen = app.racetime_health.snapshot()
    bots = {}
    for credentials, _client in app.racetime.items():
        entry = {"last_token_at": None, "last_success_at": None, "last_error": None, "last_error_at": None}
        entry.update(seen.get(credentials) or {})
        bots[credentials] = RacetimeBotHealth(credentials=credentials, **entry)
    return bots
