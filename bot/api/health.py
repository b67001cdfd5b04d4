"""`GET /api/v1/health`: no auth; says whether the process and its parts are working."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import text

if TYPE_CHECKING:
    from bot.app import Application


async def health(request: web.Request) -> web.Response:
    from bot.api.server import APP_KEY

    app: Application = request.app[APP_KEY]  # type: ignore[assignment]
    database = "ok"
    try:
        async with app.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # health must answer even when the database does not
        database = f"error: {type(exc).__name__}"
    body = {
        "status": "ok" if database == "ok" else "degraded",
        "version": app.version,
        "database": database,
        "discord": app.discord_state,
        "racetime": "configured" if app.settings.has_racetime_credentials else "not configured",
        "jobs": {
            name: {
                "runs": status.runs,
                "failures": status.failures,
                "last_error": status.last_error,
            }
            for name, status in app.jobs.status.items()
        },
    }
    return web.json_response(body, status=200 if database == "ok" else 503)


def setup(web_app: web.Application) -> None:
    web_app.router.add_get("/api/v1/health", health)
