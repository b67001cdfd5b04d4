"""API tokens: shown once, stored as a sha256 hash, compared in constant time.

Every API request authenticates its token, so a short-lived in-process cache of token lookups
(`api.token_cache_seconds`) spares the database read. A revoke through this process drops the token from the cache
at once; another process's cache may still accept it for at most `api.token_cache_seconds` (documented in
docs/configuration.md). Unknown secrets are never cached.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
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
TOKEN_CACHE_SIZE = 1024  # active tokens kept at once; the least recently used goes first


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
    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], datetime] = SYSTEM_CLOCK,
        cache_seconds: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.clock = clock
        self.cache_seconds = cache_seconds
        self._monotonic = monotonic
        # digest -> (token, monotonic time it was read from the database)
        self._cache: OrderedDict[str, tuple[AuthenticatedToken, float]] = OrderedDict()
        # Bumped by every forget: a lookup that read the database before a revoke committed must not cache it.
        self._generation = 0

    def forget(self, token_id: int) -> None:
        """Drop a token from this process's lookup cache (a revoke calls it when it commits)."""
        self._generation += 1
        for digest in [digest for digest, (token, _) in self._cache.items() if token.id == token_id]:
            del self._cache[digest]

    def _cached(self, digest: str) -> AuthenticatedToken | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        token, read_at = entry
        if self._monotonic() - read_at >= self.cache_seconds:
            del self._cache[digest]
            return None
        self._cache.move_to_end(digest)
        return token

    def _remember(self, digest: str, token: AuthenticatedToken, generation: int, read_at: float) -> None:
        if self.cache_seconds <= 0 or generation != self._generation:
            return
        self._cache[digest] = (token, read_at)
        self._cache.move_to_end(digest)
        while len(self._cache) > TOKEN_CACHE_SIZE:
            self._cache.popitem(last=False)

    async def create(
        self, guild_id: int, actor: Actor, *, name: str, scope: str | TokenScope, owner_player_id: int | None = None
    ) -> IssuedToken:
        """Issue an API token of the guild (audited); the secret is in the answer only."""
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
        generation = self._generation
        token = self._cached(digest)
        read_at = None
        if token is None:
            read_at = self._monotonic()
            async with self.db.read() as session:
                row = (await session.execute(_AUTHENTICATE.where(_tokens.c.token_hash == digest))).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
                return None
            token = AuthenticatedToken(row.id, row.guild_id, row.name, row.scope, row.last_used_at)
        now = self.clock()
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            async with self.db.transaction() as session:
                # Not on a revoked token: a revoke from another process may have come after the cached read.
                done = await session.execute(
                    update(ApiToken)
                    .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
                    .values(last_used_at=now)
                )
            if done.rowcount == 0:
                self.forget(token.id)
                return None
            token = replace(token, last_used_at=now)
            if read_at is None:  # a cached entry keeps the time it was read: the cache time is never extended
                read_at = self._cache[digest][1] if digest in self._cache else None
        if read_at is not None:
            self._remember(digest, token, generation, read_at)
        return token

    async def list(self, guild_id: int, *, include_revoked: bool = False) -> list[ApiToken]:
        """The guild's API tokens, the revoked ones when asked."""
        query = select(ApiToken).where(ApiToken.guild_id == guild_id).order_by(ApiToken.id)
        if not include_revoked:
            query = query.where(ApiToken.revoked_at.is_(None))
        async with self.db.read() as session:
            return list((await session.scalars(query)).all())

    async def revoke(self, guild_id: int, token_id: int, actor: Actor) -> ApiToken:
        """Revoke one of the guild's API tokens (audited); NotFound for a token it does not have, Conflict twice."""
        async with self.db.transaction() as session:
            token = await session.get(ApiToken, token_id)
            if token is None or token.guild_id != guild_id:
                raise NotFound(f"API token {token_id} not found", field="token_id")
            if token.revoked_at is not None:
                raise Conflict("this token is already revoked")
            token.revoked_at = self.clock()
            self.forget(token.id)  # and again once committed: a lookup may have read it meanwhile
            await audit.record(
                session,
                guild_id=guild_id,
                actor=actor,
                action="api_token.revoke",
                target_type="api_token",
                target_id=token.id,
                details={"name": token.name},
            )
        self.forget(token.id)
        return token
