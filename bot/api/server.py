"""Building and running the aiohttp application."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiohttp import web

from bot.api import health, oauth

if TYPE_CHECKING:
    from bot.app import Application

log = logging.getLogger(__name__)

APP_KEY = web.AppKey("startline_app", object)


def create_api_app(app: Application) -> web.Application:
    web_app = web.Application(client_max_size=app.settings.api.max_body_bytes)
    web_app[APP_KEY] = app
    health.setup(web_app)
    oauth.setup(web_app)
    return web_app


class ApiServer:
    """Runs the side server inside the bot's event loop (never `web.run_app`, which owns the loop)."""

    def __init__(self, app: Application) -> None:
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
