"""Prometheus metrics (`prometheus-client`): what the process counts as it goes, and what the database holds,
read when Prometheus scrapes.

Process counters and histograms live in one module-level registry (`REGISTRY`) and are fed by one call at each
place that knows the fact: `observe_job_run` (bot/jobs.py), `observe_racetime_request` and
`observe_racetime_token` (through `RacetimeObserver`, bot/services/processes.py), `observe_api_request` (the API's
middleware), `observe_notification` (the dispatcher). Labels are always from small fixed sets: job names,
RaceTime.gg endpoint kinds (`startrace`, `detail`, … never a slug), API routes as templates
(`/api/v1/tournaments/{tid}`), statuses.

The database's share (races by status, outbox depth and the age of its oldest due row, processes seen) is read by
`DatabaseCollector` with ONE query per scrape, never per request. Job lag is computed at scrape from this process's
`JobRunner`.

`MetricsServer` serves `GET /metrics` on its own address and port (`[metrics]`), off unless `metrics.enabled`,
and asks for `Authorization: Bearer <metrics.token>` when a token is set.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import String, func, literal, select, type_coerce, union_all

from db.models import LiveRace, Notification, NotificationStatus, ProcessHeartbeat
from db.types import UTCDateTime

if TYPE_CHECKING:
    from bot.app import Application

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

JOB_RUNS = Counter("startline_job_runs", "Runs of each periodic job, by outcome", ["job", "outcome"], registry=REGISTRY)
JOB_DURATION = Histogram(
    "startline_job_duration_seconds",
    "How long one run of a job took",
    ["job"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)
RACETIME_REQUESTS = Counter(
    "startline_racetime_requests",
    "Requests to RaceTime.gg by endpoint kind and HTTP status (timeout and error when there was no answer)",
    ["endpoint", "status"],
    registry=REGISTRY,
)
RACETIME_TOKEN_REFRESHES = Counter(
    "startline_racetime_token_refreshes",
    "Bot tokens fetched from RaceTime.gg, by outcome",
    ["credentials", "outcome"],
    registry=REGISTRY,
)
RACETIME_WEBSOCKETS = Gauge(
    "startline_racetime_websocket_connections",
    "Open bot websocket connections to RaceTime.gg rooms, by category",
    ["category"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "startline_api_requests",
    "REST API requests by route template, method and status",
    ["route", "method", "status"],
    registry=REGISTRY,
)
API_LATENCY = Histogram(
    "startline_api_request_duration_seconds",
    "REST API request latency by route template",
    ["route", "method"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
NOTIFICATIONS = Counter(
    "startline_notifications",
    "Outbox rows this process finished with, by kind (dm, channel) and outcome (sent, failed, expired, skipped, "
    "retrying)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
UNMATCHED_ROUTE = "unmatched"


def observe_job_run(job: str, ok: bool, seconds: float) -> None:
    JOB_RUNS.labels(job, "success" if ok else "failure").inc()
    JOB_DURATION.labels(job).observe(seconds)


def observe_racetime_request(endpoint: str, status: str) -> None:
    RACETIME_REQUESTS.labels(endpoint, status).inc()


def observe_racetime_token(credentials: str, ok: bool) -> None:
    RACETIME_TOKEN_REFRESHES.labels(credentials, "success" if ok else "failure").inc()


def observe_api_request(route: str, method: str, status: int, seconds: float) -> None:
    API_REQUESTS.labels(route, method, str(status)).inc()
    API_LATENCY.labels(route, method).observe(seconds)


def observe_notification(kind: str, outcome: str, count: int = 1) -> None:
    if count:
        NOTIFICATIONS.labels(kind, outcome).inc(count)


def set_websocket_connections(category: str, connections: int) -> None:
    """For the room-presence work: the open bot websockets of a category."""
    RACETIME_WEBSOCKETS.labels(category).set(connections)


# ---- read at scrape time ---------------------------------------------------------------------------------
DUE_STATUSES = (NotificationStatus.PENDING, NotificationStatus.RETRYING)


@dataclass
class DatabaseSnapshot:
    races: dict[str, int] = field(default_factory=dict)  # status -> races
    outbox_depth: dict[str, int] = field(default_factory=dict)  # kind -> due rows
    outbox_oldest: dict[str, datetime] = field(default_factory=dict)  # kind -> created_at of the oldest due row
    processes: int = 0


async def read_database_snapshot(app: Application, now: datetime) -> DatabaseSnapshot:
    """Everything the metrics need from the database, in one statement."""
    seen_since = now - app.heartbeats.liveness_window
    null_time = literal(None, UTCDateTime())
    statement = union_all(
        select(
            literal("outbox").label("part"),
            type_coerce(Notification.kind, String()).label("label"),
            func.count().label("n"),
            func.min(Notification.created_at).label("oldest"),
        )
        .where(Notification.status.in_(DUE_STATUSES))
        .group_by(Notification.kind),
        select(literal("races"), type_coerce(LiveRace.status, String()), func.count(), null_time).group_by(
            LiveRace.status
        ),
        select(literal("processes"), literal(""), func.count(), null_time).where(
            ProcessHeartbeat.seen_at >= seen_since
        ),
    )
    snapshot = DatabaseSnapshot()
    async with app.db.read() as session:
        for part, label, count, oldest in (await session.execute(statement)).all():
            if part == "outbox":
                snapshot.outbox_depth[label] = count
                if oldest is not None:
                    snapshot.outbox_oldest[label] = oldest
            elif part == "races":
                snapshot.races[label] = count
            else:
                snapshot.processes = count
    return snapshot


class ScrapeCollector(Collector):
    """The gauges computed at scrape time: from the database snapshot the handler read just before, and the lag of
    this process's jobs."""

    def __init__(self, app: Application) -> None:
        self.app = app
        self.snapshot = DatabaseSnapshot()
        self.now = app.clock()

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        now, snapshot = self.now, self.snapshot
        races = GaugeMetricFamily("startline_races", "Live races by status (every guild)", labels=["status"])
        for status, count in sorted(snapshot.races.items()):
            races.add_metric([status], count)
        yield races
        depth = GaugeMetricFamily("startline_outbox_depth", "Outbox rows due or retrying, by kind", labels=["kind"])
        oldest = GaugeMetricFamily(
            "startline_outbox_oldest_age_seconds", "Age of the oldest due outbox row, by kind", labels=["kind"]
        )
        for kind in ("dm", "channel"):
            depth.add_metric([kind], snapshot.outbox_depth.get(kind, 0))
            created = snapshot.outbox_oldest.get(kind)
            oldest.add_metric([kind], max(0.0, (now - created).total_seconds()) if created else 0.0)
        yield depth
        yield oldest
        yield GaugeMetricFamily(
            "startline_processes",
            "Startline processes whose heartbeat the database saw lately",
            value=snapshot.processes,
        )
        since = GaugeMetricFamily(
            "startline_job_seconds_since_success",
            "Seconds since this process's job last ran without error",
            labels=["job"],
        )
        lag = GaugeMetricFamily(
            "startline_job_lag_seconds",
            "How far a job of this process is behind: seconds since its last successful run beyond its interval",
            labels=["job"],
        )
        interval = GaugeMetricFamily("startline_job_interval_seconds", "A job's interval", labels=["job"])
        for name, status in sorted(self.app.jobs.status.items()):
            reference = status.last_success_at or self.app.started_at or now
            elapsed = max(0.0, (now - reference).total_seconds())
            since.add_metric([name], elapsed)
            lag.add_metric([name], max(0.0, elapsed - status.interval_seconds))
            interval.add_metric([name], status.interval_seconds)
        yield since
        yield lag
        yield interval
        info = GaugeMetricFamily("startline_build_info", "The running version", labels=["version"])
        info.add_metric([self.app.version], 1)
        yield info


class MetricsServer:
    """`GET /metrics` on `metrics.host`:`metrics.port`, in the process's event loop."""

    def __init__(self, app: Application) -> None:
        self.app = app
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
        token = self.app.settings.metrics.token
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
        settings = self.app.settings.metrics
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
