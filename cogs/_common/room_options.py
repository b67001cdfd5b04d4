"""Room settings as slash command options, made from the `RoomSetting` records of bot/services/room_profiles.py.

`@room_setting_options()` gives a command one optional option per room setting, after its own options and in the
records' order, each with the record's description and its range as `app_commands.Range`, so Discord shows and
enforces it. The callback declares `room: RoomValues` and receives the settings the user filled in: a new setting
is one new record, and every command that takes room settings offers it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal

from discord import app_commands
from discord.utils import resolve_annotation

from bot.services.room_profiles import ROOM_SETTINGS, RoomSetting

RoomValues = dict[str, Any]
PER_RACE_PREFIX = "Room override: "


def option_type(setting: RoomSetting) -> Any:
    """The annotation of a setting's option: a ranged integer, a boolean, or one of its choices; optional."""
    if setting.kind is bool:
        return bool | None
    if setting.kind is str:
        return Literal[setting.choices] | None  # type: ignore[valid-type]
    return app_commands.Range[int, setting.low, setting.high] | None


def option_description(setting: RoomSetting, *, per_race: bool) -> str:
    text = setting.help_text
    return PER_RACE_PREFIX + text[0].lower() + text[1:] if per_race else text


def room_setting_options(*, per_race: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add the room settings (with `per_race`, only those a race may override) as options of a command.

    Put it directly above the `def`, below `@group.command` and the other decorators. The callback's `room`
    parameter becomes these options; it receives a dict of the ones given.
    """
    chosen = [setting for setting in ROOM_SETTINGS.values() if setting.per_race or not per_race]

    def decorator(callback: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(callback)
        if "room" not in signature.parameters:
            raise TypeError(f"{callback.__qualname__} needs a `room` parameter for the room settings")
        # The wrapper lives here, so discord.py would read string annotations in this module: resolve them in the
        # callback's own module first.
        cache: dict[str, Any] = {}
        own = [
            parameter
            if parameter.annotation is inspect.Parameter.empty
            else parameter.replace(
                annotation=resolve_annotation(parameter.annotation, callback.__globals__, None, cache)
            )
            for name, parameter in signature.parameters.items()
            if name != "room"
        ]
        added = [
            inspect.Parameter(s.name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=option_type(s))
            for s in chosen
        ]
        clash = {p.name for p in own} & {p.name for p in added}
        if clash:
            raise TypeError(f"{callback.__qualname__} already has options named {sorted(clash)}")

        @functools.wraps(callback)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            room = {s.name: value for s in chosen if (value := kwargs.pop(s.name, None)) is not None}
            return await callback(*args, room=room, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=[*own, *added])  # type: ignore[attr-defined]
        wrapper.__discord_app_commands_param_description__ = {  # type: ignore[attr-defined]
            **getattr(callback, "__discord_app_commands_param_description__", {}),
            **{s.name: option_description(s, per_race=per_race) for s in chosen},
        }
        return wrapper

    return decorator
