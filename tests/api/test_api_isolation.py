"""Guild isolation, for every route of the registry, with no exemption: a new route cannot escape it.

A manage token of guild A, given any id of guild B (in the path or in the body), gets 404 and changes nothing
in guild B; lists and documents never show guild B's objects. "Nothing in guild B" is checked on every row of
every table that guild B owns or sees (`guild_footprint`, generic over the models), players and rosters included.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import BaseModel
from sqlalchemy import Table, select

from bot.actors import Actor
from bot.api import schemas
from bot.api.registry import Route
from bot.api.v1 import all_routes
from db.models import Base
from db.session import Database
from tests.api.conftest import FOREIGN_MARK, NEWCOMER_RACETIME, OTHER_PLAYER_RACETIME, Api, World
from tests.conftest import GUILD, OTHER_GUILD


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
        schemas.SeedCreate: {"url": "https://seeds.example/isolation"},
        schemas.SeedUpdate: {"notes": "changed"},
        schemas.SeedBatchCreate: {"seeds": [{"url": "https://seeds.example/isolation-batch"}]},
        schemas.RoomProfileCreate: {"name": "isolation profile", "start_delay": 30},
        schemas.RoomProfileUpdate: {"start_delay": 25},
        schemas.LiveRaceCreate: {"pool_id": world.pid, "scheduled_at": later, "seed_id": world.sid},
        schemas.LiveRaceUpdate: {"title": "changed", "pool_id": world.pid},
        schemas.CancelBody: {"reason": "isolation check"},
        schemas.RemindersIn: {"offsets_minutes": [60, 10]},
        schemas.RecordBody: {"force": True},
        schemas.PlayerUpsert: {
            "display_name": "isolation check",
            "racetime_id": NEWCOMER_RACETIME["id"],
            "racetime_name": NEWCOMER_RACETIME["name"],
        },
        schemas.RunImport: {
            "discord_user_id": str(world.discord_user_id),
            "seed_id": world.sid,
            "status": "forfeit",
        },
        schemas.TemplateCreate: {
            "name": "isolation template",
            "pool_ids": [world.pid],
            "room_profile_id": world.profile_id,
        },
        schemas.TemplateUpdate: {"pool_ids": [world.pid], "room_profile_id": world.profile_id},
        schemas.TemplateRaceCreate: {"when": later, "seed_id": world.sid},
        schemas.SeriesCreate: {"name": "isolation series", "rrule": "FREQ=WEEKLY", "template_id": world.template_id},
        schemas.SeriesUpdate: {"template_id": world.template_id},
        schemas.SeriesSkip: {"date": later[:10]},
        schemas.SeriesMove: {"date": later[:10], "to": later},
        schemas.BatchCreate: {"races": [{"pool_id": world.pid, "scheduled_at": later, "seed_id": world.sid}]},
        schemas.PhaseCreate: {"name": "isolation phase", "pool_ids": [world.pid]},
        schemas.PhaseUpdate: {"pool_ids": [world.pid]},
        schemas.PhaseClose: {"players": [str(world.discord_user_id)]},
        schemas.SeasonCreate: {"name": "isolation season", "tournament_ids": [world.tid]},
        schemas.SeasonUpdate: {"tournament_ids": [world.tid]},
    }
    assert model in examples, f"add an example body for {model.__name__} to this test"
    return examples[model]


# A Discord user is no object of a guild: given guild B's player, this route answers for the caller's own roster
# (guild A's entry for that user, created or updated) and must still leave guild B's footprint alone.
OWN_ROSTER_STATUS = {("PUT", "/api/v1/players/{discord_user_id}"): 201}


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


def _foreign_keys(table: Table) -> list[tuple[str, str, str]]:
    return [(fk.parent.name, fk.column.table.name, fk.column.name) for fk in table.foreign_keys]


async def guild_footprint(db: Database, guild_id: int) -> dict[str, list[str]]:
    """Every row the guild owns or sees, table by table, for EVERY table of the models (a new table is covered
    without touching this test):

    - owned: rows with the guild's `guild_id`, and rows below them through foreign keys (pools of its tournaments,
      seeds of its pools, runs of its tournaments, entrants of its races, …);
    - seen: rows those refer to, transitively (the players of its roster, runs and notifications), and rows whose
      `guild_id` is NULL (they apply to every guild, like an all-guilds notification preference);
    - app-wide: every row of a table no guild row reaches (like `app_secrets`).
    """
    tables = list(Base.metadata.sorted_tables)
    async with db.read() as session:
        connection = await session.connection()
        rows = {
            table.name: [dict(row._mapping) for row in (await connection.execute(select(table))).all()]
            for table in tables
        }
    owned: dict[str, set[int]] = {table.name: set() for table in tables}
    seen: dict[str, set[int]] = {table.name: set() for table in tables}
    for table in tables:
        if "guild_id" in table.c:
            for index, row in enumerate(rows[table.name]):
                if row["guild_id"] == guild_id:
                    owned[table.name].add(index)
                elif row["guild_id"] is None:
                    seen[table.name].add(index)

    def values(marked: dict[str, set[int]], table: str, column: str) -> set:
        return {rows[table][index][column] for index in marked[table]}

    changed = True
    while changed:  # below what the guild owns (tables without a guild_id of their own)
        changed = False
        for table in tables:
            if "guild_id" in table.c:
                continue
            for column, parent, parent_column in _foreign_keys(table):
                parents = values(owned, parent, parent_column)
                for index, row in enumerate(rows[table.name]):
                    if index not in owned[table.name] and row[column] is not None and row[column] in parents:
                        owned[table.name].add(index)
                        changed = True
    changed = True
    while changed:  # what the guild's rows refer to
        changed = False
        for table in tables:
            for column, parent, parent_column in _foreign_keys(table):
                referred = values(owned, table.name, column) | values(seen, table.name, column)
                for index, row in enumerate(rows[parent]):
                    if index not in owned[parent] | seen[parent] and row[parent_column] in referred:
                        seen[parent].add(index)
                        changed = True
    reachable = {name for name in owned if owned[name] or seen[name]} | {
        table.name for table in tables if "guild_id" in table.c or _foreign_keys(table)
    }
    reachable |= {parent for table in tables for _, parent, _ in _foreign_keys(table)}
    footprint: dict[str, list[str]] = {}
    for table in tables:
        indexes = owned[table.name] | seen[table.name]
        if table.name not in reachable:
            indexes = set(range(len(rows[table.name])))
        footprint[table.name] = sorted(repr(sorted(rows[table.name][index].items())) for index in indexes)
    return footprint


async def foreign_footprint(api: Api) -> tuple[dict[str, list[str]], int]:
    """Every row of guild B (owned or seen, in every table) and the requests to RaceTime.gg: any change by guild
    A's token shows here."""
    return await guild_footprint(api.app.db, OTHER_GUILD), len(api.rt.requests)


