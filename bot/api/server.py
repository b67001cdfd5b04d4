"""Building and running the aiohttp application.

`create_api_app` runs each function of `SETUP_FUNCTIONS` on the new web application; a module that serves
more routes (the RaceTime.gg OAuth callback, for one) adds its `setup(web_app)` there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot import metrics
from bot.api import oauth, v1
from bot.api.errors import MAX_BODY_KEY, error_middleware
from bot.api.ratelimit import RateLimiter
from bot.api.registry import APP_KEY, LIMITER_KEY, ApiHost

log = logging.getLogger(__name__)

SetupFunction = Callable[[web.Application], None]
SETUP_FUNCTIONS: list[SetupFunction] = [v1.setup, oauth.setup]

__all__ = ["APP_KEY", "SETUP_FUNCTIONS", "ApiServer", "create_api_app"]


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Counts every request by its route's template (never the raw path) and status, with its latency."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else metrics.UNMATCHED_ROUTE
        metrics.observe_api_request(route, request.method, status, time.perf_counter() - started)


def create_api_app(app: ApiHost, *, extra_setup: tuple[SetupFunction, ...] = ()) -> web.Application:
    settings = app.settings.api
    middlewares = [metrics_middleware, error_middleware]  # the metrics see the answer the error envelope made
    web_app = web.Application(client_max_size=settings.max_body_bytes, middlewares=middlewares)
    web_app[APP_KEY] = app
    web_app[MAX_BODY_KEY] = settings.max_body_bytes
    # One limiter for the whole process: every request of a token counts against the same window.
    web_app[LIMITER_KEY] = RateLimiter(settings.rate_limit_per_minute)
    for setup in (*SETUP_FUNCTIONS, *extra_setup):
        setup(web_app)
    return web_app


class ApiServer:
    """Runs the side server inside the bot's event loop (never `web.run_app`, which owns the loop)."""

    def __init__(self, app: ApiHost) -> None:
        self.app = app
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    async def start(self) -> None:
        settings = self.app.settings.api
        self.runner = web.AppRunner(create_api_app(self.app), shutdown_timeout=5.0, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.host, settings.port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else settings.port
        log.info("API listening on http://%s:%s", settings.host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
