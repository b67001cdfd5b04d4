"""Shims for dpytest 0.7.0 (the PyPI release) on discord.py >= 2.4 / 2.6; remove them when a newer dpytest ships.

- discord.py 2.6 sends `colors` when creating a role; dpytest's `create_role` only knows `color` (and finds the
  guild by reading its caller's stack frames, so it cannot simply be wrapped).
- discord.py 2.4 reads `type` and `burst` from reaction payloads, which dpytest does not send.
"""

import discord.ext.test.backend as back
import discord.ext.test.factories as facts
from discord.ext.test import callbacks
from discord.ext.test.state import FakeState


def apply() -> None:
    async def create_role(self, guild_id, *, reason=None, **fields):
        colors = fields.pop("colors", None)
        if colors:
            fields["color"] = colors.get("primary_color", 0)
        guild = self.state._get_guild(guild_id)
        role = back.make_role(guild=guild, **fields)
        await callbacks.dispatch_event("create_role", guild, role, reason=reason)
        return facts.dict_from_role(role)

    back.FakeHttp.create_role = create_role

    for name in ("parse_message_reaction_add", "parse_message_reaction_remove"):

        def patched(self, data, _orig=getattr(FakeState, name)):
            data.setdefault("type", 0)
            data.setdefault("burst", False)
            return _orig(self, data)

        setattr(FakeState, name, patched)
