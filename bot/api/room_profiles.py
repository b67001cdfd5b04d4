"""Room profiles: named RaceTime.gg room settings of the guild."""

from __future__ import annotations

from bot.api.pages import items_page, page_of
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import ItemsPage, RoomProfileCreate, RoomProfileOut, RoomProfileUpdate

PROFILES = "/api/v1/room-profiles"
PROFILE = PROFILES + "/{profile_id}"

routes = RouteTable(tag="room profiles")


@routes.page(PROFILES, "List room profiles", RoomProfileOut)
async def list_room_profiles(call: ApiCall) -> ItemsPage[RoomProfileOut]:
    profiles = await call.services.room_profiles.list(call.guild_id)
    return items_page(
        ItemsPage[RoomProfileOut], page_of(profiles, call.query, lambda p: p.id), RoomProfileOut.model_validate
    )


@routes.create(PROFILES, "Create a room profile", RoomProfileCreate, RoomProfileOut)
async def create_room_profile(call: ApiCall) -> Reply:
    fields = call.body.model_dump(exclude_none=True)
    profile = await call.services.room_profiles.create(call.guild_id, call.actor, **fields)
    return Reply(RoomProfileOut.model_validate(profile), 201, f"{PROFILES}/{profile.id}")


@routes.read(PROFILE, "Get a room profile", RoomProfileOut)
async def get_room_profile(call: ApiCall) -> RoomProfileOut:
    return RoomProfileOut.model_validate(await call.services.room_profiles.get(call.guild_id, call.path["profile_id"]))


@routes.update(PROFILE, "Change a room profile", RoomProfileUpdate, RoomProfileOut)
async def update_room_profile(call: ApiCall) -> RoomProfileOut:
    changes = call.body.model_dump(exclude_unset=True)
    profile = await call.services.room_profiles.update(call.guild_id, call.path["profile_id"], call.actor, **changes)
    return RoomProfileOut.model_validate(profile)


@routes.delete(
    PROFILE,
    "Delete a room profile",
    errors=(409,),
    description="Refused (409) while a scheduled live race uses it; tournaments using it fall back to inheriting.",
)
async def delete_room_profile(call: ApiCall) -> None:
    await call.services.room_profiles.delete(call.guild_id, call.path["profile_id"], call.actor)
