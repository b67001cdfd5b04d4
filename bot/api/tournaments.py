"""Tournaments, their pools and their seeds."""

from __future__ import annotations

from bot.api.pages import items_page, page_of
from bot.api.registry import Alias, ApiCall, Reply, RouteTable
from bot.api.schemas import (
    ItemsPage,
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
from db.models import Seed

TOURNAMENTS = "/api/v1/tournaments"
POOLS = TOURNAMENTS + "/{tid}/pools"
SEEDS = POOLS + "/{pid}/seeds"
OLD_SEEDS = POOLS + "/{pid}/permalinks"  # the old name, kept as an alias of each seed route for existing scripts

routes = RouteTable()
tournament_routes = routes.section("tournaments")
pool_routes = routes.section("pools")
seed_routes = routes.section("seeds")


def seed_out(seed: Seed, *, can_manage: bool) -> SeedOut:
    """The URL of a seed not yet raced in an opened room is for moderators only: it would spoil a live race."""
    out = SeedOut.model_validate(seed)
    if not can_manage and not seed.used_in_live_race:
        out.url = None
    return out


# ---- tournaments ----------------------------------------------------------------------------------------


@tournament_routes.page(TOURNAMENTS, "List tournaments", TournamentOut, TournamentQuery)
async def list_tournaments(call: ApiCall) -> ItemsPage[TournamentOut]:
    q: TournamentQuery = call.query
    page = await call.services.tournaments.list_tournaments(
        call.guild_id, active=q.active, search=q.search, limit=q.limit, cursor=q.cursor
    )
    return items_page(ItemsPage[TournamentOut], page, TournamentOut.model_validate)


@tournament_routes.create(TOURNAMENTS, "Create a tournament", TournamentCreate, TournamentOut)
async def create_tournament(call: ApiCall) -> Reply:
    fields = call.body.model_dump(exclude_unset=True)
    tournament = await call.services.tournaments.create_tournament(call.guild_id, call.actor, **fields)
    return Reply(TournamentOut.model_validate(tournament), 201, f"{TOURNAMENTS}/{tournament.id}")


@tournament_routes.read(TOURNAMENTS + "/{tid}", "Get a tournament", TournamentOut)
async def get_tournament(call: ApiCall) -> TournamentOut:
    tournament = await call.services.tournaments.get_tournament(call.guild_id, call.path["tid"])
    return TournamentOut.model_validate(tournament)


@tournament_routes.update(
    TOURNAMENTS + "/{tid}",
    "Change a tournament",
    TournamentUpdate,
    TournamentOut,
    description="Only the fields given change. Setting `racetime_goal` clears `custom_goal` and the reverse.",
)
async def update_tournament(call: ApiCall) -> TournamentOut:
    changes = call.body.model_dump(exclude_unset=True)
    tournament = await call.services.tournaments.update_tournament(
        call.guild_id, call.path["tid"], call.actor, **changes
    )
    return TournamentOut.model_validate(tournament)


@tournament_routes.delete(
    TOURNAMENTS + "/{tid}",
    "Delete a tournament",
    errors=(409,),
    description="Refused (409) once it has runs or live races that opened a room; deactivate it instead.",
)
async def delete_tournament(call: ApiCall) -> None:
    await call.services.tournaments.delete_tournament(call.guild_id, call.path["tid"], call.actor)


# ---- pools ----------------------------------------------------------------------------------------------


@pool_routes.page(POOLS, "List the pools of a tournament", PoolOut)
async def list_pools(call: ApiCall) -> ItemsPage[PoolOut]:
    pools = await call.services.tournaments.list_pools(call.guild_id, call.path["tid"])
    return items_page(ItemsPage[PoolOut], page_of(pools, call.query, lambda p: p.id), PoolOut.model_validate)


@pool_routes.create(POOLS, "Add a pool", PoolCreate, PoolOut)
async def create_pool(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    pool = await call.services.tournaments.add_pool(call.guild_id, tid, call.actor, **call.body.model_dump())
    return Reply(PoolOut.model_validate(pool), 201, f"{TOURNAMENTS}/{tid}/pools/{pool.id}")


@pool_routes.read(POOLS + "/{pid}", "Get a pool", PoolOut)
async def get_pool(call: ApiCall) -> PoolOut:
    pool = await call.services.tournaments.get_pool(call.guild_id, call.path["tid"], call.path["pid"])
    return PoolOut.model_validate(pool)


@pool_routes.update(POOLS + "/{pid}", "Rename or describe a pool", PoolUpdate, PoolOut)
async def update_pool(call: ApiCall) -> PoolOut:
    pool = await call.services.tournaments.update_pool(
        call.guild_id, call.path["tid"], call.path["pid"], call.actor, **call.body.model_dump(exclude_unset=True)
    )
    return PoolOut.model_validate(pool)


@pool_routes.delete(
    POOLS + "/{pid}",
    "Remove a pool",
    errors=(409,),
    description="Refused (409) while the pool has recorded runs or live races.",
)
async def delete_pool(call: ApiCall) -> None:
    await call.services.tournaments.remove_pool(call.guild_id, call.path["tid"], call.path["pid"], call.actor)


# ---- seeds ------------------------------------------------------------------------------------------


@seed_routes.page(
    SEEDS,
    "List the seeds of a pool",
    SeedOut,
    alias=Alias(OLD_SEEDS, "list_permalinks"),
    description="Read tokens see `url` only for seeds already raced in an opened room.",
)
async def list_seeds(call: ApiCall) -> ItemsPage[SeedOut]:
    seeds = await call.services.tournaments.list_seeds(call.guild_id, call.path["tid"], call.path["pid"])
    return items_page(
        ItemsPage[SeedOut],
        page_of(seeds, call.query, lambda p: p.id),
        lambda seed: seed_out(seed, can_manage=call.can_manage),
    )


@seed_routes.create(SEEDS, "Add a seed to a pool", SeedCreate, SeedOut, alias=Alias(OLD_SEEDS, "create_permalink"))
async def create_seed(call: ApiCall) -> Reply:
    tid, pid = call.path["tid"], call.path["pid"]
    seed = await call.services.tournaments.add_seed(call.guild_id, tid, pid, call.actor, **call.body.model_dump())
    location = f"{TOURNAMENTS}/{tid}/pools/{pid}/seeds/{seed.id}"
    return Reply(seed_out(seed, can_manage=True), 201, location)


@seed_routes.manage(
    "POST",
    SEEDS + "/batch",
    "Add many seeds to a pool, all or none",
    alias=Alias(OLD_SEEDS + "/batch", "create_permalinks"),
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


@seed_routes.read(SEEDS + "/{sid}", "Get a seed", SeedOut, alias=Alias(OLD_SEEDS + "/{sid}", "get_permalink"))
async def get_seed(call: ApiCall) -> SeedOut:
    seed = await call.services.tournaments.get_seed(call.guild_id, call.path["tid"], call.path["pid"], call.path["sid"])
    return seed_out(seed, can_manage=call.can_manage)


@seed_routes.update(
    SEEDS + "/{sid}",
    "Change a seed",
    SeedUpdate,
    SeedOut,
    alias=Alias(OLD_SEEDS + "/{sid}", "update_permalink"),
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


@seed_routes.delete(
    SEEDS + "/{sid}", "Remove a seed", alias=Alias(OLD_SEEDS + "/{sid}", "delete_permalink"), errors=(409,)
)
async def delete_seed(call: ApiCall) -> None:
    await call.services.tournaments.remove_seed(
        call.guild_id, call.path["tid"], call.path["pid"], call.path["sid"], call.actor
    )
