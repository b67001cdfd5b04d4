"""Who did something: recorded with every audit entry and every change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ActorType = Literal["player", "token", "system"]


@dataclass(frozen=True, slots=True)
class Actor:
    type: ActorType
    id: str | None
    name: str

    @classmethod
    def system(cls, name: str = "system") -> Actor:
        return cls("system", None, name)

    @classmethod
    def player(cls, discord_user_id: int, name: str) -> Actor:
        return cls("player", str(discord_user_id), name)

    @classmethod
    def token(cls, token_id: int, name: str) -> Actor:
        return cls("token", str(token_id), name)

    @property
    def label(self) -> str:
        """Compact form for `created_by` columns: `player:1234 (alice)`, `token:7 (ci)`, `system`."""
        if self.type == "system":
            return self.name
        return f"{self.type}:{self.id} ({self.name})"[:120]

    @property
    def discord_user_id(self) -> int | None:
        return int(self.id) if self.type == "player" and self.id is not None else None


SYSTEM = Actor.system()
