"""Players: the guild's roster, importable from another bot."""

from __future__ import annotations

from bot.api.pages import items_page
from bot.api.registry import ApiCall, Reply, RouteTable
from bot.api.schemas import ItemsPage, PlayerOut, PlayerQuery, PlayerUpsert, RemindersIn, RemindersOut

PLAYERS = "/api/v1/players"
PLAYER = PLAYERS + "/{discord_user_id}"

routes = RouteTable(tag="players")


@routes.page(PLAYERS, "List the guild's players", PlayerOut, PlayerQuery)
async def list_players(call: ApiCall) -> ItemsPage[PlayerOut]:
    q: PlayerQuery = call.query
    page = await call.services.players.list(
        call.guild_id, limit=q.limit, cursor=q.cursor, linked=q.linked, left=q.left, search=q.search
    )
    return items_page(ItemsPage[PlayerOut], page, PlayerOut.model_validate)


@routes.read(PLAYER, "Get a player", PlayerOut)
async def get_player(call: ApiCall) -> PlayerOut:
    return PlayerOut.model_validate(await call.services.players.get(call.guild_id, call.path["discord_user_id"]))


@routes.manage(
    "PUT",
    PLAYER,
    "Import or update a player",
    body=PlayerUpsert,
    response=PlayerOut,
    status=200,
    other_statuses=(201,),
    errors=(409,),
    description="Changes only this guild's roster entry: its name for the player and its (unverified) RaceTime.gg "
    "link; what other guilds show for the player stays as it is. 201 when the player is new to this guild, 200 "
    "when updated. A RaceTime.gg account the player linked themselves through OAuth cannot be replaced, and an "
    "account another player has (verified, or in this guild) cannot be given (409).",
)
async def put_player(call: ApiCall) -> Reply:
    discord_user_id = call.path["discord_user_id"]
    player, created = await call.services.players.upsert(
        call.guild_id, discord_user_id, call.actor, **call.body.model_dump(exclude_unset=True)
    )
    location = f"{PLAYERS}/{discord_user_id}"
    return Reply(PlayerOut.model_validate(player), 201 if created else 200, location if created else None)


@routes.read(
    PLAYER + "/reminders",
    "A player's reminder offsets",
    RemindersOut,
    description="The minutes before a live race's start at which the player is reminded by DM, in this guild.",
)
async def get_reminders(call: ApiCall) -> RemindersOut:
    await call.services.players.get(call.guild_id, call.path["discord_user_id"])  # 404 off this guild's roster
    offsets = await call.services.reminders.offsets(call.path["discord_user_id"], call.guild_id)
    return RemindersOut(offsets_minutes=list(offsets))


@routes.manage(
    "PUT",
    PLAYER + "/reminders",
    "Set a player's reminder offsets",
    body=RemindersIn,
    response=RemindersOut,
    description="Reminders go to the player for races they RSVP'd and, if they get the scheduled notice (415), for "
    "races they may race. Offsets not offered are refused (422); a player not on this guild's roster is 404.",
)
async def put_reminders(call: ApiCall) -> RemindersOut:
    await call.services.players.get(call.guild_id, call.path["discord_user_id"])  # 404 off this guild's roster
    offsets = await call.services.reminders.set_offsets(
        call.path["discord_user_id"], call.guild_id, call.body.offsets_minutes
    )
    return RemindersOut(offsets_minutes=list(offsets))
