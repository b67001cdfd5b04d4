"""HTTP and bot-websocket client for RaceTime.gg.

What RaceTime.gg does that shapes this code (see docs/racetime.md):
- a bot token comes from client credentials, lives 10 h and has no refresh token; an expired or
  wrong token is answered with a bare 403, so a 403 earns exactly one fresh token and one retry;
- ``startrace`` answers 201 + ``Location``; it is never retried, because a retry could open a
  second room;
- cancelling is only possible through the bot websocket.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import ssl
import time
from collections.abc import Callable
from typing import Any, Protocol, Self
from urllib.parse import quote, urlencode, urlsplit

import aiohttp
import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential,
)

from racetime.errors import (
    RacetimeAuthError,
    RacetimeConflict,
    RacetimeError,
    RacetimeNotFound,
    RacetimeProtocolError,
    RacetimeUnavailable,
    RacetimeValidationError,
)
from racetime.models import (
    CategoryData,
    Race,
    RoomRef,
    StartRaceRequest,
    User,
    UserToken,
    absolute_url,
)

log = logging.getLogger(__name__)

_LOCATION_RE = re.compile(r"^/([^/]+)/([^/]+)$")
_DONE_STATES = frozenset({"finished", "cancelled", "partitioned"})
_PERMISSION_DENIED = "Permission denied"
_DEFAULT_TOKEN_LIFETIME = 36000  # what RaceTime.gg issues; used if a response omits expires_in
_STAT_KINDS = (
    "token",
    "startrace",
    "edit",
    "detail",
    "category",
    "cancel",
    "past_races",
    "user_token",
    "userinfo",
)


def token_refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is renewed: 10 % of its life but at least 30 min (1 h for the
    usual 10 h token), and never more than half its life so short-lived tokens are still reused."""
    return min(max(lifetime * 0.1, 1800.0), lifetime / 2)


@functools.cache
def _shared_ssl_context() -> ssl.SSLContext:
    # httpx would load the CA bundle into a new context for every client (~35 ms each); share one.
    return httpx.create_ssl_context()


def _segment(value: str) -> str:
    return quote(value, safe="")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class RacetimeObserver(Protocol):
    """Told about each request (``kind`` as in ``stats``, ``status``: the HTTP status, or ``timeout``/``error``)
    and each bot token fetch."""

    def request(self, kind: str, status: str) -> None: ...

    def token(self, ok: bool, error: str | None = None) -> None: ...


