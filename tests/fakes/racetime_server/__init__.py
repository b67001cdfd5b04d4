"""A faithful fake of RaceTime.gg, one module per concern.

- ``forms``: the race form (fields, defaults, validation) and the constants;
- ``state``: categories, applications, tokens, rooms, entrants, sockets;
- ``controls``: held requests, faults and the controls tests call (``open_room``, ``add_entrant``...);
- ``routes``: the HTTP routes;
- ``websocket``: the bot websocket and its actions;
- ``server``: ``FakeRacetime`` itself, which puts them together, renders race JSON and moves races along.
"""

from tests.fakes.racetime_server.controls import HeldRequest, Hold
from tests.fakes.racetime_server.forms import FakeRacetimeError, clean_race_form
from tests.fakes.racetime_server.server import FakeRacetime, client_for, fake_racetime, user_client_for
from tests.fakes.racetime_server.state import FakeApp, FakeCategory, FakeEntrant, FakeRoom, FakeToken

__all__ = [
    "FakeApp",
    "FakeCategory",
    "FakeEntrant",
    "FakeRacetime",
    "FakeRacetimeError",
    "FakeRoom",
    "FakeToken",
    "HeldRequest",
    "Hold",
    "clean_race_form",
    "client_for",
    "fake_racetime",
    "user_client_for",
]
