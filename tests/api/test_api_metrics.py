"""GET /metrics: off by default, its own address and port, a token when one is set, and the names and labels an
operator's alert rules use (route and endpoint templates, never raw ids or slugs)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import event

from bot.api.metrics_server import MetricsServer
from bot.app import Application
from bot.settings import load_settings
from tests.api.conftest import Api, start_api
from tests.conftest import make_settings

TOKEN = "scrape-token-0123456789"


@pytest_asyncio.fixture
async def metered(settings, tmp_path) -> AsyncIterator[tuple[Api, MetricsServer]]:
    metered_settings = make_settings(tmp_path, metrics={"enabled": True, "port": 0, "token": TOKEN})
    api = await start_api(metered_settings)
    server = api.app.metrics
    assert isinstance(server, MetricsServer)
    await server.start()
    try:
        yield api, server
    finally:
        await server.stop()
        await api.close()


async def scrape(server: MetricsServer, token: str | None = TOKEN) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{server.port}/metrics", headers=headers)


def families(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_metrics_are_off_by_default(settings):
    assert load_settings().metrics.enabled is False
    assert Application(settings, run_migrations=False, start_jobs=False).metrics is None


async def test_the_api_server_does_not_serve_metrics(api):
    status, _body, _response = await api.call("GET", "/metrics", token=None)
    assert status == 404


async def test_a_scrape_shows_the_names_and_labels(metered):
    api, server = metered
    tid = api.mine.tid
    assert (await api.call("GET", f"/api/v1/tournaments/{tid}", token="read"))[0] == 200
    assert (await api.call("GET", "/api/v1/tournaments/999999", token="read"))[0] == 404
    await api.app.racetime.category_data("alttpr")  # a token fetch and a listing
    api.app.jobs.add("room_opener", lambda: _noop(), seconds=20)
    await api.app.jobs.run_once("room_opener")
    response = await scrape(server)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    got = families(response.text)
    for name in (
        "startline_job_runs",
        "startline_job_duration_seconds",
        "startline_job_lag_seconds",
        "startline_job_seconds_since_success",
        "startline_job_interval_seconds",
        "startline_races",
        "startline_outbox_depth",
        "startline_outbox_oldest_age_seconds",
        "startline_processes",
        "startline_notifications",
        "startline_racetime_requests",
        "startline_racetime_token_refreshes",
        "startline_racetime_websocket_connections",
        "startline_api_requests",
        "startline_api_request_duration_seconds",
        "startline_build_info",
        "process_resident_memory_bytes",
    ):
        assert name in got, name
    api_labels = {(s.labels["route"], s.labels["method"], s.labels["status"]) for s in got["startline_api_requests"]}
    assert ("/api/v1/tournaments/{tid}", "GET", "200") in api_labels
    assert ("/api/v1/tournaments/{tid}", "GET", "404") in api_labels
    routes = {route for route, _, _ in api_labels}
    assert f"/api/v1/tournaments/{tid}" not in routes and "/api/v1/tournaments/999999" not in routes, "templates"
    assert any(s.name.endswith("_bucket") for s in got["startline_api_request_duration_seconds"])
    racetime = {(s.labels["endpoint"], s.labels["status"]) for s in got["startline_racetime_requests"]}
    assert {("token", "200"), ("category", "200")} <= racetime
    assert ("default", "success") in {
        (s.labels["credentials"], s.labels["outcome"]) for s in got["startline_racetime_token_refreshes"]
    }
    assert {"success"} <= {s.labels["outcome"] for s in got["startline_job_runs"] if s.labels["job"] == "room_opener"}
    assert {s.labels["job"] for s in got["startline_job_lag_seconds"]} == {"room_opener"}
    races = {s.labels["status"]: s.value for s in got["startline_races"]}
    assert races == {"scheduled": 2.0}, "both guilds' scheduled races"
    depth = {s.labels["kind"]: s.value for s in got["startline_outbox_depth"]}
    assert set(depth) == {"dm", "channel"}


async def _noop() -> None:
    return None


async def test_the_database_gauges_cost_one_query_per_scrape(metered):
    api, server = metered
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(api.app.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await scrape(server)).status_code == 200
    finally:
        event.remove(api.app.db.engine.sync_engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, statements


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", TOKEN[:-1], TOKEN.upper()])
async def test_a_scrape_without_the_right_token_is_refused(metered, token):
    _api, server = metered
    response = await scrape(server, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert "startline_" not in response.text


async def test_it_binds_only_where_configured(metered):
    _api, server = metered
    assert server.runner is not None
    addresses = {site.name for site in server.runner.sites}
    assert addresses == {f"http://127.0.0.1:{server.port}"}
    assert server.port != _api.client.server.port, "its own port, not the API's"
