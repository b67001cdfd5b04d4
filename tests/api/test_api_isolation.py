"""Guild isolation, for every route of the registry: a new route cannot escape it.

A manage token of guild A, given any id of guild B (in the path or in the body), gets 404 and changes nothing
in guild B; lists and documents never show guild B's objects. Every route must fall into one of the checked
kinds, or be named in `NO_GUILD_DATA` with the reason.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from bot.api import schemas
from bot.api.registry import Route
from bot.api.v1 import all_routes
from tests.api.conftest import FOREIGN_MARK, OTHER_PLAYER_RACETIME, Api, World
from tests.conftest import OTHER_GUILD


def example_body(model: type[BaseModel] | None, world: World) -> dict[str, Any] | None:
    """A valid body for each request model, using `world`'s ids wherever the body names an object."""
    if model is None:
        return None
    later = (datetime.now(UTC) + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    examples: dict[type[BaseModel], dict[str, Any]] = {
        schemas.TournamentCreate: {"name": "isolation check", "room_profile_id": world.profile_id},
        schemas.TournamentUpdate: {"description": "changed", "room_profile_id": world.profile_id},
        schemas.PoolCreate: {"name": "isolation pool"},
        schemas.PoolUpdate: {"description": "changed"},
        schemas.PermalinkCreate: {"url": "https://seeds.example/isolation"},
        schemas.PermalinkUpdate: {"notes": "changed"},
        schemas.RoomProfileCreate: {"name": "isolation profile", "start_delay": 30},
        schemas.RoomProfileUpdate: {"start_delay": 25},
        schemas.LiveRaceCreate: {"pool_id": world.pid, "scheduled_at": later, "permalink_id": world.plid},
        schemas.LiveRaceUpdate: {"title": "changed", "pool_id": world.pid},
        schemas.CancelBody: {"reason": "isolation check"},
        schemas.RecordBody: {"force": True},
        schemas.PlayerUpsert: {"display_name": "isolation check"},
        schemas.RunImport: {
            "discord_user_id": str(world.discord_user_id),
            "permalink_id": world.plid,
            "status": "forfeit",
        },
    }
    assert model in examples, f"add an example body for {model.__name__} to this test"
    return examples[model]


# Routes whose answer holds no guild data, or whose ids are not guild-scoped, with the reason.
NO_GUILD_DATA = {
    ("GET", "/api/v1/health"): "no guild data",
    ("GET", "/api/v1/openapi.json"): "no guild data",
    ("GET", "/api/v1/live-races.ics"): "the key picks the guild; checked in test_api_calendar",
    ("POST", "/api/v1/room-profiles"): "names no other object; the new profile belongs to the caller's guild",
    ("GET", "/api/v1/calendar"): "the caller's own feed URL; checked below and in test_api_calendar",
    ("POST", "/api/v1/calendar/rotate"): "acts on the caller's guild only; checked below",
    ("PUT", "/api/v1/players/{discord_user_id}"): "players are global: PUT adds one to the caller's guild",
}


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


async def foreign_footprint(api: Api) -> tuple[list[int], int, int]:
    """Guild B's audit trail, its race as guild B sees them, and the rooms on RaceTime.gg: any change by guild A's
    token shows here."""
    page = await api.app.services.audit.list(OTHER_GUILD, limit=200)
    race = await api.app.services.live_races.get(OTHER_GUILD, api.foreign.rid)
    state = hash((race.race.status, race.race.title, race.race.updated_at))
    return [entry.id for entry in page.items], state, len(api.rt.requests)


@pytest.mark.parametrize("route", all_routes(), ids=route_id)
async def test_foreign_ids_are_not_found(api: Api, route: Route) -> None:
    before = await foreign_footprint(api)
    body = example_body(route.body, api.foreign)
    names_foreign_ids = route.path_params or (body and set(body) & {"pool_id", "permalink_id", "room_profile_id"})
    key = (route.method, route.path)
    if key in NO_GUILD_DATA:
        path = route.path.format(**{name: getattr(api.mine, name) for name in route.path_params})
        status, answer, _ = await api.call(route.method, path, json=example_body(route.body, api.mine))
        assert status < 500
    elif names_foreign_ids:
        path = route.path.format(**{name: getattr(api.foreign, name) for name in route.path_params})
        status, answer, _ = await api.call(route.method, path, json=body)
        assert status == 404, (route_id(route), answer)
        assert answer["error"]["code"] == "not_found"
    else:
        assert route.method == "GET", f"{route_id(route)}: add an isolation check, or list it in NO_GUILD_DATA"
        status, answer, _ = await api.call("GET", route.path)
        assert status == 200, answer
        assert answer["items"], "the list should show the caller's own objects"
        assert str(api.foreign.discord_user_id) not in str(answer)
    assert FOREIGN_MARK not in str(answer)
    assert await foreign_footprint(api) == before


def test_every_route_is_covered_by_an_example() -> None:
    """Each request model has an example body above, so the parametrized test can reach each handler."""
    world = World(1, 1, 1, 1, 1, 1, 1, 1)
    for route in all_routes():
        example_body(route.body, world)
    assert set(NO_GUILD_DATA) <= {(route.method, route.path) for route in all_routes()}


async def test_rotating_my_calendar_leaves_the_other_guild_feed_alone(api: Api) -> None:
    _, theirs, _ = await api.call("GET", "/api/v1/calendar", token="other")
    await api.call("POST", "/api/v1/calendar/rotate")
    _, still, _ = await api.call("GET", "/api/v1/calendar", token="other")
    assert still == theirs


async def test_a_foreign_only_player_is_not_found(api: Api) -> None:
    status, _, _ = await api.call("GET", f"/api/v1/players/{api.foreign.discord_user_id}")
    assert status == 404


async def test_results_never_name_a_player_of_another_guild(api: Api) -> None:
    """A RaceTime.gg user linked only in guild B who enters guild A's room is an unknown user in guild A."""
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    _, opened, _ = await api.call("POST", race + "/open")
    slug = opened["racetime"]["slug"]
    api.rt.add_entrant(slug, OTHER_PLAYER_RACETIME)
    api.rt.start(slug)
    api.rt.finish_entrant(slug, OTHER_PLAYER_RACETIME["id"], timedelta(hours=1))
    assert (await api.call("POST", race + "/record"))[0] == 200
    status, results, _ = await api.call("GET", race + "/results", token="read")
    assert status == 200
    [entrant] = results["entrants"]
    assert (entrant["discord_user_id"], entrant["display_name"], entrant["counted"]) == (None, None, False)
    assert entrant["reason"] == "Not linked to a player of this server"
    assert FOREIGN_MARK not in str(results) and str(api.foreign.discord_user_id) not in str(results)