async def own_calendar_key(api: Api) -> str:
    _, answer, _ = await api.call("GET", "/api/v1/calendar")
    return parse_qs(urlsplit(answer["url"]).query)["key"][0]


@pytest.mark.parametrize("route", all_routes(), ids=route_id)
async def test_foreign_ids_are_not_found_and_guild_b_is_untouched(api: Api, route: Route) -> None:
    """Every route, no exemption: called by guild A's manage token with guild B's ids wherever it takes ids (path
    and body), it answers 404 (or, for a Discord user, for A's own roster) and changes no row guild B owns or
    sees; a route that takes no id answers for guild A alone, and changes nothing of guild B either."""
    params = {"key": await own_calendar_key(api)} if route.query and "key" in route.query.model_fields else None
    before = await foreign_footprint(api)
    body = example_body(route.body, api.foreign)
    names_foreign_ids = route.path_params or (
        body and set(body) & {"pool_id", "seed_id", "room_profile_id", "discord_user_id", "tournament_ids"}
    )
    path = route.path.format(**{name: getattr(api.foreign, name) for name in route.path_params})
    status, answer, _ = await api.call(route.method, path, json=body, params=params)
    key = (route.method, route.path)
    if key in OWN_ROSTER_STATUS:
        assert status == OWN_ROSTER_STATUS[key], (route_id(route), answer)
    elif names_foreign_ids:
        assert status == 404, (route_id(route), answer)
        assert answer["error"]["code"] == "not_found"
    else:
        assert status < 400, (route_id(route), answer)
        if route.method == "GET" and isinstance(answer, dict) and "items" in answer:
            assert answer["items"], "the list should show the caller's own objects"
        assert str(api.foreign.discord_user_id) not in str(answer)
    assert FOREIGN_MARK not in str(answer)
    after = await foreign_footprint(api)
    assert after == before, [table for table in before[0] if before[0][table] != after[0][table]]


