"""Tournaments, their pools and their seeds."""

from __future__ import annotations

from bot.api.pages import items_page, page_of
from bot.api.registry import Alias, ApiCall, Reply, RouteTable
from bot.api.schemas import (
    ItemsPage,
    PageQuery,
    PoolCreate,
    PoolOut,
    PoolUpdate,
    SeedBatchCreate,
    SeedCreate,
    SeedList,
    SeedOut,
    SeedUpdate,
    TournamentCreate,
    TournamentOut,
    TournamentQuery,
    TournamentUpdate,
)
from bot.services.seed_import import SeedBatch, SeedLine
from db.models import Seed, TokenScope

READ, MANAGE = TokenScope.READ, TokenScope.MANAGE
TOURNAMENTS = "/api/v1/tournaments"
POOLS = TOURNAMENTS + "/{tid}/pools"
SEEDS = POOLS + "/{pid}/seeds"
OLD_SEEDS = POOLS + "/{pid}/permalinks"  # the old name, kept as an alias of each seed route for existing scripts

routes = RouteTable()
tournament_route = routes.route


def seed_out(seed: Seed, *, can_manage: bool) -> SeedOut:
    """The URL of a seed not yet raced in an opened room is for moderators only: it would spoil a live race."""
    out = SeedOut.model_validate(seed)
    if not can_manage and not seed.used_in_live_race:
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


# ---- seeds ------------------------------------------------------------------------------------------


@tournament_route(
    "GET",
    SEEDS,
    alias=Alias(OLD_SEEDS, "list_permalinks"),
    summary="List the seeds of a pool",
    tag="seeds",
    scope=READ,
    query=PageQuery,
    response=ItemsPage[SeedOut],
    description="Read tokens see `url` only for seeds already raced in an opened room.",
)
async def list_seeds(call: ApiCall) -> ItemsPage[SeedOut]:
    seeds = await call.services.tournaments.list_seeds(call.guild_id, call.path["tid"], call.path["pid"])
    return items_page(
        ItemsPage[SeedOut],
        page_of(seeds, call.query, lambda p: p.id),
        lambda seed: seed_out(seed, can_manage=call.can_manage),
    )


@tournament_route(
    "POST",
    SEEDS,
    alias=Alias(OLD_SEEDS, "create_permalink"),
    summary="Add a seed to a pool",
    tag="seeds",
    scope=MANAGE,
    body=SeedCreate,
    response=SeedOut,
    status=201,
    idempotent=True,
    errors=(409,),
)
async def create_seed(call: ApiCall) -> Reply:
    tid, pid = call.path["tid"], call.path["pid"]
    seed = await call.services.tournaments.add_seed(call.guild_id, tid, pid, call.actor, **call.body.model_dump())
    location = f"{TOURNAMENTS}/{tid}/pools/{pid}/seeds/{seed.id}"
    return Reply(seed_out(seed, can_manage=True), 201, location)


@tournament_route(
    "POST",
    SEEDS + "/batch",
    alias=Alias(OLD_SEEDS + "/batch", "create_permalinks"),
    summary="Add many seeds to a pool, all or none",
    tag="seeds",
    scope=MANAGE,
    body=SeedBatchCreate,
    response=SeedList,
    status=201,
    idempotent=True,
    description=(
        "Every seed is checked first (URL, notes, already in the pool, twice in the list); one problem refuses the "
        "whole list with 422, and `details.errors` names each bad seed by its position in the list (`line`, from "
        "1), its `field` and a `message`."
    ),
)
async def create_seeds(call: ApiCall) -> Reply:
    tid, pid = call.path["tid"], call.path["pid"]
    batch = SeedBatch([SeedLine(n, item.url, item.notes) for n, item in enumerate(call.body.seeds, start=1)])
    seeds = await call.services.tournaments.import_seeds(call.guild_id, tid, call.actor, batch, default_pool_id=pid)
    return Reply(SeedList(items=[seed_out(seed, can_manage=True) for seed in seeds]), 201)


@tournament_route(
    "GET",
    SEEDS + "/{sid}",
    alias=Alias(OLD_SEEDS + "/{sid}", "get_permalink"),
    summary="Get a seed",
    tag="seeds",
    scope=READ,
    response=SeedOut,
)
async def get_seed(call: ApiCall) -> SeedOut:
    seed = await call.services.tournaments.get_seed(call.guild_id, call.path["tid"], call.path["pid"], call.path["sid"])
    return seed_out(seed, can_manage=call.can_manage)


@tournament_route(
    "PATCH",
    SEEDS + "/{sid}",
    alias=Alias(OLD_SEEDS + "/{sid}", "update_permalink"),
    summary="Change a seed",
    tag="seeds",
    scope=MANAGE,
    body=SeedUpdate,
    response=SeedOut,
    errors=(409,),
    description="The URL of a seed that has been raced can no longer change (409).",
)
async def update_seed(call: ApiCall) -> SeedOut:
    seed = await call.services.tournaments.update_seed(
        call.guild_id,
        call.path["tid"],
        call.path["pid"],
        call.path["sid"],
        call.actor,
        **call.body.model_dump(exclude_unset=True),
    )
    return seed_out(seed, can_manage=True)


@tournament_route(
    "DELETE",
    SEEDS + "/{sid}",
    alias=Alias(OLD_SEEDS + "/{sid}", "delete_permalink"),
    summary="Remove a seed",
    tag="seeds",
    scope=MANAGE,
    response=None,
    status=204,
    errors=(409,),
)
async def delete_seed(call: ApiCall) -> None:
    await call.services.tournaments.remove_seed(
        call.guild_id, call.path["tid"], call.path["pid"], call.path["sid"], call.actor
    )
