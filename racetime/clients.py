"""One RaceTime.gg client per category: the seam the services ask for a category's bot.

RaceTime.gg accepts a category bot only in its own category (a bare 403 elsewhere), so a guild racing in several
categories needs one bot application per category. `RacetimeClients` holds one `RacetimeClient` (with its own token
cache) per configured category and offers the client's calls with the category as their first argument, each made
with that category's bot. A category without a bot raises `RacetimeNoCredentials` before anything is sent.

`RacetimeClients.single(client)` wraps one client that serves every category (tests that inject one client, and
scripts); its health is reported under the credentials name `default`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from racetime.client import RacetimeClient
from racetime.errors import RacetimeNoCredentials
from racetime.models import CategoryData, Race, RoomRef, StartRaceRequest

DEFAULT_CREDENTIALS = "default"  # the name of a client that serves every category


class RacetimeClients:
    def __init__(self, clients: Mapping[str, RacetimeClient], *, fallback: RacetimeClient | None = None) -> None:
        if not clients and fallback is None:
            raise ValueError("RacetimeClients needs at least one client")
        self._clients = dict(sorted(clients.items()))
        self._fallback = fallback

    @classmethod
    def single(cls, client: RacetimeClient) -> RacetimeClients:
        """One client for every category."""
        return cls({}, fallback=client)

    def __repr__(self) -> str:
        return f"RacetimeClients({list(self._clients)!r}, fallback={self._fallback is not None})"

    # ---- which bot serves a category ------------------------------------------------------------------
    @property
    def categories(self) -> tuple[str, ...]:
        """The categories with a bot of their own (empty for a single client serving all)."""
        return tuple(self._clients)

    @property
    def serves_every_category(self) -> bool:
        return self._fallback is not None

    def serves(self, category: str) -> bool:
        return category in self._clients or self._fallback is not None

    def credentials_for(self, category: str) -> str | None:
        """The name under which the health of `category`'s bot is kept; None when no bot serves it."""
        if category in self._clients:
            return category
        return DEFAULT_CREDENTIALS if self._fallback is not None else None

    def for_category(self, category: str) -> RacetimeClient:
        """The client of `category`'s bot; `RacetimeNoCredentials` when none is configured."""
        client = self._clients.get(category, self._fallback)
        if client is None:
            raise RacetimeNoCredentials(category, self.categories)
        return client

    def items(self) -> Iterator[tuple[str, RacetimeClient]]:
        """(credentials name, client) of every distinct bot."""
        yield from self._clients.items()
        if self._fallback is not None:
            yield DEFAULT_CREDENTIALS, self._fallback

    @property
    def base_url(self) -> str:
        return next(iter(self.items()))[1].base_url

    @property
    def stats(self) -> dict[str, int]:
        """The request counters of every bot added up."""
        total: dict[str, int] = {}
        for _, client in self.items():
            for kind, count in client.stats.items():
                total[kind] = total.get(kind, 0) + count
        return total

    async def aclose(self) -> None:
        for _, client in self.items():
            await client.aclose()

    # ---- the calls, each with its category's bot ------------------------------------------------------
    async def start_race(self, category: str, request: StartRaceRequest) -> RoomRef:
        return await self.for_category(category).start_race(category, request)

    async def edit_race(self, category: str, slug: str, request: StartRaceRequest) -> None:
        await self.for_category(category).edit_race(category, slug, request)

    async def race_detail(self, category: str, slug: str) -> Race:
        # Public data: any bot may read it, so a room of a category whose bot was removed can still be followed.
        client = self._clients.get(category) or self._fallback or next(iter(self._clients.values()))
        return await client.race_detail(category, slug)

    async def category_data(self, category: str, *, include_unlisted: bool = True) -> CategoryData:
        return await self.for_category(category).category_data(category, include_unlisted=include_unlisted)

    async def past_races(self, category: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        client = self._clients.get(category) or self._fallback or next(iter(self._clients.values()))
        return await client.past_races(category, *args, **kwargs)

    async def cancel_race(self, category: str, slug: str) -> None:
        await self.for_category(category).cancel_race(category, slug)


def clients_from_credentials(
    base_url: str, credentials: Mapping[str, tuple[str, str]], **client_options: Any
) -> RacetimeClients | None:
    """One client per category bot (`credentials`: category → (client id, secret)); None when there is none."""
    if not credentials:
        return None
    return RacetimeClients(
        {
            category: RacetimeClient(base_url, client_id, secret, **client_options)
            for category, (client_id, secret) in credentials.items()
        }
    )


def as_clients(client: RacetimeClient | RacetimeClients | None) -> RacetimeClients | None:
    """A single injected client serves every category."""
    if isinstance(client, RacetimeClient):
        return RacetimeClients.single(client)
    return client
