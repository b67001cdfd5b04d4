"""Regenerate the per-route examples of docs/api.md from real requests to a real server.

    .venv/bin/python scripts/api_examples.py          # rewrites the part between the markers in docs/api.md

It starts the API on a temporary SQLite file with the test fixtures' small world and the fake RaceTime.gg
(tests/api/conftest.py), sends one request per route of the registry and writes each request and the answer it
really got. It fails if a route of the registry has no example, so the document cannot fall behind the code
(tests/api/test_api_examples.py runs it, without writing the document, in the suite).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.api.v1 import all_routes  # noqa: E402
from bot.settings import Settings  # noqa: E402
from tests.api.conftest import NEWCOMER_RACETIME, PLAYER_ID, PLAYER_RACETIME, start_api  # noqa: E402
from tests.conftest import make_settings  # noqa: E402

DOC = ROOT / "docs" / "api.md"
START, END = "<!-- examples:start -->", "<!-- examples:end -->"
MAX_LINES = 40


def _shorten(text: str) -> str:
    lines = text.splitlines()
    if len(lines) <= MAX_LINES:
        return text
    return "\n".join([*lines[:MAX_LINES], "  …"])


class Recorder:
    def __init__(self, client, tokens, *, racetime_url: str) -> None:
        self.client = client
        self.tokens = tokens
        self.racetime_url = racetime_url  # the fake's address, shown as the real site's
        self.sections: dict[tuple[str, str], str] = {}

    async def call(
        self,
        method: str,
        template: str,
        values: dict[str, Any] | None = None,
        *,
        body: Any = None,
        query: str = "",
        token: str | None = "manage",
        headers: dict[str, str] | None = None,
    ) -> Any:
        path = template.format(**(values or {})) + (f"?{query}" if query else "")
        sent = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        response = await self.client.request(method, path, json=body, headers=sent | (headers or {}))
        raw = (await response.read()).replace(self.racetime_url.encode(), b"https://racetime.gg")
        request_lines = [f"{method} {path}"]
        if token:
            request_lines.append(f"Authorization: Bearer slt_… ({token} token)")
        request_lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body is not None:
            request_lines += ["Content-Type: application/json", "", json.dumps(body, indent=2)]
        answer_lines = [f"HTTP/1.1 {response.status} {response.reason}"]
        for header in ("Location", "Idempotent-Replayed", "Retry-After", "WWW-Authenticate"):
            if header in response.headers:
                answer_lines.append(f"{header}: {response.headers[header]}")
        parsed: Any = None
        if raw:
            answer_lines.append("")
            if response.content_type == "application/json":
                parsed = json.loads(raw)
                shown = json.dumps(parsed, indent=2, ensure_ascii=False)
                answer_lines.append(_shorten(shown))
            else:
                answer_lines.append(_shorten(raw.decode()))
        section = "```http\n" + "\n".join(request_lines) + "\n```\n\n```http\n" + "\n".join(answer_lines) + "\n```\n"
        self.sections.setdefault((method, template), section)
        return parsed


async def record_examples(settings: Settings | None = None) -> dict[tuple[str, str], str]:
    """One example per route, by (method, path template). `settings`: the database to use (the tests' own);
    else a new SQLite file in a temporary folder."""
    if settings is None:
        settings = make_settings(Path(tempfile.mkdtemp(prefix="startline-doc-")))
    api = await start_api(settings)
    mine = api.mine
    r = Recorder(api.client, api.tokens, racetime_url=api.rt.base_url)
    later = (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0, microsecond=0)
    try:
        t = "/api/v1/tournaments"
        await r.call("GET", "/api/v1/health", token=None)
        created = await r.call(
            "POST",
            t,
            body={
                "name": "Spring Qualifier",
                "runs_per_pool": 2,
                "racetime_category": "alttpr",
                "racetime_goal": "Beat the game",
            },
        )
        t2 = {"tid": created["id"]}
        await r.call("GET", t, query="limit=2", token="read")
        await r.call("GET", t + "/{tid}", t2, token="read")
        await r.call("PATCH", t + "/{tid}", t2, body={"description": "Two runs per pool", "max_reattempts": 1})
        pools = t + "/{tid}/pools"
        pool = await r.call("POST", pools, {"tid": mine.tid}, body={"name": "Keysanity", "description": "Hard"})
        p2 = {"tid": mine.tid, "pid": pool["id"]}
        await r.call("GET", pools, {"tid": mine.tid}, token="read")
        await r.call("GET", pools + "/{pid}", p2, token="read")
        await r.call("PATCH", pools + "/{pid}", p2, body={"description": "Keysanity, hard"})
        seeds = pools + "/{pid}/seeds"
        seed = await r.call("POST", seeds, p2, body={"url": "https://alttpr.com/h/Xy12Ab", "notes": "fast"})
        s2 = {**p2, "sid": seed["id"]}
        batch = {
            "seeds": [
                {"url": "https://alttpr.com/h/Qw34Er", "notes": "slow"},
                {"url": "https://alttpr.com/h/Ty56Ui"},
            ]
        }
        await r.call("POST", seeds + "/batch", p2, body=batch)
        await r.call("GET", seeds, p2, token="read")
        await r.call("GET", seeds + "/{sid}", s2)
        await r.call("PATCH", seeds + "/{sid}", s2, body={"notes": "fast, no glitches"})
        profiles = "/api/v1/room-profiles"
        profile = await r.call("POST", profiles, body={"name": "Streamed", "streaming_required": True, "time_limit": 6})
        r2 = {"profile_id": profile["id"]}
        await r.call("GET", profiles, token="read")
        await r.call("GET", profiles + "/{profile_id}", r2, token="read")
        await r.call("PATCH", profiles + "/{profile_id}", r2, body={"start_delay": 30, "time_limit": None})

        races = t + "/{tid}/live-races"
        race = races + "/{rid}"
        new_race = await r.call(
            "POST",
            races,
            {"tid": mine.tid},
            body={
                "pool_id": mine.pid,
                "scheduled_at": later.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "title": "Week 3 race",
                "episode_id": "week-3",
                "room_profile_id": profile["id"],
                "room": {"start_delay": 20},
            },
            headers={"Idempotency-Key": "5f0c2a8e-week-3"},
        )
        l2 = {"tid": mine.tid, "rid": new_race["id"]}
        l1 = {"tid": mine.tid, "rid": mine.rid}
        await r.call("GET", races, {"tid": mine.tid}, query="status=scheduled&limit=1", token="read")
        await r.call("GET", race, l2, token="read")
        await r.call("PATCH", race, l2, body={"title": "Week 3 race (rescheduled)"})
        await r.call("GET", race + "/eligible", l1, token="read")
        rsvp = race + "/rsvps/{discord_user_id}"
        r3 = {**l1, "discord_user_id": str(PLAYER_ID)}  # the seeded player, also Interested in the seeded race
        await r.call("PUT", rsvp, r3)
        await r.call("GET", race + "/rsvps", l1, token="read")
        await r.call("DELETE", rsvp, r3)
        opened = await r.call("POST", race + "/open", l2)
        slug = opened["racetime"]["slug"]
        for user in (PLAYER_RACETIME, NEWCOMER_RACETIME):
            api.rt.add_entrant(slug, user)
        api.rt.start(slug)
        api.rt.finish_entrant(slug, PLAYER_RACETIME["id"], timedelta(hours=1, minutes=42, seconds=7.5))
        api.rt.dnf(slug, NEWCOMER_RACETIME["id"])
        await r.call("POST", race + "/record", l2, body={"force": False})
        await r.call("GET", race + "/results", l2, token="read")
        await r.call("GET", race + "/notifications", l1)
        await r.call("POST", race + "/notifications/resend", l1)
        await r.call("GET", "/api/v1/live-races/scheduled", query=f"tournament_id={mine.tid}", token="read")
        await r.call("POST", race + "/cancel", l1, body={"reason": "The host is ill; new date soon."})
        await r.call("DELETE", race, l1)

        players = "/api/v1/players"
        alice = {"discord_user_id": "500000000000000001"}
        await r.call(
            "PUT",
            players + "/{discord_user_id}",
            alice,
            body={"display_name": "Alice", "racetime_id": "7BzeW5ErWom9Xgpb", "racetime_name": "alice"},
        )
        await r.call("GET", players, query="linked=true&limit=2", token="read")
        await r.call("GET", players + "/{discord_user_id}", alice, token="read")
        await r.call("PUT", players + "/{discord_user_id}/reminders", alice, body={"offsets_minutes": [1440, 60, 10]})
        await r.call("GET", players + "/{discord_user_id}/reminders", alice, token="read")
        runs = t + "/{tid}/runs"
        run = await r.call(
            "POST",
            runs,
            {"tid": mine.tid},
            body={
                "discord_user_id": "500000000000000001",
                "seed_id": mine.spare_sid,
                "status": "finished",
                "elapsed_seconds": 5712.25,
                "finished_at": "2026-11-28T20:35:12Z",
            },
        )
        await r.call("GET", runs, {"tid": mine.tid}, query="limit=1", token="read")
        await r.call("GET", runs + "/{run_id}", {"tid": mine.tid, "run_id": run["id"]}, token="read")
        await r.call("POST", runs + "/{run_id}/reattempt", {"tid": mine.tid, "run_id": run["id"]})
        await r.call("GET", t + "/{tid}/leaderboard", {"tid": mine.tid}, token="read")
        await season_examples(r, mine, later)
        await r.call("GET", "/api/v1/audit", query="limit=2", token="read")
        await r.call("GET", "/api/v1/status")
        await r.call("PUT", "/api/v1/settings/reminders", body={"offsets_minutes": [60, 1440]})
        await r.call("GET", "/api/v1/settings/reminders", token="read")
        feed = await r.call("GET", "/api/v1/calendar")
        await r.call("POST", "/api/v1/calendar/rotate")
        feed = await r.call("GET", "/api/v1/calendar")
        key = feed["url"].split("key=", 1)[1]
        await r.call("GET", "/api/v1/live-races.ics", query=f"key={key}", token=None)
        await r.call("GET", "/api/v1/openapi.json", token=None)

        await r.call("DELETE", seeds + "/{sid}", s2)
        await r.call("DELETE", pools + "/{pid}", p2)
        await r.call("DELETE", profiles + "/{profile_id}", r2)
        await r.call("DELETE", t + "/{tid}", t2)
    finally:
        await api.close()
    return r.sections


async def season_examples(r: Recorder, mine: Any, later: datetime) -> None:
    """Issue 15: templates, series, batches, phases and seasons."""
    tid = {"tid": mine.tid}
    t = "/api/v1/tournaments/{tid}"
    templates = t + "/templates"
    template = await r.call(
        "POST",
        templates,
        tid,
        body={
            "name": "Weekly",
            "pool_ids": [mine.pid],
            "title_pattern": "Week {n} — {pool}",
            "start_time": "20:00",
            "timezone": "Europe/Berlin",
            "room_open_lead_minutes": 30,
            "announcement_channel_id": "223344556677889900",
            "announcement_role_id": "334455667788990011",
        },
    )
    x2 = {**tid, "template_id": template["id"]}
    await r.call("GET", templates, tid, token="read")
    await r.call("GET", templates + "/{template_id}", x2, token="read")
    await r.call("PATCH", templates + "/{template_id}", x2, body={"start_time": "20:30"})
    await r.call(
        "POST", templates + "/{template_id}/races", x2, body={"when": (later + timedelta(days=3)).date().isoformat()}
    )
    for index in range(6):  # seeds for the series' races (without them it pauses at once, as it should)
        await r.call(
            "POST",
            t + "/pools/{pid}/seeds",
            {**tid, "pid": mine.pid},
            body={"url": f"https://alttpr.com/h/week{index}"},
        )
    series = t + "/series"
    made = await r.call(
        "POST",
        series,
        tid,
        body={"name": "Saturday night", "template_id": template["id"], "rrule": "FREQ=WEEKLY;BYDAY=SA", "count": 12},
    )
    y2 = {**tid, "series_id": made["id"]}
    await r.call("GET", series, tid, token="read")
    await r.call("GET", series + "/{series_id}", y2, token="read")
    first, second = made["next_occurrences"][0]["date"], made["next_occurrences"][1]["date"]
    await r.call("POST", series + "/{series_id}/skip", y2, body={"date": first})
    await r.call("POST", series + "/{series_id}/move", y2, body={"date": second, "to": f"{second}T18:00:00Z"})
    await r.call("PATCH", series + "/{series_id}", y2, body={"status": "paused"})
    await r.call("DELETE", series + "/{series_id}", y2)
    await r.call("DELETE", templates + "/{template_id}", x2)
    stamp = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    await r.call(
        "POST",
        t + "/live-races/batch",
        tid,
        body={
            "races": [
                {"pool_id": mine.pid, "scheduled_at": stamp, "title": "Night 1"},
                {"pool_id": 999, "scheduled_at": stamp},
            ]
        },
    )
    phases = t + "/phases"
    qualifier = {**tid, "phase_id": mine.phase_id}
    final = await r.call("POST", phases, tid, body={"name": "Top 8", "advance_count": 8})
    await r.call("GET", phases, tid, token="read")
    await r.call("GET", phases + "/{phase_id}", qualifier, token="read")
    await r.call("PATCH", phases + "/{phase_id}", {**tid, "phase_id": final["id"]}, body={"advance_count": 4})
    await r.call("GET", phases + "/{phase_id}/leaderboard", qualifier, token="read")
    await r.call("POST", phases + "/{phase_id}/close", qualifier, body={"top": 8})
    await r.call("GET", phases + "/{phase_id}/standings", qualifier, token="read")
    await r.call("DELETE", phases + "/{phase_id}", {**tid, "phase_id": final["id"]})
    seasons = "/api/v1/seasons"
    season = await r.call(
        "POST", seasons, body={"name": "2026", "rule": "best", "best_of": 3, "tournament_ids": [mine.tid]}
    )
    z2 = {"season_id": season["id"]}
    await r.call("GET", seasons, token="read")
    await r.call("GET", seasons + "/{season_id}", z2, token="read")
    await r.call("PATCH", seasons + "/{season_id}", z2, body={"description": "Best three weeks count"})
    await r.call("GET", seasons + "/{season_id}/leaderboard", z2, token="read")
    await r.call("DELETE", seasons + "/{season_id}", z2)


def render(sections: dict[tuple[str, str], str]) -> str:
    routes = [route for route in all_routes() if route.alias_of is None]  # old names: the "Aliases" section
    missing = [f"{route.method} {route.path}" for route in routes if (route.method, route.path) not in sections]
    if missing:
        raise SystemExit(f"no example for: {', '.join(missing)}")
    parts = []
    tag = None
    for route in routes:
        if route.tag != tag:
            tag = route.tag
            parts.append(f"### {tag.capitalize()}\n")
        scope = f"scope `{route.scope.value}`" if route.scope else "no token"
        parts.append(f"#### `{route.method} {route.path}`\n\n{route.summary} ({scope}).")
        if route.description:
            parts.append(re.sub(r"^Scope: `\w+`\. ?", "", route.description))
        body = sections[(route.method, route.path)]
        if route.path.endswith("openapi.json"):
            body = "The OpenAPI 3.1 document (JSON) describing every route above.\n"
        parts.append(body)
    return "\n\n".join(parts)


def main() -> int:
    sections = asyncio.run(record_examples())
    text = DOC.read_text()
    before, rest = text.split(START, 1)
    _, after = rest.split(END, 1)
    DOC.write_text(f"{before}{START}\n\n{render(sections)}\n{END}{after}")
    print(f"wrote {len(sections)} examples into {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
