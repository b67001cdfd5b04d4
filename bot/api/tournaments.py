"""Tournaments, their pools and their seeds (permalinks)."""

from __future__ import annotations

from bot.api.pages import items_page, page_of
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import (
    ItemsPage,
    PageQuery,
    PermalinkBatch,
    PermalinkCreate,
    PermalinkList,
    PermalinkOut,
    PermalinkUpdate,
    PoolCreate,
    PoolOut,
    PoolUpdate,
    TournamentCreate,
    TournamentOut,
    TournamentQuery,
    TournamentUpdate,
)
from bot.services.seed_import import SeedBatch, SeedLine
from db.models import Permalink, TokenScope

READ, MANAGE = TokenScope.READ, TokenScope.MANAGE
TOURNAMENTS = "/api/v1/tournaments"
POOLS = TOURNAMENTS + "/{tid}/pools"
PERMALINKS = POOLS + "/{pid}/permalinks"

routes = RouteTable()
tournament_route = routes.route


def permalink_out(permalink: Permalink, *, can_manage: bool) -> PermalinkOut:
    """The URL of a seed not yet raced in an opened room is for moderators only: it would spoil a live race."""
    out = PermalinkOut.model_validate(permalink)
    if not can_manage and not permalink.used_in_live_race:
        out.url = None
    return out


# ---- tournaments ----------------------------------------------------------------------------------------


@tournament_route(
    "GET",
    TOURNAMENTS,
    summary="List tournaments",
    tag="tournaments",
    scope=READ,
    query=TournamentQuery,
    response=ItemsPage[TournamentOut],
)
async def list_tournaments(call: ApiCall) -> ItemsPage[TournamentOut]:
    q: TournamentQuery = call.query
    page = await call.services.tournaments.list_tournaments(
        call.guild_id, active=q.active, search=q.search, limit=q.limit, cursor=q.cursor
    )
    return items_page(ItemsPage[TournamentOut], page, TournamentOut.model_validate)


@tournament_route(
    "POST",
    TOURNAMENTS,
    summary="Create a tournament",
    tag="tournaments",
    scope=MANAGE,
    body=TournamentCreate,
    response=TournamentOut,
    status=201,
    idempotent=True,
    errors=(409,),
)
async def create_tournament(call: ApiCall) -> Reply:
    fields = call.body.model_dump(exclude_unset=True)
    tournament = await call.services.tournaments.create_tournament(call.guild_id, call.actor, **fields)
    return Reply(TournamentOut.model_validate(tournament), 201, f"{TOURNAMENTS}/{tournament.id}")


@tournament_route(
    "GET",
    TOURNAMENTS + "/{tid}",
    summary="Get a tournament",
    tag="tournaments",
    scope=READ,
    response=TournamentOut,
)
async def get_tournament(call: ApiCall) -> TournamentOut:
    tournament = await call.services.tournaments.get_tournament(call.guild_id, call.path["tid"])
    return TournamentOut.model_validate(tournament)


@tournament_route(
    "PATCH",
    TOURNAMENTS + "/{tid}",
    summary="Change a tournament",
    tag="tournaments",
    scope=MANAGE,
    body=TournamentUpdate,
    response=TournamentOut,
    errors=(409,),
    description="Only the fields given change. Setting `racetime_goal` clears `custom_goal` and the reverse.",
)
async def update_tournament(call: ApiCall) -> TournamentOut:
    changes = call.body.model_dump(exclude_unset=True)
    tournament = await call.services.tournaments.update_tournament(
        call.guild_id, call.path["tid"], call.actor, **changes
    )
    return TournamentOut.model_validate(tournament)


@tournament_route(
    "DELETE",
    TOURNAMENTS + "/{tid}",
    summary="Delete a tournament",
    tag="tournaments",
    scope=MANAGE,
    response=None,
    status=204,
    errors=(409,),
    description="Refused (409) once it has runs or live races that opened a room; deactivate it instead.",
)
async def delete_tournament(call: ApiCall) -> None:
    await call.services.tournaments.delete_tournament(call.guild_id, call.path["tid"], call.actor)


# ---- pools ----------------------------------------------------------------------------------------------


@tournament_route(
    "GET",
    POOLS,
    summary="List the pools of a tournament",
    tag="pools",
    scope=READ,
    query=PageQuery,
    response=ItemsPage[PoolOut],
)
async def list_pools(call: ApiCall) -> ItemsPage[PoolOut]:
    pools = await call.services.tournaments.list_pools(call.guild_id, call.path["tid"])
    return items_page(ItemsPage[PoolOut], page_of(pools, call.query, lambda p: p.id), PoolOut.model_validate)


