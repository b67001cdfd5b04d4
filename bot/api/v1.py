"""`/api/v1`: every resource module's routes, and the OpenAPI document made from them."""

from __future__ import annotations

import json

from aiohttp import web

from bot.api import (
    audit,
    calendar,
    health,
    live_races,
    players,
    room_profiles,
    runs,
    seasons,
    settings,
    status,
    tournaments,
)
from bot.api.registry import APP_KEY, ApiCall, Route, RouteTable, add_routes, openapi_document

OPENAPI_PATH = "/api/v1/openapi.json"
OPENAPI_KEY = web.AppKey("startline_openapi", bytes)

document_routes = RouteTable()


@document_routes.route(
    "GET",
    OPENAPI_PATH,
    summary="This OpenAPI 3.1 document",
    tag="health",
    scope=None,
    response=None,
)
async def openapi_json(call: ApiCall) -> web.Response:
    return web.Response(body=call.request.app[OPENAPI_KEY], content_type="application/json")


ROUTE_TABLES: tuple[RouteTable, ...] = (
    health.routes,
    status.routes,
    document_routes,
    tournaments.routes,
    room_profiles.routes,
    live_races.routes,
    players.routes,
    runs.routes,
    audit.routes,
    calendar.routes,
    seasons.routes,
    settings.routes,
)


def all_routes() -> list[Route]:
    return [route for table in ROUTE_TABLES for route in table.routes]


def setup(web_app: web.Application) -> None:
    routes = all_routes()
    add_routes(web_app, routes)
    app = web_app[APP_KEY]
    document = openapi_document(routes, version=app.version, server_url=app.settings.api.public_url)
    web_app[OPENAPI_KEY] = json.dumps(document).encode()
