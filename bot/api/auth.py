"""Bearer tokens: who is calling, for which guild, with which scope."""

from __future__ import annotations

from aiohttp import web

from bot.api.errors import ApiError
from bot.services.tokens import AuthenticatedToken, TokenService
from db.models import TokenScope

REALM = 'Bearer realm="startline"'


def _secret_from(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    return secret.strip()


async def authenticate(request: web.Request, tokens: TokenService) -> AuthenticatedToken:
    """The active token of this request, or a 401 that says what to send."""
    secret = _secret_from(request)
    if secret is None:
        raise ApiError(
            401,
            "unauthorized",
            "send an API token as `Authorization: Bearer <token>` (create one with /apitoken create)",
            headers={"WWW-Authenticate": REALM},
        )
    token = await tokens.authenticate(secret)
    if token is None:
        raise ApiError(
            401,
            "invalid_token",
            "this API token is unknown or revoked",
            headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
        )
    return token


def require_scope(token: AuthenticatedToken, scope: TokenScope) -> None:
    if scope is TokenScope.MANAGE and token.scope is not TokenScope.MANAGE:
        raise ApiError(
            403,
            "insufficient_scope",
            "this route changes data and needs a token with the manage scope; this token is read-only",
            details={"required_scope": scope.value, "token_scope": token.scope.value},
        )