class RacetimeClient:
    """One bot (client id and secret) of one RaceTime.gg site.

    ``retries`` applies to idempotent calls (GETs, the token request, edits); ``startrace`` and the
    authorization-code exchange are never retried. Every call is bounded by ``timeout`` seconds,
    retries and back-off included.
    """

    def __init__(
        self,
        base_url: str,
        client_id: str,
        client_secret: str,
        *,
        timeout: float = 10.0,
        connect_timeout: float | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        retries: int = 2,
        retry_backoff: float = 0.25,
        user_agent: str = "Startline (RaceTime.gg bot)",
    ) -> None:
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.base_url = base_url.rstrip("/")
        self._ws_base = re.sub(r"^http", "ws", self.base_url, count=1)
        self._client_id = client_id
        self._client_secret = client_secret
        self._timeout = timeout
        self._connect_timeout = timeout if connect_timeout is None else connect_timeout
        self._clock = clock
        self._retries = retries
        self._retry_backoff = retry_backoff
        self._user_agent = user_agent
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=self._connect_timeout),
            transport=transport,
            verify=_shared_ssl_context(),
            follow_redirects=False,
            headers={"User-Agent": user_agent},
        )
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_renew_at = 0.0
        self._token_lock = asyncio.Lock()
        self.stats: dict[str, int] = dict.fromkeys(_STAT_KINDS, 0)
        # Told about every request (its kind and status) and token fetch: metrics and health, set by the bot.
        self.observer: RacetimeObserver | None = None

    def __repr__(self) -> str:  # never show the secret or the token
        return f"RacetimeClient({self.base_url!r}, client_id={self._client_id!r})"

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # ------------------------------------------------------------------ bot API

    async def start_race(self, category: str, request: StartRaceRequest) -> RoomRef:
        """Open a room. Never retried: on ``RacetimeUnavailable`` the room may or may not exist."""
        form = request.to_form()
        path = f"/o/{_segment(category)}/startrace"
        resp = await self._authed("startrace", "POST", path, data=form, retries=0)
        if resp.status_code not in (200, 201):
            raise self._error(resp, f"startrace in {category}")
        location = resp.headers.get("Location", "")
        match = _LOCATION_RE.match(urlsplit(location).path)
        if match is None:
            raise RacetimeProtocolError(
                f"startrace in {category}: no race in the Location header ({location!r})",
                status=resp.status_code,
            )
        path = match.group(0)
        log.info("opened RaceTime.gg room %s", path)
        return RoomRef(category=match.group(1), slug=match.group(2), url=absolute_url(self.base_url, path))

    async def edit_race(self, category: str, slug: str, request: StartRaceRequest) -> None:
        """Replace the room's settings. RaceTime.gg resets every omitted field, so all are sent.

        Retried like a GET: a full replace gives the same room however often it is applied.
        """
        form = request.to_edit_form()
        path = f"/o/{_segment(category)}/{_segment(slug)}/edit"
        try:
            resp = await self._authed("edit", "POST", path, data=form, retries=self._retries)
        except RacetimeAuthError:
            # RaceTime.gg also answers a bare 403 once the race is over; tell the two apart.
            race = await self.race_detail(category, slug)
            if race.status in _DONE_STATES:
                raise RacetimeConflict(
                    f"Cannot edit {category}/{slug}: the race is {race.status}.", status=403
                ) from None
            raise
        if resp.status_code != 200:
            raise self._error(resp, f"edit of {category}/{slug}")

    async def race_detail(self, category: str, slug: str) -> Race:
        """``GET /<cat>/<slug>/data`` (public)."""
        path = f"/{_segment(category)}/{_segment(slug)}/data"
        resp = await self._request("detail", "GET", path, retries=self._retries)
        data = self._json(resp, f"race {category}/{slug}")
        return self._parse(Race.from_json, data, f"race {category}/{slug}")

    async def category_data(self, category: str, *, include_unlisted: bool = True) -> CategoryData:
        """Current races of a category; ``include_unlisted`` reads ``/o/<cat>/data`` with the bot token."""
        if include_unlisted:
            path = f"/o/{_segment(category)}/data"
            resp = await self._authed("category", "GET", path, retries=self._retries)
        else:
            path = f"/{_segment(category)}/data"
            resp = await self._request("category", "GET", path, retries=self._retries)
        data = self._json(resp, f"category {category}")
        return self._parse(CategoryData.from_json, data, f"category {category}")

    async def past_races(
        self, category: str, page: int = 1, per_page: int = 100, show_entrants: bool = True
    ) -> dict[str, Any]:
        """One raw page of finished, listed races (``{"count", "num_pages", "races"}``), newest first."""
        params: dict[str, str] = {"page": str(page), "per_page": str(per_page)}
        if show_entrants:
            params["show_entrants"] = "true"
        resp = await self._request(
            "past_races", "GET", f"/{_segment(category)}/races/data", params=params, retries=self._retries
        )
        data = self._json(resp, f"past races of {category}")
        if not isinstance(data, dict) or not isinstance(data.get("races"), list):
            raise RacetimeProtocolError(f"past races of {category}: unexpected body")
        return data

    async def cancel_race(self, category: str, slug: str) -> None:
        """Cancel a room through the bot websocket (the only way RaceTime.gg offers).

        Returns once RaceTime.gg broadcasts the race as cancelled; a race that is already cancelled
        counts as success. ``RacetimeConflict`` when the race cannot be cancelled (e.g. finished).
        """
        url = f"{self._ws_base}/ws/o/bot/{_segment(slug)}"
        name = f"{category}/{slug}"
        try:
            async with (
                asyncio.timeout(self._timeout),
                aiohttp.ClientSession(headers={"User-Agent": self._user_agent}) as session,
            ):
                token = await self._ensure_token()
                if await self._cancel_over_socket(session, url, token, name):
                    return
                # The socket's token was refused (it expired, or the bot was re-created): RaceTime.gg
                # only checks it per action and has no re-authenticate action, so reconnect.
                token = await self._renew_token(token)
                if await self._cancel_over_socket(session, url, token, name):
                    return
                raise RacetimeAuthError(f"cancel of {name}: RaceTime.gg denied the bot permission")
        except TimeoutError as exc:
            raise RacetimeUnavailable(f"cancel of {name}: no confirmation within {self._timeout} s") from exc
        except aiohttp.WSServerHandshakeError as exc:
            # The bot socket accepts any token, so a refused handshake means an unknown race.
            if exc.status in (403, 404):
                raise RacetimeNotFound(f"cancel of {name}: no such race", status=exc.status) from exc
            raise RacetimeUnavailable(f"cancel of {name}: websocket refused ({exc.status})", status=exc.status) from exc
        except aiohttp.ClientError as exc:
            raise RacetimeUnavailable(f"cancel of {name}: {type(exc).__name__}") from exc

    def bot_socket_url(self, slug: str) -> str:
        return f"{self._ws_base}/ws/o/bot/{_segment(slug)}"

    async def bot_token(self, *, refused: str | None = None) -> str:
        """The bot token for a websocket; `refused`: the token a socket was denied with (get a fresh one)."""
        if refused is not None:
            return await self._renew_token(refused)
        return await self._ensure_token()

    async def _cancel_over_socket(self, session: aiohttp.ClientSession, url: str, token: str, name: str) -> bool:
        """One connection: True once cancelled, False if the token was refused."""
        self.stats["cancel"] += 1
        async with session.ws_connect(url, headers=_bearer(token)) as ws:
            sent = False
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    message = json.loads(frame.data)
                except ValueError as exc:
                    raise RacetimeProtocolError(f"cancel of {name}: websocket sent invalid JSON") from exc
                kind = message.get("type")
                if kind == "race.data":
                    race = message.get("race") or {}
                    if race.get("name") != name:
                        # The socket is routed by slug alone; never cancel another category's race.
                        raise RacetimeNotFound(f"cancel of {name}: the socket serves {race.get('name')!r}")
                    if (race.get("status") or {}).get("value") == "cancelled":
                        return True
                    if not sent:
                        await ws.send_json({"action": "cancel"})
                        sent = True
                elif kind == "error":
                    errors = [str(e) for e in message.get("errors") or []]
                    text = "; ".join(errors) or "unknown error"
                    if any(_PERMISSION_DENIED in e for e in errors):
                        return False
                    if any(e.startswith("Cannot cancel") for e in errors):
                        if "in cancelled state" in text:  # someone else cancelled it first
                            return True
                        raise RacetimeConflict(f"cancel of {name}: {text}")
                    raise RacetimeError(f"cancel of {name}: {text}")
        raise RacetimeUnavailable(f"cancel of {name}: the websocket closed before the cancel was confirmed")

    # ------------------------------------------------------------------ user OAuth (/racetime link)

    def authorize_url(self, redirect_uri: str, state: str, scope: str = "read") -> str:
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": redirect_uri,
                "scope": scope,
                "state": state,
            }
        )
        return f"{self.base_url}/o/authorize?{query}"

    async def exchange_code(self, code: str, redirect_uri: str) -> UserToken:
        """Trade an authorization code for a user token. Not retried: a code works once."""
        return await self._user_token(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, "code exchange"
        )

    async def refresh_user_token(self, refresh_token: str) -> UserToken:
        return await self._user_token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}, "user token refresh"
        )

    async def userinfo(self, access_token: str) -> User:
        """The user a user token belongs to (``GET /o/userinfo``, scope ``read``)."""
        resp = await self._request(
            "userinfo", "GET", "/o/userinfo", headers=_bearer(access_token), retries=self._retries
        )
        data = self._json(resp, "userinfo")
        return self._parse(User.from_json, data, "userinfo")

    async def _user_token(self, fields: dict[str, str], what: str) -> UserToken:
        form = {**fields, "client_id": self._client_id, "client_secret": self._client_secret}
        resp = await self._request("user_token", "POST", "/o/token", data=form, retries=0)
        data = self._token_json(resp, what)
        return self._parse(
            lambda d, _base: UserToken(
                access_token=str(d["access_token"]),
                refresh_token=d.get("refresh_token"),
                expires_in=int(d.get("expires_in", _DEFAULT_TOKEN_LIFETIME)),
                scope=str(d.get("scope", "")),
            ),
            data,
            what,
        )

    # ------------------------------------------------------------------ bot token

    async def _ensure_token(self) -> str:
        if self._token is not None and self._clock() < self._token_renew_at:
            return self._token
        async with self._token_lock:
            if self._token is not None and self._clock() < self._token_renew_at:
                return self._token
            try:
                return await self._fetch_token()
            except RacetimeUnavailable:
                # Renewing early failed, but the current token is still good for a while.
                if self._token is not None and self._clock() < self._token_expires_at:
                    log.warning("RaceTime.gg token renewal failed; keeping the current token for now")
                    return self._token
                raise

    async def _renew_token(self, refused: str) -> str:
        """A fresh token after ``refused`` got a 403; callers that raced here share one fetch."""
        async with self._token_lock:
            if self._token is not None and self._token != refused:
                return self._token
            return await self._fetch_token()

    async def _fetch_token(self) -> str:
        try:
            token = await self._fetch_token_once()
        except RacetimeError as exc:
            if self.observer is not None:
                self.observer.token(False, str(exc))
            raise
        if self.observer is not None:
            self.observer.token(True)
        return token

    async def _fetch_token_once(self) -> str:
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret,
            "grant_type": "client_credentials",
        }
        # Retrying is safe here: an extra token costs nothing.
        resp = await self._request("token", "POST", "/o/token", data=form, retries=self._retries)
        data = self._token_json(resp, "bot token")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise RacetimeProtocolError("bot token: no access_token in the response", status=resp.status_code)
        try:
            lifetime = float(data.get("expires_in", _DEFAULT_TOKEN_LIFETIME))
        except (TypeError, ValueError) as exc:
            raise RacetimeProtocolError("bot token: expires_in is not a number") from exc
        now = self._clock()
        self._token = token
        self._token_expires_at = now + lifetime
        self._token_renew_at = self._token_expires_at - token_refresh_margin(lifetime)
        log.info("got a RaceTime.gg bot token valid for %d s", lifetime)
        return token

    def _token_json(self, resp: httpx.Response, what: str) -> dict[str, Any]:
        if resp.status_code in (400, 401):
            try:
                code = resp.json().get("error", "")
            except (ValueError, AttributeError):
                code = ""
            raise RacetimeAuthError(
                f"{what}: RaceTime.gg refused ({code or resp.status_code})", status=resp.status_code
            )
        data = self._json(resp, what)
        if not isinstance(data, dict):
            raise RacetimeProtocolError(f"{what}: unexpected body", status=resp.status_code)
        return data

    # ------------------------------------------------------------------ plumbing

    async def _authed(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        retries: int,
        data: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A call with the bot token: on 403 one fresh token and one more try, then ``RacetimeAuthError``."""
        token = await self._ensure_token()
        resp = await self._request(kind, method, path, headers=_bearer(token), data=data, retries=retries)
        if resp.status_code != 403:
            return resp
        log.info("RaceTime.gg answered 403 to %s %s; renewing the token once", method, path)
        token = await self._renew_token(token)
        resp = await self._request(kind, method, path, headers=_bearer(token), data=data, retries=retries)
        if resp.status_code == 403:
            raise RacetimeAuthError(
                f"{method} {path}: 403 with a fresh token (bot not allowed in this category, or race over)",
                status=403,
            )
        return resp

    async def _request(
        self,
        kind: str,
        method: str,
        path: str,
        *,
        retries: int,
        headers: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """Send with up to ``retries`` retries on ``RacetimeUnavailable``, all within ``timeout``."""
        started = self._clock()
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RacetimeUnavailable),
            stop=stop_after_attempt(retries + 1) | stop_before_delay(self._timeout),
            wait=wait_exponential(multiplier=self._retry_backoff),
            before_sleep=functools.partial(self._log_retry, method, path, retries),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                remaining = self._timeout - (self._clock() - started)
                return await self._send(kind, method, path, headers, data, params, remaining)
        raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover

    @staticmethod
    def _log_retry(method: str, path: str, retries: int, state: RetryCallState) -> None:
        log.info(
            "%s %s failed (%s); retry %d/%d in %.2f s",
            method,
            path,
            state.outcome.exception() if state.outcome else "?",
            state.attempt_number,
            retries,
            state.next_action.sleep if state.next_action else 0.0,
        )

    async def _send(
        self,
        kind: str,
        method: str,
        path: str,
        headers: dict[str, str] | None,
        data: dict[str, str] | None,
        params: dict[str, str] | None,
        budget: float,
    ) -> httpx.Response:
        self.stats[kind] += 1
        budget = max(budget, 0.001)
        timeout = httpx.Timeout(min(self._timeout, budget), connect=min(self._connect_timeout, budget))
        try:
            resp = await self._http.request(
                method, self.base_url + path, headers=headers, data=data, params=params, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            self._observe(kind, "timeout")
            raise RacetimeUnavailable(f"{method} {path}: timed out") from exc
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            self._observe(kind, "error")
            raise RacetimeUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            self._observe(kind, "error")
            raise RacetimeError(f"{method} {path}: {type(exc).__name__}: {exc}") from exc
        self._observe(kind, str(resp.status_code))
        log.debug("%s %s -> %d", method, path, resp.status_code)
        if resp.status_code >= 500 or resp.status_code == 429:
            raise RacetimeUnavailable(f"{method} {path}: HTTP {resp.status_code}", status=resp.status_code)
        return resp

    def _observe(self, kind: str, status: str) -> None:
        if self.observer is not None:
            self.observer.request(kind, status)

    def _json(self, resp: httpx.Response, what: str) -> Any:
        if resp.status_code != 200:
            raise self._error(resp, what)
        try:
            return resp.json()
        except ValueError as exc:
            raise RacetimeProtocolError(f"{what}: the body is not JSON", status=resp.status_code) from exc

    def _parse(self, from_json: Callable[[Any, str], Any], data: Any, what: str) -> Any:
        try:
            return from_json(data, self.base_url)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise RacetimeProtocolError(f"{what}: unexpected shape ({type(exc).__name__}: {exc})") from exc

    def _error(self, resp: httpx.Response, what: str) -> RacetimeError:
        status = resp.status_code
        if status == 422:
            try:
                errors = resp.json()["errors"]
                if not isinstance(errors, dict):
                    raise TypeError
                return RacetimeValidationError(
                    {str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in errors.items()}
                )
            except (ValueError, KeyError, TypeError, AttributeError):
                return RacetimeProtocolError(f"{what}: 422 without an errors dict", status=422)
        if status in (401, 403):
            return RacetimeAuthError(f"{what}: HTTP {status}", status=status)
        if status == 404:
            return RacetimeNotFound(f"{what}: not found", status=404)
        return RacetimeProtocolError(f"{what}: unexpected HTTP {status}", status=status)
