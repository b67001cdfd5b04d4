"""The error envelope `{"error": {"code", "message", "details"}}` and the middleware that guarantees it.

Every failure leaves the server in that shape: domain errors (mapped to their status), input errors found by
the route registry, aiohttp's own (unknown route, wrong method, oversized body) and, as a last resort, an
unexpected exception (500, logged with its traceback, no internals in the answer).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from sqlalchemy.exc import IntegrityError

from bot.errors import (
    Conflict,
    DomainError,
    NotFound,
    PermissionDenied,
    UpstreamUnavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

DOMAIN_STATUS: tuple[tuple[type[DomainError], int], ...] = (
    (NotFound, 404),
    (ValidationFailed, 422),
    (Conflict, 409),  # also InvalidTransition
    (PermissionDenied, 403),
    (UpstreamUnavailable, 503),
)

HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "upstream_unavailable",
}


class ApiError(Exception):
    """An HTTP-level failure found by the API layer itself (auth, scope, rate limit, malformed input)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.headers = dict(headers or {})


def error_response(
    status: int,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    body = {"error": {"code": code, "message": message, "details": dict(details or {})}}
    return web.Response(
        status=status,
        body=json.dumps(body, default=str).encode(),
        content_type="application/json",
        headers=headers,
    )


def domain_status(error: DomainError) -> int:
    for error_type, status in DOMAIN_STATUS:
        if isinstance(error, error_type):
            return status
    return 400


MAX_BODY_KEY = web.AppKey("max_body_bytes", int)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    messages = {
        404: "no such route; see /api/v1/openapi.json for the routes this API has",
        405: "this route does not accept that method",
        413: "the request body is too large",
    }
    headers = {}
    details: dict[str, Any] = {}
    if status == 405 and isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        headers["Allow"] = ", ".join(allowed)
        details["allowed_methods"] = allowed
    if status == 413 and MAX_BODY_KEY in request.app:
        details["max_body_bytes"] = request.app[MAX_BODY_KEY]
    message = messages.get(status) or exc.reason or "request failed"
    return error_response(status, HTTP_ERROR_CODES.get(status, "error"), message, details, headers)


@web.middleware
async def error_middleware(request: web.Request, handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)
    except DomainError as exc:
        return error_response(domain_status(exc), exc.code, exc.message, exc.details)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _from_http_exception(request, exc)
    except IntegrityError:
        # A constraint caught what a service check missed (two requests racing for one name): a conflict.
        log.warning("constraint violation on %s %s", request.method, request.path, exc_info=True)
        return error_response(409, "conflict", "this clashes with existing data; reload and try again")
    except Exception:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "the server failed to answer this request; it has been logged")
