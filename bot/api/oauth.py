"""`GET /racetime/callback`: where RaceTime.gg sends a player's browser back after `/racetime link`.

The answer is a small HTML page (a person reads it, not a script) saying whether the link worked.
"""

from __future__ import annotations

import html
import logging

from aiohttp import web

from bot.api.registry import services_of
from bot.errors import DomainError, UpstreamUnavailable
from bot.services.account_links import CALLBACK_PATH

log = logging.getLogger(__name__)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Startline · {title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}}</style></head>
<body><h1>{title}</h1><p>{message}</p><p>You can close this page and go back to Discord.</p></body></html>
"""


def page(title: str, message: str, *, status: int) -> web.Response:
    body = PAGE.format(title=html.escape(title), message=html.escape(message))
    return web.Response(text=body, status=status, content_type="text/html", headers={"Cache-Control": "no-store"})


def _sentence(text: str) -> str:
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else text + "."


async def racetime_callback(request: web.Request) -> web.Response:
    query = request.query
    if query.get("error"):  # the user pressed "deny", or RaceTime.gg refused the request
        return page(
            "Not linked",
            "RaceTime.gg did not authorize the link, so nothing changed. Run /racetime link again to retry.",
            status=400,
        )
    try:
        player = await services_of(request).account_links.complete(query.get("code"), query.get("state"))
    except UpstreamUnavailable as exc:
        log.warning("RaceTime.gg link could not be finished: %s", exc.message)
        return page("Not linked yet", _sentence(exc.message), status=502)
    except DomainError as exc:
        return page("Not linked", _sentence(exc.message), status=400)
    return page(
        "Linked!",
        f"Your Discord account is now linked to the RaceTime.gg account {player.racetime_name}.",
        status=200,
    )


def setup(web_app: web.Application) -> None:
    web_app.router.add_get(CALLBACK_PATH, racetime_callback)
