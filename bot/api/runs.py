"""Runs of a tournament (list, import, reattempt) and its leaderboard."""

from __future__ import annotations

from bot.api.pages import items_page
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import (
    ItemsPage,
    LeaderboardEntryOut,
    LeaderboardOut,
    PlayerRef,
    PoolScores,
    Ref,
    RunImport,
    RunOut,
    RunQuery,
)
from bot.services.runs import RunView
from bot.services.scoring import Leaderboard

RUNS = "/api/v1/tournaments/{tid}/runs"
RUN = RUNS + "/{run_id}"

routes = RouteTable(tag="runs")


def run_out(view: RunView) -> RunOut:
    run = view.run
    return RunOut(
        id=run.id,
        tournament_id=run.tournament_id,
        pool=Ref(id=view.pool.id, name=view.pool.name),
        seed_id=view.seed.id,
        player=PlayerRef(discord_user_id=view.player.discord_user_id, display_name=view.player.display_name),
        live_race_id=run.live_race_id,
        status=run.status,
        start_time=run.start_time,
        end_time=run.end_time,
        elapsed_seconds=run.elapsed_seconds,
        place=run.place,
        reattempted=run.reattempted,
        score=run.score,
        source=run.source,
        created_at=run.created_at,
        updated_at=run.updated_at,
    )


def leaderboard_out(board: Leaderboard) -> LeaderboardOut:
    return LeaderboardOut(
        tournament_id=board.tournament_id,
        runs_per_pool=board.runs_per_pool,
        pools=[Ref(id=pool_id, name=name) for pool_id, name in board.pools],
        entries=[
            LeaderboardEntryOut(
                rank=entry.rank,
                discord_user_id=entry.discord_user_id,
                display_name=entry.display_name,
                score=entry.score,
                runs_counted=entry.runs_counted,
                pools=[PoolScores(pool_id=pool_id, scores=scores) for pool_id, scores in entry.pool_scores.items()],
            )
            for entry in board.entries
        ],
    )


@routes.page(RUNS, "List a tournament's runs", RunOut, RunQuery)
async def list_runs(call: ApiCall) -> ItemsPage[RunOut]:
    page = await call.services.runs.list_runs(call.guild_id, call.path["tid"], **call.query.model_dump())
    return items_page(ItemsPage[RunOut], page, run_out)


@routes.read(RUN, "Get a run", RunOut)
async def get_run(call: ApiCall) -> RunOut:
    return run_out(await call.services.runs.get_run(call.guild_id, call.path["tid"], call.path["run_id"]))


@routes.create(
    RUNS,
    "Import a run done outside a live race",
    RunImport,
    RunOut,
    description="A finished run needs `elapsed_seconds`; the player must be in the roster (PUT /players first). "
    "The seed's par time and scores are recomputed.",
)
async def import_run(call: ApiCall) -> Reply:
    tid = call.path["tid"]
    run = await call.services.runs.import_run(call.guild_id, tid, call.actor, **call.body.model_dump())
    view = await call.services.runs.get_run(call.guild_id, tid, run.id)
    return Reply(run_out(view), 201, f"/api/v1/tournaments/{tid}/runs/{run.id}")


@routes.manage(
    "POST",
    RUN + "/reattempt",
    "Mark a run as reattempted",
    response=RunOut,
    errors=(409,),
    description="The run stops counting, so the player may run the pool again (within `max_reattempts`).",
)
async def reattempt_run(call: ApiCall) -> RunOut:
    tid, run_id = call.path["tid"], call.path["run_id"]
    await call.services.runs.mark_reattempted(call.guild_id, tid, run_id, call.actor)
    return run_out(await call.services.runs.get_run(call.guild_id, tid, run_id))


@routes.read("/api/v1/tournaments/{tid}/leaderboard", "Tournament leaderboard", LeaderboardOut)
async def get_leaderboard(call: ApiCall) -> LeaderboardOut:
    return leaderboard_out(await call.services.scoring.leaderboard(call.guild_id, call.path["tid"]))
