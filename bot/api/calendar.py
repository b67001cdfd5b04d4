"""The iCal feed of upcoming live races, and the manage routes that read or rotate its URL."""

from __future__ import annotations

from aiohttp import web

from bot.api.registry import ApiCall, RouteTable
from bot.api.schemas import CalendarOut, CalendarQuery
from bot.services.calendar import FEED_PATH

routes = RouteTable(tag="calendar")


@routes.route(
    "GET",
    FEED_PATH,
    summary="iCal feed of the guild's upcoming live races",
    scope=None,
    query=CalendarQuery,
    response=None,
    media_type="text/calendar",
    errors=(404,),
    description="No bearer token: the `key` in the URL (from GET /api/v1/calendar) authorises it.",
)
async def live_races_ics(call: ApiCall) -> web.Response:
    body = await call.services.calendar.render_feed(call.query.key)
    return web.Response(body=body, content_type="text/calendar", charset="utf-8")


@routes.manage("GET", "/api/v1/calendar", "The calendar feed URL", response=CalendarOut)
async def get_calendar(call: ApiCall) -> CalendarOut:
    return CalendarOut(url=await call.services.calendar.feed_url(call.guild_id, call.actor))


@routes.manage(
    "POST",
    "/api/v1/calendar/rotate",
    "Issue a new calendar feed URL",
    response=CalendarOut,
    description="Every subscription to the old URL stops working.",
)
async def rotate_calendar(call: ApiCall) -> CalendarOut:
    return CalendarOut(url=await call.services.calendar.feed_url(call.guild_id, call.actor, rotate=True))
