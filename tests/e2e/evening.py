"""A whole tournament evening through the real process, the fake RaceTime.gg and (optionally) a fake Discord.

`run_evening` starts the fakes on loopback and `run.py` on a new database (a temporary SQLite file, or the
emptied PostgreSQL database of STARTLINE_TEST_DATABASE_URL), then drives everything as a tournament's organizers
and players would: the REST API (with a token from `run.py token create`) for the setup, RaceTime.gg rooms for
the racing, and the database only for what has no API. It returns what it read back (`EveningOutcome`); the
tests compare that with the plan and with other runs.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bot.services.scheduled_events import race_marker
from db.models import EVENT_SPECS, Notification, NotificationSubscription, Player
from tests.e2e.faults import FaultPlan
from tests.e2e.harness import (
    GUILD,
    Api,
    StartlineProcess,
    create_token,
    direct_engine,
    free_port,
    fresh_database_url,
    process_env,
    settings_env,
    wait_until,
)
from tests.e2e.tournament import (
    ANNOUNCEMENT_CHANNEL,
    ANNOUNCEMENT_ROLE,
    DELETED,
    DELETED_START_MINUTES,
    EVENTS,
    GLOBAL_BUT_SCHEDULED_HERE,
    GOAL,
    GUILD_ALL,
    MOVED,
    MOVED_STARTS_MINUTES,
    NOTHING,
    POOLS,
    REMINDER_OFFSETS,
    ROOM_OPEN_LEAD_MINUTES,
    RSVP_TAKEN_BACK,
    RSVPS,
    RUNS_PER_POOL,
    SEEDS_PER_POOL,
    TOURNAMENT,
    PlannedRace,
    TournamentPlan,
    seed_url,
)
from tests.fakes.discord_rest import EVENTS_ROUTE, FakeDiscordRest
from tests.fakes.racetime_server import FakeRacetime

DEADLINE = 120.0  # seconds any one condition may take, restarts and outages included
SCHEDULE_AHEAD = timedelta(minutes=ROOM_OPEN_LEAD_MINUTES, seconds=4)  # rooms open ~4 s after scheduling
SCHEDULE_GAP = timedelta(seconds=2)
MESSAGE_DELAY = 0.005  # seconds the fake Discord takes per message, so a dispatch wave takes a while
LISTING_CACHE_SECONDS = 1.0  # the fake caches its category listing like RaceTime.gg (60 s there)
_FOOTER_RACE = re.compile(r"race #(\d+)")
_TITLES = {f"{spec.emoji} {spec.headline}:": spec.name for spec in EVENT_SPECS}
SETTLED = "sent or expired"  # the snapshot's status of a message that is done with


@dataclass
class EveningOutcome:
    """What the evening left behind, read back through the API (and the database file where it has no
    route), plus what the fakes saw."""

    plan: TournamentPlan
    discord: bool
    snapshot: dict[str, Any]
    results: dict[str, list[dict[str, Any]]]
    races: dict[str, dict[str, Any]]
    runs: list[dict[str, Any]]
    leaderboard: dict[str, Any]
    audit: list[dict[str, Any]]
    eligible_first_race: set[int]
    delivery_log: dict[str, list[dict[str, Any]]]
    seed_urls: dict[int, str]
    extra_ids: dict[str, int] = field(default_factory=dict)  # episode -> id of the races that never open
    extras: dict[str, Any] = field(default_factory=dict)  # what became of them (the API's view)
    # Discord Scheduled Events by episode: the event as it is now, and its changes in order (the fake's log).
    scheduled_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    event_history: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    living_posts: dict[str, dict[str, Any]] = field(default_factory=dict)  # episode -> its announcement now
    living_post_edits: Counter = field(default_factory=Counter)  # episode -> edits of its announcement at Discord
    outbox: dict[str, str] = field(default_factory=dict)  # dedupe key (as in the snapshot) -> status
    dms: Counter = field(default_factory=Counter)  # (event, episode, discord user id) -> messages at Discord
    dm_results: dict[tuple[str, int], dict[str, str]] = field(default_factory=dict)  # 418 fields by (ep, uid)
    posts: Counter = field(default_factory=Counter)  # (event, episode) -> announcements at Discord
    facts: dict[str, Any] = field(default_factory=dict)  # counts and timings for the report


@dataclass
class Evening:
    plan: TournamentPlan
    api: Api
    racetime: FakeRacetime
    database_url: str
    faults: FaultPlan | None
    race_ids: dict[str, int] = field(default_factory=dict)
    extra_ids: dict[str, int] = field(default_factory=dict)  # the races that never open (issue 13)
    tournament_id: int = 0
    pool_ids: dict[str, int] = field(default_factory=dict)
    seed_ids: dict[str, int] = field(default_factory=dict)  # url -> id

    async def phase(self, name: str, *, requests: int = 0) -> None:
        if self.faults is not None:
            await self.faults.enter(name, requests=requests)

    # ---- the organizers' script --------------------------------------------------------------------
    async def set_up_tournament(self) -> None:
        await self.phase("setup", requests=1 + len(POOLS) * (1 + SEEDS_PER_POOL))
        tournament = await self.create_or_find(
            "/api/v1/tournaments",
            {
                "name": TOURNAMENT,
                "runs_per_pool": RUNS_PER_POOL,
                "racetime_category": "alttpr",
                "racetime_goal": GOAL,
                "announcement_channel_id": str(ANNOUNCEMENT_CHANNEL),
                "announcement_role_id": str(ANNOUNCEMENT_ROLE),
                "room_open_lead_minutes": ROOM_OPEN_LEAD_MINUTES,
                # Every race is mirrored as a Discord Scheduled Event, checked at the fake from creation to the end.
                "scheduled_events": True,
            },
            key="name",
        )
        self.tournament_id = tournament["id"]
        base = f"/api/v1/tournaments/{self.tournament_id}"
        for pool in POOLS:
            created = await self.create_or_find(f"{base}/pools", {"name": pool}, key="name")
            self.pool_ids[pool] = created["id"]
            for seed in range(SEEDS_PER_POOL):
                body = {"url": seed_url(pool, seed), "notes": f"{pool} seed {seed + 1}"}
                made = await self.create_or_find(f"{base}/pools/{created['id']}/seeds", body, key="url")
                self.seed_ids[made["url"]] = made["id"]

    async def import_roster(self) -> None:
        reminders = REMINDER_OFFSETS if self.plan.extras else {}
        await self.phase("roster", requests=len(self.plan.players) + len(reminders))
        for player in self.plan.players:
            body = {
                "display_name": player.display_name,
                "racetime_id": player.racetime_id,
                "racetime_name": player.racetime_user["name"],
            }
            await self.api.call("PUT", f"/api/v1/players/{player.discord_user_id}", json=body)
        for index, offsets in reminders.items():  # the players' /notify reminders:, through the API
            path = f"/api/v1/players/{self.plan.players[index].discord_user_id}/reminders"
            await self.api.call("PUT", path, json={"offsets_minutes": list(offsets)})

    async def import_earlier_runs(self) -> None:
        await self.phase("history", requests=len(self.plan.earlier_runs))
        for run in self.plan.earlier_runs:
            body: dict[str, Any] = {
                "discord_user_id": str(run.player.discord_user_id),
                "seed_id": self.seed_ids[seed_url(run.pool, run.seed)],
                "status": run.status,
                "finished_at": run.finished_at,
            }
            if run.elapsed_us is not None:
                body["elapsed_seconds"] = run.elapsed_us / 1_000_000
            # A repeat after a restart finds the run already there (409): it was imported.
            await self.api.call("POST", f"/api/v1/tournaments/{self.tournament_id}/runs", json=body, ok=(201, 409))

    async def opt_in(self) -> None:
        """The players turn notifications on with /notify in Discord, which the API does not offer: their
        choices are written into the database directly, as the bot would store them."""
        rows = []
        engine = direct_engine(self.database_url)
        async with engine.begin() as connection:
            ids = dict((await connection.execute(select(Player.discord_user_id, Player.id))).all())
            for player in self.plan.players:
                kind, pid = player.subscription, ids[player.discord_user_id]
                if kind == NOTHING:
                    continue
                guild = GUILD if kind == GUILD_ALL else None
                rows += [{"player_id": pid, "event_type": event, "guild_id": guild, "active": True} for event in EVENTS]
                for event in ("live_race_cancelled", "live_race_rescheduled"):
                    rows.append({"player_id": pid, "event_type": event, "guild_id": guild, "active": True})
                if kind == GLOBAL_BUT_SCHEDULED_HERE:
                    rows.append({"player_id": pid, "event_type": EVENTS[0], "guild_id": GUILD, "active": False})
            await connection.execute(NotificationSubscription.__table__.insert(), rows)
        await engine.dispose()

    async def schedule_races(self) -> None:
        extra = 2 + len(RSVPS) + 2 + len(MOVED_STARTS_MINUTES) - 1 if self.plan.extras else 0
        await self.phase("schedule", requests=len(self.plan.races) + extra)
        base = f"/api/v1/tournaments/{self.tournament_id}/live-races"
        for number, race in enumerate(self.plan.races):
            starts = datetime.now(UTC) + SCHEDULE_AHEAD + number * SCHEDULE_GAP
            body = {
                "pool_id": self.pool_ids[race.pool],
                "scheduled_at": starts.isoformat(),
                "title": race.title,
                "episode_id": race.episode,
            }
            created = await self.create_or_find(base, body, key="episode_id")
            self.race_ids[race.episode] = created["id"]
        if self.plan.extras:
            await self.schedule_the_races_that_never_open()

    async def schedule_the_races_that_never_open(self) -> None:
        """Two races hours ahead: players RSVP one (one takes it back) and a moderator moves it twice, within the
        collapse window, to 50 minutes ahead, where reminders fall due; the other is deleted at the end."""
        base = f"/api/v1/tournaments/{self.tournament_id}/live-races"
        for (episode, pool), minutes in ((MOVED, MOVED_STARTS_MINUTES[0]), (DELETED, DELETED_START_MINUTES)):
            body = {
                "pool_id": self.pool_ids[pool],
                "scheduled_at": _start_in(minutes).isoformat(),
                "title": f"{TOURNAMENT} – {pool} ({episode})",
                "episode_id": episode,
            }
            self.extra_ids[episode] = (await self.create_or_find(base, body, key="episode_id"))["id"]
        moved = f"{base}/{self.extra_ids[MOVED[0]]}"
        for index in (*RSVPS, RSVP_TAKEN_BACK):  # repeating an RSVP changes nothing: a repeat is harmless
            await self.api.call("PUT", f"{moved}/rsvps/{self.plan.players[index].discord_user_id}")
        await self.api.call("DELETE", f"{moved}/rsvps/{self.plan.players[RSVP_TAKEN_BACK].discord_user_id}")
        for minutes in MOVED_STARTS_MINUTES[1:]:
            await self.move(self.extra_ids[MOVED[0]], _start_in(minutes))

    async def move(self, race_id: int, starts: datetime) -> None:
        """PATCH a new start. A move is no idempotent request: when the process died before answering, the script
        reads the race back and moves it only if the first attempt did not (a repeat would be an edit of its own)."""
        path = f"/api/v1/tournaments/{self.tournament_id}/live-races/{race_id}"
        body = {"scheduled_at": starts.isoformat()}
        try:
            await self.api.call("PATCH", path, json=body, repeat=False)
        except httpx.TransportError:
            if datetime.fromisoformat((await self.race(race_id))["scheduled_at"]) != starts:
                await self.api.call("PATCH", path, json=body)

    async def delete_the_deleted_race(self) -> None:
        """Once its scheduled notices went out (the players were told), the race is deleted: the cancelled notice."""
        race_id = self.extra_ids[DELETED[0]]
        dms = self.plan.expected_dms()
        expected = sum(1 for event, episode, _ in dms if (event, episode) == (EVENTS[0], DELETED[0]))

        async def told() -> bool:
            log = await self.delivery_log(race_id)
            return sum(row["event_type"] == EVENTS[0] and row["status"] == "sent" for row in log) == expected + 1

        await wait_until(told, f"the {expected} scheduled notices of {DELETED[0]} and its post", deadline=DEADLINE)
        path = f"/api/v1/tournaments/{self.tournament_id}/live-races/{race_id}"
        try:
            await self.api.call("DELETE", path, repeat=False)
        except httpx.TransportError:  # no answer: the first attempt deleted it if it is gone
            if "error" not in await self.api.call("GET", path, ok=(200, 404)):
                await self.api.call("DELETE", path)

    async def wait_for_rooms(self) -> dict[str, str]:
        await self.phase("rooms")
        slugs = {}
        for episode, race_id in self.race_ids.items():
            race = await self.wait_for_status(race_id, "room_open")
            slugs[episode] = race["racetime"]["slug"]
        return slugs

    async def run_race(self, race: PlannedRace, slug: str) -> None:
        """The players join the room and race it on RaceTime.gg; a moderator disqualifies one of them."""
        rt = self.racetime
        await self.phase(f"{race.episode} start")
        for entrant in race.entrants:
            rt.add_entrant(slug, entrant.racetime_user, ready=True)
        rt.start_race(slug)
        await self.wait_for_status(self.race_ids[race.episode], "in_progress")
        await self.phase(f"{race.episode} results")
        order = {"dq": 0, "dnf": 1, "done": 2}  # the last finisher ends the race
        for entrant in sorted(race.entrants, key=lambda e: (order[e.outcome], e.finish_us or 0)):
            user_id = entrant.racetime_user["id"]
            if entrant.outcome == "dq":
                rt.dq(slug, user_id)
            elif entrant.outcome == "dnf":
                rt.dnf(slug, user_id)
            else:
                rt.finish_entrant(slug, user_id, timedelta(microseconds=entrant.finish_us))
        await self.wait_for_status(self.race_ids[race.episode], "finished")

    # ---- helpers -----------------------------------------------------------------------------------
    async def create_or_find(self, path: str, body: dict[str, Any], *, key: str) -> dict[str, Any]:
        """POST; a 409 on a repeat after a restart means the first attempt went through: find it."""
        created = await self.api.call("POST", path, json=body, ok=(201, 409))
        if created is not None and "error" not in created:
            return created
        found = [item for item in await self.api.all_items(path) if item[key] == body[key]]
        assert len(found) == 1, f"{path}: {body[key]!r} not created and not found"
        return found[0]

    async def race(self, race_id: int) -> dict[str, Any]:
        return await self.api.get(f"/api/v1/tournaments/{self.tournament_id}/live-races/{race_id}")

    async def wait_for_status(self, race_id: int, status: str) -> dict[str, Any]:
        async def reached() -> dict[str, Any] | None:
            race = await self.race(race_id)
            return race if race["status"] == status else None

        return await wait_until(reached, f"live race {race_id} to be {status}", deadline=DEADLINE, interval=0.2)

    async def wait_for_outbox(self, *, delivered: bool) -> None:
        """Every notification of the evening is queued (and, with Discord, sent): read from the database, as a
        deleted race's rows are in no race's delivery log any more."""
        plan = self.plan
        expected = sum(plan.expected_dms().values()) + sum(plan.expected_posts().values())
        expected += sum(plan.expected_edits().values()) + sum(plan.expected_event_steps().values())
        counts: Counter = Counter()
        engine = direct_engine(self.database_url)

        async def settled() -> bool:
            counts.clear()
            async with engine.connect() as connection:
                rows = (await connection.execute(select(Notification.kind, Notification.status))).all()
            for kind, status in rows:
                skipped = str(kind) in ("channel_edit", "scheduled_event") and str(status) == "skipped"
                counts[f"skipped {kind}" if skipped else str(status)] += 1
            # With Discord a message is sent, or expired when it went stale before its turn (the rule of its type);
            # an edit of the announcement may be replaced by a later one, and a race that ended during an outage
            # gets no scheduled event late (its steps are skipped).
            done = (
                counts["sent"] + counts["expired"] + counts["skipped channel_edit"] + counts["skipped scheduled_event"]
                if delivered
                else counts["pending"]
            )
            return done == expected and sum(counts.values()) == expected

        state = "sent or expired" if delivered else "queued"
        try:
            await wait_until(
                settled, lambda: f"{expected} notifications {state}; have {dict(counts)}", deadline=DEADLINE
            )
        finally:
            await engine.dispose()

    async def delivery_log(self, race_id: int) -> list[dict[str, Any]]:
        return await self.api.all_items(f"/api/v1/tournaments/{self.tournament_id}/live-races/{race_id}/notifications")


def _start_in(minutes: int) -> datetime:
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=minutes)


# ---- reading back -------------------------------------------------------------------------------------
async def read_back(evening: Evening, racetime: FakeRacetime, discord: FakeDiscordRest | None) -> EveningOutcome:
    api, plan, tid = evening.api, evening.plan, evening.tournament_id
    episode_of = {race_id: episode for episode, race_id in (*evening.race_ids.items(), *evening.extra_ids.items())}
    races = {episode: await evening.race(race_id) for episode, race_id in evening.race_ids.items()}
    extras: dict[str, Any] = {}
    if plan.extras:
        base = f"/api/v1/tournaments/{tid}/live-races"
        moved = await evening.race(evening.extra_ids[MOVED[0]])
        rsvps = await api.get(f"{base}/{moved['id']}/rsvps")
        deleted = await api.call("GET", f"{base}/{evening.extra_ids[DELETED[0]]}", ok=(200, 404))
        extras = {
            MOVED[0]: moved,
            "rsvps": {int(item["discord_user_id"]) for item in rsvps["items"]},
            DELETED[0]: deleted,
        }
    results = {
        episode: (await api.get(f"/api/v1/tournaments/{tid}/live-races/{race_id}/results"))["entrants"]
        for episode, race_id in evening.race_ids.items()
    }
    runs = await api.all_items(f"/api/v1/tournaments/{tid}/runs")
    leaderboard = await api.get(f"/api/v1/tournaments/{tid}/leaderboard")
    audit = await api.all_items("/api/v1/audit")
    eligible = await api.get(f"/api/v1/tournaments/{tid}/live-races/{evening.race_ids['e2e-1']}/eligible")
    seeds = [
        seed
        for pool_id in evening.pool_ids.values()
        for seed in await api.all_items(f"/api/v1/tournaments/{tid}/pools/{pool_id}/seeds")
    ]
    players = {p["id"]: int(p["discord_user_id"]) for p in await api.all_items("/api/v1/players")}
    delivery_log = {episode: await evening.delivery_log(race_id) for episode, race_id in evening.race_ids.items()}
    outbox = await _outbox(evening.database_url, episode_of, players)
    url_of = {seed_id: url for url, seed_id in evening.seed_ids.items()}
    rooms: Counter = Counter()
    for room in racetime.rooms:
        match = re.search(r"live race #(\d+) ", room.info_bot or "")
        rooms[episode_of[int(match.group(1))] if match else "not ours"] += 1

    snapshot = {
        "races": {
            episode: (
                race["status"],
                race["pool"]["name"],
                race["seed"]["url"],
                race["racetime"]["status"],
                race["entrant_count"],
                race["participant_count"],
                race["finisher_count"],
                race["cancel_reason"],
                race["last_error"],
            )
            for episode, race in races.items()
        },
        "results": {
            episode: [
                (
                    e["racetime_name"],
                    e["counted"],
                    e["reason"],
                    e["status"],
                    e["place"],
                    e["elapsed_seconds"],
                    e["score"],
                )
                for e in entrants
            ]
            for episode, entrants in results.items()
        },
        "runs": sorted(
            (
                int(run["player"]["discord_user_id"]),
                url_of[run["seed_id"]],
                run["status"],
                run["elapsed_seconds"],
                run["place"],
                run["score"],
                episode_of.get(run["live_race_id"]),
                run["source"],
            )
            for run in runs
        ),
        "seeds": {url_of[s["id"]]: (s["par_time"], s["used_in_live_race"]) for s in seeds},
        "leaderboard": [
            (e["rank"], int(e["discord_user_id"]), e["score"], e["runs_counted"]) for e in leaderboard["entries"]
        ],
        # Sent and expired are both done: which stale message expired and which went out first depends on timing.
        # An edit replaced by a later one (skipped) is done with too, and so is a scheduled-event step skipped
        # because the race ended before Discord could take its event (an outage): `check_scheduled_events`.
        "outbox": {
            key: SETTLED
            if status in ("sent", "expired") or (key.startswith(("edit:", "sevent:")) and status == "skipped")
            else status
            for key, status in outbox.items()
        },
        "rooms": dict(rooms),
        "extras": {
            episode: (race.get("status"), race.get("entrant_count")) if "error" not in race else "deleted"
            for episode, race in extras.items()
            if episode != "rsvps"
        },
    }
    outcome = EveningOutcome(
        plan=plan,
        discord=discord is not None,
        snapshot=snapshot,
        results=results,
        races=races,
        runs=runs,
        leaderboard=leaderboard,
        audit=audit,
        eligible_first_race={int(c["discord_user_id"]) for c in eligible["eligible"]},
        delivery_log=delivery_log,
        seed_urls=url_of,
        outbox=outbox,
        extra_ids=dict(evening.extra_ids),
        extras=extras,
    )
    if discord is not None:
        _read_discord(outcome, discord, episode_of, plan)
    return outcome


async def _outbox(database_url: str, episode_of: dict[int, str], players: dict[int, int]) -> dict[str, str]:
    """Outbox rows by dedupe key (with race and player ids given as episode and Discord user id, so two
    evenings compare) and status. The API shows no dedupe keys, so they come from the database."""
    engine = direct_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(Notification.dedupe_key, Notification.status))).all()
    await engine.dispose()

    def normal(key: str) -> str:
        key = re.sub(r"race:(\d+)", lambda m: f"race:{episode_of[int(m.group(1))]}", key)
        return re.sub(r"player:(\d+)", lambda m: f"player:{players[int(m.group(1))]}", key)

    return _moments_ranked({normal(key): str(status) for key, status in rows})


_MOMENT = re.compile(r"(:at:|live_race_rescheduled:)(\d+)")


def _moments_ranked(outbox: dict[str, str]) -> dict[str, str]:
    """Keys with a moment in them (a start or a move, which differ from one evening to the next) name it by its rank
    among the moments of keys otherwise equal: `…:at:#0:…`, `…live_race_rescheduled:#1`."""
    moments: dict[str, set[int]] = defaultdict(set)
    for key in outbox:
        for match in _MOMENT.finditer(key):
            moments[_MOMENT.sub(r"\1#", key)].add(int(match.group(2)))
    ranked = {}
    for key, status in outbox.items():
        template = _MOMENT.sub(r"\1#", key)
        if template == key:
            ranked[key] = status
            continue
        order = sorted(moments[template])
        ranked[_MOMENT.sub(lambda m, order=order: f"{m.group(1)}#{order.index(int(m.group(2)))}", key)] = status
    return ranked


def _read_discord(
    outcome: EveningOutcome, discord: FakeDiscordRest, episode_of: dict[int, str], plan: TournamentPlan
) -> None:
    for delivered in discord.delivered:
        embed = delivered.payload["embeds"][0]
        event = next(event for prefix, event in _TITLES.items() if embed["title"].startswith(prefix))
        episode = episode_of[int(_FOOTER_RACE.search(embed["footer"]["text"]).group(1))]
        if delivered.recipient_id is None:
            assert delivered.channel_id == ANNOUNCEMENT_CHANNEL
            outcome.posts[(event, episode)] += 1
            continue
        outcome.dms[(event, episode, delivered.recipient_id)] += 1
        if event == "live_race_finished":
            fields = {f["name"]: f["value"] for f in embed.get("fields", [])}
            outcome.dm_results[(episode, delivered.recipient_id)] = fields
    # The announcements as they read now (edits applied): the races whose living post shows the results.
    outcome.facts["announced_finished"] = {
        episode_of[int(_FOOTER_RACE.search(message["embeds"][0]["footer"]["text"]).group(1))]
        for message in discord.messages.values()
        if int(message["channel_id"]) == ANNOUNCEMENT_CHANNEL and message["embeds"][0]["title"].startswith("🏁")
    }
    # The races' living announcements as they read now (a room-open reply is no living post), and their edits.
    for message_id, message in discord.messages.items():
        if int(message["channel_id"]) != ANNOUNCEMENT_CHANNEL or message.get("message_reference"):
            continue
        episode = episode_of[int(_FOOTER_RACE.search(message["embeds"][0]["footer"]["text"]).group(1))]
        assert episode not in outcome.living_posts, f"two living announcements of {episode}"
        outcome.living_posts[episode] = message
        outcome.living_post_edits[episode] = sum(1 for _, edited, _ in discord.edits if edited == message_id)
    # Each race's Discord Scheduled Event(s), found by the race's marker, and every change of any event that ever
    # carried it (a duplicate made and deleted again would show there).
    for race_id, episode in episode_of.items():
        marker = race_marker(race_id)
        outcome.scheduled_events[episode] = [
            event for event in discord.scheduled_events.values() if marker in (event.get("description") or "")
        ]
        ever = {event_id for _, event_id, event in discord.event_log if marker in (event.get("description") or "")}
        outcome.event_history[episode] = [
            (action, event) for action, event_id, event in discord.event_log if event_id in ever
        ]
    gateway = discord.gateway
    outcome.facts.update(
        nonce_replays=discord.nonce_replays,
        unavailable_answers=discord.unavailable_answers,
        gateway_identifies=gateway.identifies if gateway else 0,
        gateway_resumes=gateway.resumes if gateway else 0,
        gateway_refused=gateway.refused if gateway else 0,
        rate_limited=dict(discord.rate_limited),
        scheduled_event_requests=discord.requests[EVENTS_ROUTE],
    )


# ---- the evening ------------------------------------------------------------------------------------
async def run_evening(
    workdir: Path, *, discord: bool, faults: FaultPlan | None = None, processes: int = 1
) -> EveningOutcome:
    """The whole evening on a new database in `workdir` (its process log is `workdir/process.log`).

    `processes` > 1 starts that many processes on the one database (PostgreSQL), each with its own API port and log
    (`process-2.log`, …); the organizers' script talks to the first, the fault plan may kill the others."""
    started = datetime.now(UTC)
    async with FakeRacetime(cache_ttl=LISTING_CACHE_SECONDS) as racetime:
        fake_discord = None
        if discord:
            fake_discord = await FakeDiscordRest.with_gateway([GUILD], message_delay=MESSAGE_DELAY).start()
            fake_discord.add_text_channel(ANNOUNCEMENT_CHANNEL)
        port, database_url = free_port(), await fresh_database_url(workdir)
        env = process_env(database_url, port, **settings_env(racetime, fake_discord))
        maker = StartlineProcess.with_fake_discord if discord else StartlineProcess.no_discord
        process = maker(env, workdir / "process.log", port)
        others = []
        for number in range(2, processes + 1):
            other_port = free_port()
            other_env = process_env(database_url, other_port, **settings_env(racetime, fake_discord))
            others.append(maker(other_env, workdir / f"process-{number}.log", other_port))
        everyone = [process, *others]
        try:
            token = create_token(env)
            for each in everyone:
                each.start()
            for each in everyone:
                await each.wait_healthy()
            if faults is not None:
                assert fake_discord is not None
                faults.attach(process, racetime, fake_discord, others)
            api = Api(process.base_url, token, process)
            evening = Evening(TournamentPlan.build(extras=discord), api, racetime, database_url, faults)
            outcome = await _drive(evening, process, fake_discord)
            for other in others:  # a process restarted by the last kill is up before it is stopped
                await other.wait_healthy()
            exit_codes = [each.stop() for each in reversed(everyone)]
            outcome.facts.update(
                seconds=(datetime.now(UTC) - started).total_seconds(),
                starts=sum(each.starts for each in everyone),
                kills=sum(each.kills for each in everyone),
                exit_code=next((code for code in exit_codes if code != 0), 0),
                log="\n".join(each.log_text() for each in everyone),
                rooms_opened_by=[each.log_text().count("opened RaceTime.gg room") for each in everyone],
            )
        finally:
            for each in everyone:
                if each.popen is not None and each.popen.poll() is None:
                    each.kill()
            if fake_discord is not None:
                await fake_discord.stop()
    return outcome


async def _drive(evening: Evening, process: StartlineProcess, discord: FakeDiscordRest | None) -> EveningOutcome:
    plan, faults = evening.plan, evening.faults
    async with evening.api as api:
        if faults is not None:
            api.before_request = faults.on_request
        await evening.set_up_tournament()
        await evening.import_roster()
        await evening.import_earlier_runs()
        await evening.opt_in()
        await evening.schedule_races()
        slugs = await evening.wait_for_rooms()
        await evening.phase("backlog")  # what waited for Discord goes out while the players join the rooms
        for race in plan.races:
            await evening.run_race(race, slugs[race.episode])
        await evening.phase("drain")
        if plan.extras:
            await evening.delete_the_deleted_race()
        await evening.wait_for_outbox(delivered=discord is not None)
        if faults is not None:
            await faults.finish()  # the last kill may come after the outbox drained: it must stay drained
            await process.wait_healthy()
            await evening.wait_for_outbox(delivered=discord is not None)
        outcome = await read_back(evening, evening.racetime, discord)
        adopted = [e for e in outcome.audit if e["action"] == "live_race.open" and e["details"]["adopted"]]
        outcome.facts.update(api_requests=api.requests, api_repeats=api.repeats, rooms_adopted=len(adopted))
    return outcome
