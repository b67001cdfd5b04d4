"""Linking a Discord user to their RaceTime.gg account through OAuth (authorization code).

`/racetime link` asks for an authorize URL whose `state` is signed, expires, and names the Discord user and guild;
RaceTime.gg sends the browser back to `GET /racetime/callback` with a code and that state; `complete` checks the
state, trades the code for a user token, asks RaceTime.gg who that is and stores the link as verified. The
signing key is `api.secret_key`, or one generated once and kept in the database so every process agrees on it.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError

from bot.actors import Actor
from bot.errors import UpstreamUnavailable, ValidationFailed
from bot.services.players import PlayerService
from bot.settings import Settings
from db.models import AppSecret, Player
from db.session import Database
from racetime.client import RacetimeClient
from racetime.errors import RacetimeAuthError, RacetimeError

CALLBACK_PATH = "/racetime/callback"
STATE_MAX_AGE_SECONDS = 600
STATE_SALT = "startline.racetime-link"
STATE_KEY_NAME = "oauth_state_key"

ClientFactory = Callable[[], AbstractAsyncContextManager[RacetimeClient]]


@dataclass(frozen=True)
class LinkRequest:
    """Who asked for the link, as carried by the signed state."""

    guild_id: int
    discord_user_id: int


class AccountLinkService:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        players: PlayerService,
        *,
        client_factory: ClientFactory | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.settings = settings
        self.players = players
        self._client_factory = client_factory
        self._clock = clock
        self._key: str | None = None

    @property
    def configured(self) -> bool:
        """Whether RaceTime.gg account linking can run (OAuth credentials, or an injected client in tests)."""
        return self._client_factory is not None or self.settings.has_racetime_oauth

    @property
    def redirect_uri(self) -> str:
        """The OAuth callback URL RaceTime.gg sends the user back to (`api.public_url` + the callback path)."""
        return self.settings.api.public_url + CALLBACK_PATH

    async def authorize_url(self, guild_id: int, discord_user_id: int) -> str:
        """Where to send the user; the URL works for STATE_MAX_AGE_SECONDS and only for them."""
        self._require_configured()
        state = (await self._serializer()).dumps([guild_id, discord_user_id, secrets.token_urlsafe(8)])
        async with self._client() as client:
            return client.authorize_url(self.redirect_uri, state, scope="read")

    async def verify_state(self, state: str) -> LinkRequest:
        """The guild and user a signed `state` was issued for; ValidationFailed when it is forged or expired."""
        serializer = await self._serializer()
        try:
            guild_id, discord_user_id, _nonce = serializer.loads(state or "", max_age=STATE_MAX_AGE_SECONDS)
        except SignatureExpired:
            raise ValidationFailed(
                "this link has expired (links work for 10 minutes); run /racetime link in Discord again",
                field="state",
            ) from None
        except (BadSignature, ValueError, TypeError):
            raise ValidationFailed(
                "this link is not valid; run /racetime link in Discord to get a new one", field="state"
            ) from None
        return LinkRequest(int(guild_id), int(discord_user_id))

    async def complete(self, code: str | None, state: str | None) -> Player:
        """Finish the link after RaceTime.gg's redirect: check the state, identify the user, store the link."""
        request = await self.verify_state(state or "")
        if not code:
            raise ValidationFailed("RaceTime.gg sent no authorization code; run /racetime link again", field="code")
        self._require_configured()
        async with self._client() as client:
            try:
                token = await client.exchange_code(code, self.redirect_uri)
                user = await client.userinfo(token.access_token)
            except RacetimeAuthError:
                raise ValidationFailed(
                    "RaceTime.gg did not accept this login (it may have been used already); "
                    "run /racetime link in Discord again",
                    field="code",
                ) from None
            except RacetimeError as exc:
                raise UpstreamUnavailable(
                    "RaceTime.gg could not be reached to finish the link; try again in a few minutes"
                ) from exc
        actor = Actor.player(request.discord_user_id, user.full_name)
        return await self.players.link_racetime(
            request.guild_id, request.discord_user_id, user.id, user.full_name, actor, verified=True
        )

    def _require_configured(self) -> None:
        if not self.configured:
            raise UpstreamUnavailable(
                "linking RaceTime.gg accounts is not set up on this bot: its admin must set "
                "racetime.oauth_client_id and racetime.oauth_client_secret"
            )

    def _client(self) -> AbstractAsyncContextManager[RacetimeClient]:
        if self._client_factory is not None:
            return self._client_factory()
        racetime = self.settings.racetime
        return RacetimeClient(
            racetime.base_url,
            racetime.oauth_client_id or "",
            racetime.oauth_client_secret.get_secret_value() if racetime.oauth_client_secret else "",
            timeout=racetime.request_timeout_seconds,
            connect_timeout=racetime.connect_timeout_seconds,
        )

    async def _serializer(self) -> URLSafeTimedSerializer:
        clock = self._clock

        class ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        return URLSafeTimedSerializer(await self._signing_key(), salt=STATE_SALT, signer=ClockedSigner)

    async def _signing_key(self) -> str:
        if self._key is None:
            configured = self.settings.api.secret_key
            self._key = configured.get_secret_value() if configured else await self._stored_key()
        return self._key

    async def _stored_key(self) -> str:
        try:
            async with self.db.transaction() as session:
                row = await session.get(AppSecret, STATE_KEY_NAME)
                if row is None:
                    row = AppSecret(name=STATE_KEY_NAME, value=secrets.token_urlsafe(48))
                    session.add(row)
                return row.value
        except IntegrityError:  # another process stored one first: use theirs
            async with self.db.read() as session:
                row = await session.get(AppSecret, STATE_KEY_NAME)
                assert row is not None
                return row.value
