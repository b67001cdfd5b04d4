"""Typed domain errors. Each carries a message a moderator or script author can act on.

Adapters map them: a slash command answers the message ephemerally, the REST API turns `code` into a status
(`NotFound` 404, `ValidationFailed` 422, `Conflict`/`InvalidTransition` 409, `PermissionDenied` 403,
`UpstreamUnavailable` 503).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        example: Any = None,
    ):
        super().__init__(message)
        self.message = message
        self.field = field
        self.example = example  # a valid value of `field`, which an adapter may show with the message
        self.details = dict(details or {})
        if field is not None:
            self.details.setdefault("field", field)


class NotFound(DomainError):
    """Missing, or belonging to another guild (the two are indistinguishable on purpose)."""

    code = "not_found"


class ValidationFailed(DomainError):
    code = "validation_error"


class IdempotencyKeyReused(ValidationFailed):
    """An `Idempotency-Key` already used within its window for a different request."""

    code = "idempotency_key_reused"


class Conflict(DomainError):
    """The request clashes with existing data (a duplicate name, a seed still in use, ...)."""

    code = "conflict"


class IdempotencyKeyInProgress(Conflict):
    """Another request with the same `Idempotency-Key` is being processed (or its answer was lost)."""

    code = "idempotency_key_in_progress"


class InvalidTransition(Conflict):
    """The live race state machine refuses this change."""

    code = "invalid_transition"


class PermissionDenied(DomainError):
    code = "forbidden"


class UpstreamUnavailable(DomainError):
    """RaceTime.gg could not be reached or answered with an error we cannot act on."""

    code = "upstream_unavailable"
