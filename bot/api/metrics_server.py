"""The HTTP side of the Prometheus metrics: `GET /metrics` on its own address and port (`[metrics]`), with
`Authorization: Bearer <metrics.token>` when a token is set. What it serves is `bot/metrics.py`'s."""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from bot.metrics import REGISTRY, DatabaseSnapshot, MetricsSource, ScrapeCollector, read_database_snapshot
from bot.settings import MetricsSettings

log = logging.getLogger(__name__)


class MetricsServer:
    """`GET /metrics` on `metrics.host`:`metrics.port`, in the process's event loop."""

    def __init__(self, app: MetricsSource, settings: MetricsSettings) -> None:
        self.app, self.settings = app, settings
        self.collector = ScrapeCollector(app)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.runner: web.AppRunner | None = None
        self.port: int | None = None

    def web_app(self) -> web.Application:
        web_app = web.Application()
        web_app.router.add_get("/metrics", self.handle)
        return web_app

    def authorized(self, request: web.Request) -> bool:
        token = self.settings.token
        if token is None:
            return True
        sent = request.headers.get("Authorization", "")
        expected = f"Bearer {token.get_secret_value()}"
        return hmac.compare_digest(sent.encode(), expected.encode())

    async def handle(self, request: web.Request) -> web.Response:
        if not self.authorized(request):
            return web.json_response(
                {"error": {"code": "unauthorized", "message": "a valid metrics token is required", "details": {}}},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        body = await self.render()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def render(self) -> bytes:
        now = self.app.clock()
        try:
            self.collector.snapshot = await read_database_snapshot(self.app, now)
        except Exception:  # a scrape still shows the process's own metrics when the database does not answer
            log.exception("metrics: reading the database failed")
            self.collector.snapshot = DatabaseSnapshot()
        self.collector.now = now
        return generate_latest(REGISTRY) + generate_latest(self.registry)

    async def start(self) -> None:
        settings = self.settings
        self.runner = web.AppRunner(self.web_app(), shutdown_timeout=2.0, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, settings.host, settings.port)
        await site.start()
        sockets: list[Any] = getattr(site._server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else settings.port
        if settings.token is None and settings.host not in ("127.0.0.1", "::1", "localhost"):
            log.warning("metrics are served on %s without a token (set metrics.token)", settings.host)
        log.info("metrics on http://%s:%s/metrics", settings.host, self.port)

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
