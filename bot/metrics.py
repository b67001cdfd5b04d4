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

`MetricsServer` (bot/api/metrics_server.py, the HTTP side) serves `GET /metrics` on its own address and port
(`[metrics]`), off unless `metrics.enabled`, and asks for `Authorization: Bearer <metrics.token>` when a token is set.
This module imports no HTTP server: the services and the dispatcher feed it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import String, func, literal, select, type_coerce, union_all

from db.models import LiveRace, Notification, NotificationStatus, ProcessHeartbeat
from db.session import Database
from db.types import UTCDateTime


class _JobState(Protocol):
    interval_seconds: float
    last_success_at: datetime | None


class _Jobs(Protocol):
    @property
    def status(self) -> Mapping[str, _JobState]: ...


class _Heartbeats(Protocol):
    @property
    def liveness_window(self) -> timedelta: ...


class MetricsSource(Protocol):
    """What a scrape reads of the process. `bot.app.Application` is the one; a protocol, so that this module (which
    the jobs, the services and the dispatcher import) never imports bot/app."""

    version: str
    db: Database
    clock: Callable[[], datetime]
    started_at: datetime | None
    jobs: _Jobs
    heartbeats: _Heartbeats


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


async def read_database_snapshot(app: MetricsSource, now: datetime) -> DatabaseSnapshot:
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

    def __init__(self, app: MetricsSource) -> None:
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
