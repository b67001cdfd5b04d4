"""The fake RaceTime.gg's HTTP routes: OAuth, category and race data, startrace and edit."""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from tests.fakes.racetime_server.forms import (
    ALL_SCOPES,
    CURRENT,
    DONE,
    EDIT_FIELDS,
    START_FIELDS,
    STARTED_EDIT_FIELDS,
    clean_race_form,
)
from tests.fakes.racetime_server.state import FakeApp, FakeCategory, FakeRoom, FakeToken


class Routes:
    """Mixed into ``FakeRacetime``: the HTTP handlers."""

    def _create_room(self, category: FakeCategory, cleaned: dict[str, Any], bot_name: str) -> FakeRoom:
        not_settings = ("goal", "custom_goal", "invitational", "info_user", "info_bot", "recordable")
        settings = {k: v for k, v in cleaned.items() if k not in not_settings}
        if not category.allow_hide_entrants:
            settings["hide_entrants"] = False
        if not category.allow_partitionable:
            settings["partitionable"] = False
        if settings["hide_entrants"]:
            settings.update(allow_prerace_chat=False, allow_midrace_chat=False, allow_non_entrant_chat=False)
        custom = cleaned["custom_goal"] is not None
        room = FakeRoom(
            category=category,
            slug=self._new_slug(),
            status="invitational" if cleaned["invitational"] else "open",
            goal_name=cleaned["custom_goal"] if custom else cleaned["goal"],
            goal_custom=custom,
            opened_at=self.now(),
            opened_by_bot=bot_name,
            settings=settings,
            info_user=cleaned["info_user"],
            info_bot=cleaned["info_bot"],
            recordable=settings["ranked"] and not custom,
        )
        self.rooms.append(room)
        self._chat_message(room, f"Race opened automatically by {bot_name}")
        return room

    # ---------------------------------------------------------------- HTTP: OAuth

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}

        def reply(data: dict[str, Any], status: int = 200) -> web.Response:
            return web.json_response(data, status=status, headers=headers)

        grant = form.get("grant_type")
        if grant not in ("client_credentials", "authorization_code", "refresh_token"):
            return reply({"error": "unsupported_grant_type"}, 400)
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return reply({"error": "invalid_client"}, 401)
        app = self.apps.get(str(client_id or ""))
        if app is None or not app.active or app.client_secret != secret:
            return reply({"error": "invalid_client"}, 401)
        allowed = (
            ("client_credentials",)
            if app.grant_type == "client_credentials"
            else ("authorization_code", "refresh_token")
        )
        if grant not in allowed:
            return reply({"error": "unauthorized_client"}, 400)

        if grant == "client_credentials":
            requested = str(form.get("scope") or " ".join(ALL_SCOPES)).split()
            if any(s not in ALL_SCOPES for s in requested):
                return reply({"error": "invalid_scope"}, 400)
            token = self._issue(app, tuple(s for s in ALL_SCOPES if s in requested))
            return reply(self._token_body(token))
        if grant == "authorization_code":
            code = form.get("code")
            if not code:
                return reply({"error": "invalid_request", "error_description": "Missing code parameter."}, 400)
            grant_data = self._codes.pop(str(code), None)
            if (
                grant_data is None
                or grant_data["client_id"] != app.client_id
                or grant_data["redirect_uri"] != form.get("redirect_uri")
                or grant_data["expires_at"] <= time.monotonic()
            ):
                return reply({"error": "invalid_grant"}, 400)
            token = self._issue(app, grant_data["scopes"], user=grant_data["user"])
            return reply(self._token_body(token))
        old = next(
            (
                t
                for t in self.tokens.values()
                if t.refresh_token and t.refresh_token == form.get("refresh_token") and t.client_id == app.client_id
            ),
            None,
        )
        if old is None:
            return reply({"error": "invalid_grant"}, 400)
        del self.tokens[old.value]  # refresh tokens rotate; the old pair stops working
        token = self._issue(app, old.scopes, user=old.user)
        return reply(self._token_body(token))

    def _issue(self, app: FakeApp, scopes: tuple[str, ...], user: dict[str, Any] | None = None) -> FakeToken:
        token = FakeToken(
            value=self._secret(30),
            client_id=app.client_id,
            scopes=scopes,
            expires_at=time.monotonic() + self.token_expires_in,
            user=user,
            refresh_token=self._secret(30) if user is not None else None,
        )
        self.tokens[token.value] = token
        return token

    def _token_body(self, token: FakeToken) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": token.value,
            "expires_in": self.token_expires_in,
            "token_type": "Bearer",
            "scope": " ".join(token.scopes),
        }
        if token.refresh_token:
            body["refresh_token"] = token.refresh_token
        return body

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        app = self.apps.get(query.get("client_id", ""))
        redirect_uri = query.get("redirect_uri", "")
        if (
            app is None
            or app.grant_type != "authorization_code"
            or not redirect_uri
            or (app.redirect_uris is not None and redirect_uri not in app.redirect_uris)
        ):
            # DOT shows an error page instead of redirecting to an unverified URI.
            return web.Response(status=400, text="<h1>Invalid client or redirect_uri</h1>", content_type="text/html")
        params: dict[str, str] = {}
        scopes = tuple(s for s in ALL_SCOPES if s in query.get("scope", "read").split())
        if query.get("response_type") != "code":
            params["error"] = "unsupported_response_type"
        elif not self.oauth_approve:
            params["error"] = "access_denied"
        else:
            code = self._secret(30)
            self._codes[code] = {
                "client_id": app.client_id,
                "redirect_uri": redirect_uri,
                "scopes": scopes,
                "user": self.oauth_user,
                "expires_at": time.monotonic() + 600,
            }
            params["code"] = code
        if "state" in query:
            params["state"] = query["state"]
        separator = "&" if "?" in redirect_uri else "?"
        raise web.HTTPFound(f"{redirect_uri}{separator}{urlencode(params)}")

    async def _userinfo(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "read" not in token.scopes:
            return self._forbidden()
        if token.user is None:
            return self._forbidden("<h1>403 Forbidden</h1>")  # a bot token is an anonymous user
        return self._json_response({**token.user, "active_race": None})

    # ---------------------------------------------------------------- HTTP: data

    def _category_or_404(self, slug: str) -> FakeCategory:
        category = self.categories.get(slug)
        if category is None or not category.active:
            raise web.HTTPNotFound()
        return category

    def _tick_category(self, category: FakeCategory) -> None:
        for room in self.rooms:
            if room.category is category:
                self._tick(room)

    async def _category_data_public(self, request: web.Request) -> web.Response:
        category = self._category_or_404(request.match_info["cat"])
        self._tick_category(category)
        return self._json_response(self.category_json(category, include_unlisted=False), max_age=60)

    async def _category_data_oauth(self, request: web.Request) -> web.Response:
        slug = request.match_info["cat"]
        cached = self._category_cache.get(slug)
        if cached is not None and self.cache_clock() - cached[0] < self.cache_ttl:
            # Like the real site: a cache hit skips even the bot check.
            return web.Response(
                body=cached[1],
                content_type="application/json",
                headers={"Cache-Control": "public, max-age=60, must-revalidate"},
            )
        token = self._bearer(request)
        category = self._category_or_404(slug)
        if self._bot_of(token, category) is None:
            return self._forbidden()
        self._tick_category(category)
        response = self._json_response(self.category_json(category, include_unlisted=True), max_age=60)
        if self.cache_ttl > 0:
            self._category_cache[slug] = (self.cache_clock(), response.body)
        return response

    async def _race_data(self, request: web.Request) -> web.Response:
        self._category_or_404(request.match_info["cat"])
        try:
            room = self._room(request.match_info["slug"], request.match_info["cat"])
        except KeyError:
            raise web.HTTPNotFound() from None
        self._tick(room)
        return self._json_response(self.race_json(room), max_age=5)

    async def _past_races(self, request: web.Request) -> web.Response:
        category = self._category_or_404(request.match_info["cat"])
        try:
            page = int(request.query.get("page", "1"))
        except ValueError:
            return web.Response(status=400, text="", content_type="text/html")
        try:
            per_page = min(int(request.query.get("per_page", "10")), 100)
        except ValueError:
            per_page = 10
        per_page = max(per_page, 1)
        show_entrants = request.query.get("show_entrants", "").lower() in ("true", "yes", "1")
        self._tick_category(category)
        finished = [
            room
            for room in self.rooms
            if room.category is category and room.status == "finished" and not room.settings["unlisted"]
        ]
        finished.sort(key=lambda room: room.ended_at, reverse=True)
        num_pages = max(1, -(-len(finished) // per_page))
        chunk = finished[(page - 1) * per_page : page * per_page] if 1 <= page <= num_pages else []
        return self._json_response(
            {
                "count": len(finished),
                "num_pages": num_pages,
                "races": [self.summary_json(room, entrants=show_entrants) for room in chunk],
            }
        )

    # ---------------------------------------------------------------- HTTP: bot race management

    async def _startrace(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "create_race" not in token.scopes:
            return self._forbidden()
        category = self._category_or_404(request.match_info["cat"])
        cleaned, errors = clean_race_form(await request.post(), category.goals, START_FIELDS)
        if errors:
            return web.json_response({"errors": errors}, status=422)  # validation runs before the bot check
        bot = self._bot_of(token, category)
        if bot is None:
            return self._forbidden()
        room = self._create_room(category, cleaned, bot.name)
        return web.Response(status=201, headers={"Location": f"/{room.name}"}, content_type="text/html")

    async def _edit(self, request: web.Request) -> web.Response:
        token = self._bearer(request)
        if token is None or "create_race" not in token.scopes:
            return self._forbidden()
        category = self._category_or_404(request.match_info["cat"])
        try:
            room = self._room(request.match_info["slug"], category.slug)
        except KeyError:
            raise web.HTTPNotFound() from None
        self._tick(room)
        if room.status in DONE:
            return self._forbidden()
        started = room.status in CURRENT
        fields = STARTED_EDIT_FIELDS if started else EDIT_FIELDS
        cleaned, errors = clean_race_form(await request.post(), category.goals, fields)
        if errors:
            return web.json_response({"errors": errors}, status=422)
        bot = self._bot_of(token, category)
        if bot is None:
            return self._forbidden()
        self._apply_edit(room, cleaned, bot.name, started)
        return web.Response(status=200, content_type="text/html")

    def _apply_edit(self, room: FakeRoom, cleaned: dict[str, Any], bot: str, started: bool) -> None:
        """Full replace: every field of the form takes its posted value or its model default."""
        s = room.settings
        messages = []
        if not started:
            custom = cleaned["custom_goal"] is not None
            goal = cleaned["custom_goal"] if custom else cleaned["goal"]
            if (goal, custom) != (room.goal_name, room.goal_custom):
                messages.append(f"{bot} set a new goal: {goal}")
            room.goal_name, room.goal_custom = goal, custom
            room.info_bot = cleaned["info_bot"]
            room.recordable = cleaned["ranked"] and not custom
        if cleaned["info_user"] != room.info_user:
            messages.append(f"{bot} updated the race information.")
        room.info_user = cleaned["info_user"]
        if not started and cleaned["streaming_required"] != s["streaming_required"]:
            messages.append(
                "Streaming is now required for this race."
                if cleaned["streaming_required"]
                else "Streaming is now NOT required for this race."
            )
        if cleaned["chat_message_delay"] != s["chat_message_delay"]:
            seconds = int(cleaned["chat_message_delay"].total_seconds())
            messages.append(f"Chat delay is now {seconds} seconds." if seconds else "Chat delay has been removed.")
        for name, value in cleaned.items():
            if name not in s:
                continue
            if name == "require_even_teams" and not s["team_race"]:
                continue
            if name.startswith("allow_") and name.endswith("_chat") and s["hide_entrants"]:
                continue
            s[name] = value
        self._changed(room, *messages)

    # ---------------------------------------------------------------- websocket
