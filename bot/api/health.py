"""`GET /api/v1/health`: no auth; says whether the process and its parts are working."""

from __future__ import annotations

from sqlalchemy import text

from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import Health, JobHealth

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
        racetime="configured" if app.settings.has_racetime_credentials else "not configured",
        jobs={
            name: JobHealth(runs=status.runs, failures=status.failures, last_error=status.last_error)
            for name, status in app.jobs.status.items()
        },
    )
    return Reply(body, 200 if database == "ok" else 503)
