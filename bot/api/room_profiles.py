"""Room profiles: named RaceTime.gg room settings of the guild."""

from __future__ import annotations

from bot.api.pages import items_page, page_of
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import ItemsPage, PageQuery, RoomProfileCreate, RoomProfileOut, RoomProfileUpdate
from db.models import TokenScope

PROFILES = "/api/v1/room-profiles"

routes = RouteTable()


@routes.route(
    "GET",
    PROFILES,
    summary="List room profiles",
    tag="room profiles",
    scope=TokenScope.READ,
    query=PageQuery,
    response=ItemsPage[RoomProfileOut],
)
async def list_room_profiles(call: ApiCall) -> ItemsPage[RoomProfileOut]:
    profiles = await call.services.room_profiles.list(call.guild_id)
    return items_page(
        ItemsPage[RoomProfileOut], page_of(profiles, call.query, lambda p: p.id), RoomProfileOut.model_validate
    )


@routes.route(
    "POST",
    PROFILES,
    summary="Create a room profile",
    tag="room profiles",
    scope=TokenScope.MANAGE,
    body=RoomProfileCreate,
    response=RoomProfileOut,
    status=201,
    idempotent=True,
    errors=(409,),
)
async def create_room_profile(call: ApiCall) -> Reply:
    fields = call.body.model_dump(exclude_none=True)
    profile = await call.services.room_profiles.create(call.guild_id, call.actor, **fields)
    return Reply(RoomProfileOut.model_validate(profile), 201, f"{PROFILES}/{profile.id}")


@routes.route(
    "GET",
    PROFILES + "/{profile_id}",
    summary="Get a room profile",
    tag="room profiles",
    scope=TokenScope.READ,
    response=RoomProfileOut,
)
async def get_room_profile(call: ApiCall) -> RoomProfileOut:
    return RoomProfileOut.model_validate(await call.services.room_profiles.get(call.guild_id, call.path["profile_id"]))


@routes.route(
    "PATCH",
    PROFILES + "/{profile_id}",
    summary="Change a room profile",
    tag="room profiles",
    scope=TokenScope.MANAGE,
    body=RoomProfileUpdate,
    response=RoomProfileOut,
    errors=(409,),
)
async def update_room_profile(call: ApiCall) -> RoomProfileOut:
    changes = call.body.model_dump(exclude_unset=True)
    profile = await call.services.room_profiles.update(call.guild_id, call.path["profile_id"], call.actor, **changes)
    return RoomProfileOut.model_validate(profile)


@routes.route(
    "DELETE",
    PROFILES + "/{profile_id}",
    summary="Delete a room profile",
    tag="room profiles",
    scope=TokenScope.MANAGE,
    response=None,
    status=204,
    errors=(409,),
    description="Refused (409) while a scheduled live race uses it; tournaments using it fall back to inheriting.",
)
async def delete_room_profile(call: ApiCall) -> None:
    await call.services.room_profiles.delete(call.guild_id, call.path["profile_id"], call.actor)