@tournament_route(
    "POST",
    POOLS,
    summary="Add a pool",
    tag="pools",
    scope=MANAGE,
    body=PoolCreate,
    response=PoolOut,
    status=201,
    idempotent=True,
    errors=(409,),
)
async def create_pool(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    pool = await call.services.tournaments.add_pool(call.guild_id, tid, call.actor, **call.body.model_dump())
    return Reply(PoolOut.model_validate(pool), 201, f"{TOURNAMENTS}/{tid}/pools/{pool.id}")


@tournament_route("GET", POOLS + "/{pid}", summary="Get a pool", tag="pools", scope=READ, response=PoolOut)
async def get_pool(call: ApiCall) -> PoolOut:
    pool = await call.services.tournaments.get_pool(call.guild_id, call.path["tid"], call.path["pid"])
    return PoolOut.model_validate(pool)


@tournament_route(
    "PATCH",
    POOLS + "/{pid}",
    summary="Rename or describe a pool",
    tag="pools",
    scope=MANAGE,
    body=PoolUpdate,
    response=PoolOut,
    errors=(409,),
)
async def update_pool(call: ApiCall) -> PoolOut:
    pool = await call.services.tournaments.update_pool(
        call.guild_id, call.path["tid"], call.path["pid"], call.actor, **call.body.model_dump(exclude_unset=True)
    )
    return PoolOut.model_validate(pool)


@tournament_route(
    "DELETE",
    POOLS + "/{pid}",
    summary="Remove a pool",
    tag="pools",
    scope=MANAGE,
    response=None,
    status=204,
    errors=(409,),
    description="Refused (409) while the pool has recorded runs or live races.",
)
async def delete_pool(call: ApiCall) -> None:
    await call.services.tournaments.remove_pool(call.guild_id, call.path["tid"], call.path["pid"], call.actor)


# ---- permalinks (seeds) ---------------------------------------------------------------------------------


@tournament_route(
    "GET",
    PERMALINKS,
    summary="List the seeds of a pool",
    tag="permalinks",
    scope=READ,
    query=PageQuery,
    response=ItemsPage[PermalinkOut],
    description="Read tokens see `url` only for seeds already raced in an opened room.",
)
async def list_permalinks(call: ApiCall) -> ItemsPage[PermalinkOut]:
    seeds = await call.services.tournaments.list_permalinks(call.guild_id, call.path["tid"], call.path["pid"])
    return items_page(
        ItemsPage[PermalinkOut],
        page_of(seeds, call.query, lambda p: p.id),
        lambda seed: permalink_out(seed, can_manage=call.can_manage),
    )


@tournament_route(
    "POST",
    PERMALINKS,
    summary="Add a seed to a pool",
    tag="permalinks",
    scope=MANAGE,
    body=PermalinkCreate,
    response=PermalinkOut,
    status=201,
    idempotent=True,
    errors=(409,),
)
async def create_permalink(call: ApiCall) -> Reply:
    tid, pid = call.path["tid"], call.path["pid"]
    seed = await call.services.tournaments.add_permalink(call.guild_id, tid, pid, call.actor, **call.body.model_dump())
    location = f"{TOURNAMENTS}/{tid}/pools/{pid}/permalinks/{seed.id}"
    return Reply(permalink_out(seed, can_manage=True), 201, location)


@tournament_route(
    "POST",
    PERMALINKS + "/batch",
    summary="Add many seeds to a pool, all or none",
    tag="permalinks",
    scope=MANAGE,
    body=PermalinkBatch,
    response=PermalinkList,
    status=201,
    idempotent=True,
    description=(
        "Every seed is checked first (URL, notes, already in the pool, twice in the list); one problem refuses the "
        "whole list with 422, and `details.errors` names each bad seed by its position in the list (`line`, from "
        "1), its `field` and a `message`."
    ),
)
async def create_permalinks(call: ApiCall) -> Reply:
    tid, pid = call.path["tid"], call.path["pid"]
    batch = SeedBatch([SeedLine(n, item.url, item.notes) for n, item in enumerate(call.body.permalinks, start=1)])
    seeds = await call.services.tournaments.import_permalinks(
        call.guild_id, tid, call.actor, batch, default_pool_id=pid
    )
    return Reply(PermalinkList(items=[permalink_out(seed, can_manage=True) for seed in seeds]), 201)


@tournament_route(
    "GET",
    PERMALINKS + "/{plid}",
    summary="Get a seed",
    tag="permalinks",
    scope=READ,
    response=PermalinkOut,
)
async def get_permalink(call: ApiCall) -> PermalinkOut:
    seed = await call.services.tournaments.get_permalink(
        call.guild_id, call.path["tid"], call.path["pid"], call.path["plid"]
    )
    return permalink_out(seed, can_manage=call.can_manage)


@tournament_route(
    "PATCH",
    PERMALINKS + "/{plid}",
    summary="Change a seed",
    tag="permalinks",
    scope=MANAGE,
    body=PermalinkUpdate,
    response=PermalinkOut,
    errors=(409,),
    description="The URL of a seed that has been raced can no longer change (409).",
)
async def update_permalink(call: ApiCall) -> PermalinkOut:
    seed = await call.services.tournaments.update_permalink(
        call.guild_id,
        call.path["tid"],
        call.path["pid"],
        call.path["plid"],
        call.actor,
        **call.body.model_dump(exclude_unset=True),
    )
    return permalink_out(seed, can_manage=True)


@tournament_route(
    "DELETE",
    PERMALINKS + "/{plid}",
    summary="Remove a seed",
    tag="permalinks",
    scope=MANAGE,
    response=None,
    status=204,
    errors=(409,),
)
async def delete_permalink(call: ApiCall) -> None:
    await call.services.tournaments.remove_permalink(
        call.guild_id, call.path["tid"], call.path["pid"], call.path["plid"], call.actor
    )