def test_every_route_is_covered_by_an_example() -> None:
    """Each request model has an example body above, so the parametrized test can reach each handler."""
    world = World(1, 1, 1, 1, 1, 1, 1, 1)
    for route in all_routes():
        example_body(route.body, world)
    assert set(OWN_ROSTER_STATUS) <= {(route.method, route.path) for route in all_routes()}


async def test_rotating_my_calendar_leaves_the_other_guild_feed_alone(api: Api) -> None:
    _, theirs, _ = await api.call("GET", "/api/v1/calendar", token="other")
    await api.call("POST", "/api/v1/calendar/rotate")
    _, still, _ = await api.call("GET", "/api/v1/calendar", token="other")
    assert still == theirs


async def test_a_personal_calendar_feed_shows_only_its_guilds_races(api: Api) -> None:
    """The feed route serves members' personal feeds too: a member of both guilds has one per guild, and each
    shows only that guild's races."""
    calendar = api.app.services.calendar
    user = 555_000_000_000_000_001  # a linked newcomer, in both guilds, who may race either guild's race
    for guild_id in (GUILD, OTHER_GUILD):  # each server links the account on its own roster
        await api.app.services.players.upsert(
            guild_id, user, Actor.system(), display_name="both", racetime_id=NEWCOMER_RACETIME["id"], racetime_name="n"
        )
    feeds = {}
    for guild_id in (GUILD, OTHER_GUILD):
        url = await calendar.personal_url(guild_id, user, Actor.system())
        response = await api.client.get(url.removeprefix(calendar.public_url))
        assert response.status == 200
        feeds[guild_id] = await response.text()
    assert "race mine" in feeds[GUILD] and FOREIGN_MARK not in feeds[GUILD]
    assert FOREIGN_MARK in feeds[OTHER_GUILD] and "race mine" not in feeds[OTHER_GUILD]
    assert "seeds.example" not in feeds[GUILD] + feeds[OTHER_GUILD]


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


async def test_a_guild_cannot_rename_or_relink_another_guilds_player(api: Api) -> None:
    """Regression (issue 11, item 8): guild A's PUT for a player of guild B renamed them everywhere and re-pointed
    their unverified RaceTime.gg link, so guild B's next results went to nobody. Now A changes its own roster
    entry only: B still shows its name and link, and B's entrant still becomes B's player."""
    theirs = api.foreign.discord_user_id
    status, mine, _ = await api.call(
        "PUT",
        f"/api/v1/players/{theirs}",
        json={"display_name": "renamed by A", "racetime_id": NEWCOMER_RACETIME["id"], "racetime_name": "newcomer"},
    )
    assert status == 201, mine
    assert (mine["display_name"], mine["racetime_id"], mine["racetime_verified"]) == (
        "renamed by A",
        NEWCOMER_RACETIME["id"],
        False,
    )
    _, seen_by_b, _ = await api.call("GET", f"/api/v1/players/{theirs}", token="other")
    assert (seen_by_b["display_name"], seen_by_b["racetime_id"], seen_by_b["racetime_name"]) == (
        f"player {FOREIGN_MARK}",
        OTHER_PLAYER_RACETIME["id"],
        OTHER_PLAYER_RACETIME["name"],
    )

    async def entrant_of_race(world: World, token: str, racetime_user: dict[str, Any]) -> dict[str, Any]:
        race = f"/api/v1/tournaments/{world.tid}/live-races/{world.rid}"
        _, opened, _ = await api.call("POST", race + "/open", token=token)
        slug = opened["racetime"]["slug"]
        api.rt.add_entrant(slug, racetime_user)
        api.rt.start(slug)
        api.rt.finish_entrant(slug, racetime_user["id"], timedelta(hours=1))
        assert (await api.call("POST", race + "/record", token=token))[0] == 200
        [entrant] = (await api.call("GET", race + "/results", token=token))[1]["entrants"]
        return entrant

    # B's race: the account B linked still becomes B's player, under B's name
    entrant = await entrant_of_race(api.foreign, "other", OTHER_PLAYER_RACETIME)
    assert (entrant["discord_user_id"], entrant["display_name"]) == (str(theirs), f"player {FOREIGN_MARK}")
    # A's race: the account A linked becomes the same Discord user, under A's name
    entrant = await entrant_of_race(api.mine, "manage", NEWCOMER_RACETIME)
    assert (entrant["discord_user_id"], entrant["display_name"]) == (str(theirs), "renamed by A")
