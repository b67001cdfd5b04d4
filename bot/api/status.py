"""`GET /api/v1/status`: the caller guild's `/startline status`, plus the process-wide health."""

from __future__ import annotations

from dataclasses import asdict

from bot.api.registry import ApiCall, RouteTable
from bot.api.schemas import (
    CategoryHealthOut,
    ChannelCheckOut,
    JobStateOut,
    OutboxOut,
    PermissionsOut,
    ProcessOut,
    StatusOut,
)
from db.models import TokenScope

routes = RouteTable()


@routes.route(
    "GET",
    "/api/v1/status",
    summary="What an organizer checks before an event",
    tag="health",
    scope=TokenScope.MANAGE,
    response=StatusOut,
    description=(
        "The processes sharing the database, the jobs' last run and lag, this guild's outbox and failed DMs of the "
        "last day, RaceTime.gg health per category, and the Discord permissions its channels lack (checked now "
        "when this process is connected to the gateway, else what the last check saw). `problems` says what to "
        "act on, one sentence each."
    ),
)
async def status(call: ApiCall) -> StatusOut:
    report = await call.app.status.status(call.guild_id, probe=call.app.permission_probe)
    return StatusOut(
        generated_at=report.generated_at,
        process_count=report.process_count,
        processes=[ProcessOut(**asdict(process)) for process in report.processes],
        jobs=[JobStateOut(**asdict(job)) for job in report.jobs],
        outbox=OutboxOut(
            depth=report.outbox_depth,
            oldest_created_at=report.outbox_oldest_at,
            failed_dms_last_day=report.failed_dms_last_day,
        ),
        racetime=[CategoryHealthOut(**asdict(health)) for health in report.racetime],
        permissions=PermissionsOut(
            source=report.permissions.source,
            checked_at=report.permissions.checked_at,
            channels=[
                ChannelCheckOut(channel_id=c.channel_id, purpose=c.purpose, missing=list(c.missing))
                for c in report.permissions.channels
            ],
        ),
        problems=report.problems,
    )
