"""API tokens: shown once, stored as a sha256 hash, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from bot.actors import Actor
from bot.clock import SYSTEM_CLOCK
from bot.errors import Conflict, NotFound, ValidationFailed
from bot.services import audit
from bot.services.common import clean_name
from db.models import ApiToken, TokenScope
from db.session import Database

TOKEN_PREFIX = "slt_"
# `last_used_at` is informative; writing it on every request would turn each read into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str


@dataclass(frozen=True, slots=True)
class AuthenticatedToken:
    """What a request needs of its token (read on every API request, so only these columns are loaded)."""

    id: int
    guild_id: int
    name: str
    scope: TokenScope
    last_used_at: datetime | None


_tokens = ApiToken.__table__
_AUTHENTICATE = select(
    _tokens.c.id,
    _tokens.c.guild_id,
    _tokens.c.name,
    _tokens.c.scope,
    _tokens.c.token_hash,
    _tokens.c.revoked_at,
    _tokens.c.last_used_at,
)


class TokenService:
    def __init__(self, db: Database, *, clock: Callable[[], datetime] = SYSTEM_CLOCK) -> None:
        self.db = db
        self.clock = clock

    async def create(
        self, guild_id: int, actor: Actor, *, name: str, scope: str | TokenScope, owner_player_id: int | None = None
    ) -> IssuedToken:
        name = clean_name(name, "name")
        try:
            token_scope = TokenScope(scope)
        except ValueError:
            raise ValidationFailed("scope must be read or manage", field="scope") from None
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        async with self.db.transaction() as session:
            clash = await session.scalar(
                select(ApiToken.id).where(
                    ApiToken.guild_id == guild_id, ApiToken.name == name, ApiToken.revoked_at.is_(None)
                )
            )
            if clash is not None:
                raise Conflict(f"an active token named {name!r} already exists", field="name")
            token = ApiToken(
                guild_id=guild_id,
                name=name,
                scope=token_scope,
                owner_player_id=owner_player_id,
                token_hash=hash_secret(secret),
                token_prefix=secret[: len(TOKEN_PREFIX) + 6],
                created_by=actor.label,
            )
            session.add(token)
            await session.flush()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="api_token.create",
                target_type="api_token",
                target_id=token.id,
                details={"name": name, "scope": token_scope.value},
            )
        return IssuedToken(token, secret)

    async def authenticate(self, secret: str) -> AuthenticatedToken | None:
        """The active token for this secret, or None. Updates `last_used_at` at most once a minute."""
        if not secret or not secret.startswith(TOKEN_PREFIX) or len(secret) > 200:
            return None
        digest = hash_secret(secret)
        async with self.db.read() as session:
            row = (await session.execute(_AUTHENTICATE.where(_tokens.c.token_hash == digest))).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
            return None
        last_used_at, now = row.last_used_at, self.clock()
        if last_used_at is None or now - last_used_at > LAST_USED_RESOLUTION:
            async with self.db.transaction() as session:
                await session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=now))
            last_used_at = now
        return AuthenticatedToken(row.id, row.guild_id, row.name, row.scope, last_used_at)

    async def list(self, guild_id: int, *, include_revoked: bool = False) -> list[ApiToken]:
        query = select(ApiToken).where(ApiToken.guild_id == guild_id).order_by(ApiToken.id)
        if not include_revoked:
            query = query.where(ApiToken.revoked_at.is_(None))
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def revoke(self, guild_id: int, token_id: int, actor: Actor) -> ApiToken:
        async with self.db.transaction() as session:
            token = await session.get(ApiToken, token_id)
            if token is None or token.guild_id != guild_id:
                raise NotFound(f"API token {token_id} not found", field="token_id")
            if token.revoked_at is not None:
                raise Conflict("this token is already revoked")
            token.revoked_at = self.clock()
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="api_token.revoke",
                target_type="api_token",
                target_id=token.id,
                details={"name": token.name},
            )
            return token
