"""RaceTime.gg client and result mapping for Startline."""

from racetime.client import RacetimeClient
from racetime.clients import RacetimeClients
from racetime.durations import format_datetime, format_duration, parse_datetime, parse_duration
from racetime.errors import (
    RacetimeAuthError,
    RacetimeConflict,
    RacetimeError,
    RacetimeNoCredentials,
    RacetimeNotFound,
    RacetimeProtocolError,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import (
    CategoryData,
    Entrant,
    Race,
    RaceSummary,
    RoomRef,
    RoomSettings,
    StartRaceRequest,
    User,
    UserToken,
)
from racetime.results import EntrantResult, entrant_results, participants_at_start

__all__ = [
    "CategoryData",
    "Entrant",
    "EntrantResult",
    "Race",
    "RaceSummary",
    "RacetimeAuthError",
    "RacetimeClient",
    "RacetimeClients",
    "RacetimeConflict",
    "RacetimeError",
    "RacetimeNoCredentials",
    "RacetimeNotFound",
    "RacetimeProtocolError",
    "RacetimeUnavailable",
    "RacetimeValidationError",
    "RoomRef",
    "RoomSettings",
    "StartRaceRequest",
    "User",
    "UserToken",
    "entrant_results",
    "format_datetime",
    "format_duration",
    "parse_datetime",
    "parse_duration",
    "participants_at_start",
]
