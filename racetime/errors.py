"""Typed errors of the RaceTime.gg client.

Callers decide what to do from the type and ``retryable``, never from message text.
"""

from __future__ import annotations


class RacetimeError(Exception):
    """Base class. ``status`` is the HTTP status when there was one."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RacetimeAuthError(RacetimeError):
    """The token or the bot was refused (RaceTime.gg answers a bare 403; the token endpoint 400/401).

    Also raised when a second 403 follows a fresh token, which for an edit can mean the race is over.
    """


class RacetimeValidationError(RacetimeError):
    """422: the form was rejected. ``errors`` is Django's ``form.errors`` (field -> messages)."""

    def __init__(self, errors: dict[str, list[str]], *, status: int | None = 422) -> None:
        self.errors = {field: list(messages) for field, messages in errors.items()}
        super().__init__(self._summary(), status=status)

    def _summary(self) -> str:
        parts = []
        for field, messages in self.errors.items():
            text = " ".join(messages)
            parts.append(text if field == "__all__" else f"{field}: {text}")
        return "; ".join(parts) or "RaceTime.gg rejected the form"


class RacetimeNotFound(RacetimeError):
    """404: unknown category or race."""


class RacetimeConflict(RacetimeError):
    """The action is not possible in the race's current state (e.g. cancelling a finished race)."""


class RacetimeUnavailable(RacetimeError):
    """5xx, timeout, connection refused or dropped: try again later."""

    retryable = True


class RacetimeProtocolError(RacetimeError):
    """The server answered something this client does not understand (unexpected status, body or shape)."""


class RacetimeNoCredentials(RacetimeAuthError):
    """No category bot is configured for this category: RaceTime.gg accepts a bot only in its own category."""

    def __init__(self, category: str, configured: tuple[str, ...]) -> None:
        self.category = category
        self.configured = configured
        listed = ", ".join(configured) if configured else "none"
        super().__init__(
            f"no RaceTime.gg bot is configured for category {category} (configured: {listed}); add "
            f"STARTLINE_RACETIME__CATEGORIES__{category.upper().replace('-', '_')}__CLIENT_ID and __CLIENT_SECRET"
        )
