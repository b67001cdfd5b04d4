"""The tournament evening as data, and what it must produce, worked out here without the product's code.

- 200 players: the 36 real RaceTime.gg users of `races_with_past_entrants*.json`, then generated ones; all
  linked. Their notification choices follow their index (most opt in for this guild, some for every guild,
  some for every guild but not "scheduled" here, some not at all).
- Three pools of three seeds; earlier async runs come from real races of the second page (each real entrant
  of such a race ran that pool's seed, with their real time or a forfeit; one run per player and pool).
- Three live races, one per pool, with the entrants of three real races of the first page and their real
  finish times and forfeits; one entrant of two races is disqualified by a moderator instead, the third race
  has an entrant no player of the guild is linked to, and entrants who already ran the pool are ineligible.
- A real user who may race the first race, and opted in, never joins it: the no-show.
- Two more races that never open (issue 13): one is moved twice within the collapse window (one rescheduled notice
  per player), has RSVPs, and its reminders fall due with the second move; the other is deleted once its scheduled
  notices went out (the cancelled notice). Some players chose reminder offsets; only those who RSVP'd a race whose
  offset is due get one (the others do not subscribe to the scheduled notice here, so the three racing races, whose
  reminders would be due only for the seconds before their rooms open, remind nobody).

Scores are recomputed from the real finish times by the scoring rules: par of a seed = mean of its 5 fastest
finished runs; score = clamp((2 − t/par) × 100, 0, 105); forfeits and disqualifications score 0; the
leaderboard averages each player's best run per pool over every pool (runs_per_pool = 1).
"""

from __future__ import annotations

import random
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from tests.fakes.racetime_data import captured_user, load_json, real_users

PLAYER_COUNT = 200
POOLS = ("Standard", "Keysanity", "Inverted")
SEEDS_PER_POOL = 3
RUNS_PER_POOL = 1
TOURNAMENT = "Autumn Qualifier"
GOAL = "Beat the game"
ANNOUNCEMENT_CHANNEL = 555_000_000_000_000_001
ANNOUNCEMENT_ROLE = 555_000_000_000_000_002
# Rooms open this long before the start; the evening schedules its races this long (and 4 s) ahead, so the rooms open
# at once while each race's Discord Scheduled Event, which starts with the race, can still be made minutes later
# (Discord refuses an event starting in the past) when kills, outages and its rate limit held it back.
ROOM_OPEN_LEAD_MINUTES = 5
# Earlier runs: pool -> indices of real races in races_with_past_entrants_2.json.
EARLIER_RACES = {"Standard": (2, 5, 9), "Keysanity": (0, 7), "Inverted": (3,)}
# Live races: (episode, pool, index in races_with_past_entrants.json, entrant disqualified by a moderator).
LIVE_RACES = (
    ("e2e-1", "Standard", 3, "Rei_07"),
    ("e2e-2", "Keysanity", 6, "Freddyn3k"),
    ("e2e-3", "Inverted", 8, None),
)
UNLINKED_ENTRANT = "Carol"  # a RaceTime.gg user who is in no guild's roster (captured sample)
UNLINKED_FINISH_US = 5_700_123_456
NO_SHOW = ("coin_chaser", "e2e-1")

# The races that never open: (episode, pool). The moved one starts at MOVED_STARTS[0] from its scheduling and is
# moved to each later entry in turn; the deleted one is deleted in the evening's last phase.
MOVED = ("e2e-4", "Standard")
DELETED = ("e2e-5", "Keysanity")
MOVED_STARTS_MINUTES = (300, 240, 50)  # before the last move no reminder offset (at most 180 here) is due
DELETED_START_MINUTES = 300
DEFAULT_RSVP_OFFSETS = (60,)  # bot.services.reminders.DEFAULT_RSVP_OFFSETS, worked out here without it
# Reminder offsets (minutes) by player index: players who do not subscribe to the scheduled notice in the guild.
REMINDER_OFFSETS = {8: (60,), 9: (180, 30), 18: (180, 30), 19: (60,), 38: (60,), 39: (180,)}
RSVPS = (8, 9, 18, 19, 0, 1, 2, 3)  # by player index: RSVP'd the moved race
RSVP_TAKEN_BACK = 10  # RSVP'd the moved race, then took it back

EVENTS = ("live_race_scheduled", "live_race_room_opened", "live_race_started", "live_race_finished")
# The channel's messages: the living announcement and the room-open reply to it are posts; every later step (the
# room opening too) edits the announcement.
POSTED_EVENTS = EVENTS[:2]
EDITED_EVENTS = EVENTS[1:]
EVENT_CODES = {"live_race_scheduled": 415, "live_race_room_opened": 416, "live_race_started": 417}
EVENT_CODES["live_race_finished"] = 418
EVENT_CODES["live_race_cancelled"] = 419
EVENT_CODES["live_race_rescheduled"] = 420
REMINDER = "live_race_reminder"  # its outbox rows have no event type
GUILD_ALL, GLOBAL_ALL, GLOBAL_BUT_SCHEDULED_HERE, NOTHING = "guild", "global", "global-but-415-here", "none"
_DURATION = re.compile(r"P(\d+)DT(\d+)H(\d+)M(\d+)(?:\.(\d{1,6}))?S")


def duration_us(text: str) -> int:
    """RaceTime.gg's `P0DT01H23M53.542612S` as exact microseconds."""
    match = _DURATION.fullmatch(text)
    assert match is not None, text
    days, hours, minutes, seconds, fraction = match.groups()
    total = ((int(days) * 24 + int(hours)) * 60 + int(minutes)) * 60 + int(seconds)
    return total * 1_000_000 + int((fraction or "0").ljust(6, "0"))


def subscription_kind(index: int) -> str:
    return {7: GLOBAL_ALL, 8: GLOBAL_BUT_SCHEDULED_HERE, 9: NOTHING}.get(index % 10, GUILD_ALL)


@dataclass(frozen=True)
class PlannedPlayer:
    index: int
    discord_user_id: int
    display_name: str
    racetime_user: dict[str, Any]

    @property
    def racetime_id(self) -> str:
        return self.racetime_user["id"]

    @property
    def subscription(self) -> str:
        return subscription_kind(self.index)

    def subscribed(self, event: str) -> bool:
        if self.subscription == NOTHING:
            return False
        return not (self.subscription == GLOBAL_BUT_SCHEDULED_HERE and event == "live_race_scheduled")


@dataclass(frozen=True)
class PlannedRun:
    player: PlannedPlayer
    pool: str
    seed: int  # index of the seed in its pool
    status: str  # finished | forfeit | disqualified
    elapsed_us: int | None
    finished_at: str | None = None
    episode: str | None = None  # the live race, for live runs
    place: int | None = None


@dataclass(frozen=True)
class PlannedEntrant:
    racetime_user: dict[str, Any]
    outcome: str  # done | dnf | dq
    finish_us: int | None
    player: PlannedPlayer | None
    ineligible_reason: str | None

    @property
    def name(self) -> str:
        return self.racetime_user["name"]

    @property
    def counted(self) -> bool:
        return self.player is not None and self.ineligible_reason is None


@dataclass(frozen=True)
class PlannedRace:
    episode: str
    pool: str
    source: str  # the real race it replays
    entrants: tuple[PlannedEntrant, ...]

    @property
    def title(self) -> str:
        return f"{TOURNAMENT} – {self.pool} ({self.episode})"

    def places(self) -> dict[str, int]:
        """RaceTime.gg's places: finishers (not disqualified) by time."""
        finishers = sorted((e for e in self.entrants if e.outcome == "done"), key=lambda e: e.finish_us)
        return {e.name: place for place, e in enumerate(finishers, start=1)}

    @property
    def counted(self) -> list[PlannedEntrant]:
        return [e for e in self.entrants if e.counted]


def seed_url(pool: str, seed: int) -> str:
    return f"https://alttpr.com/h/e2e-{pool.lower()}-{seed}"


def _generated_user(index: int, rng: random.Random) -> dict[str, Any]:
    hashid = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(16))
    name = f"Runner{index:03d}"
    return {"id": hashid, "full_name": f"{name}#{1000 + index}", "name": name, "discriminator": str(1000 + index)}


@dataclass
class TournamentPlan:
    players: list[PlannedPlayer] = field(default_factory=list)
    extras: bool = True  # the races that never open are part of the evening (the evening with Discord)

    @classmethod
    def build(cls, *, extras: bool = True) -> TournamentPlan:
        rng = random.Random(20261201)
        users = real_users()
        users += [_generated_user(index, rng) for index in range(len(users), PLAYER_COUNT)]
        players = [
            PlannedPlayer(index, 301_000_000_000_000_000 + index, user["name"], user)
            for index, user in enumerate(users)
        ]
        return cls(players, extras)

    # ---- who is who --------------------------------------------------------------------------------
    @cached_property
    def by_racetime_id(self) -> dict[str, PlannedPlayer]:
        return {p.racetime_id: p for p in self.players}

    @cached_property
    def by_name(self) -> dict[str, PlannedPlayer]:
        return {p.display_name: p for p in self.players}

    @cached_property
    def by_discord_id(self) -> dict[int, PlannedPlayer]:
        return {p.discord_user_id: p for p in self.players}

    @property
    def unlinked_user(self) -> dict[str, Any]:
        return captured_user(UNLINKED_ENTRANT)

    # ---- earlier runs ------------------------------------------------------------------------------
    @cached_property
    def earlier_runs(self) -> list[PlannedRun]:
        races = load_json("races_with_past_entrants_2.json")["races"]
        runs: list[PlannedRun] = []
        for pool, indices in EARLIER_RACES.items():
            ran: set[str] = set()
            for position, index in enumerate(indices):
                race = races[index]
                for entrant in race["entrants"]:
                    player = self.by_racetime_id[entrant["user"]["id"]]
                    if player.racetime_id in ran:
                        continue  # one run per player and pool
                    ran.add(player.racetime_id)
                    done = entrant["status"]["value"] == "done"
                    runs.append(
                        PlannedRun(
                            player,
                            pool,
                            position % 2,
                            "finished" if done else "forfeit",
                            duration_us(entrant["finish_time"]) if done else None,
                            finished_at=(entrant["finished_at"] or race["ended_at"]),
                        )
                    )
        return runs

    def ran_pool(self, pool: str) -> set[int]:
        return {run.player.discord_user_id for run in self.earlier_runs if run.pool == pool}

    def live_seed(self, pool: str) -> int:
        """The seed the opener must pick: fewest runs, never raced live, lowest id first."""
        counts = Counter(run.seed for run in self.earlier_runs if run.pool == pool)
        return min(range(SEEDS_PER_POOL), key=lambda seed: (counts[seed], seed))

    # ---- live races --------------------------------------------------------------------------------
    @cached_property
    def races(self) -> list[PlannedRace]:
        past = load_json("races_with_past_entrants.json")["races"]
        planned = []
        for episode, pool, index, disqualified in LIVE_RACES:
            ran = self.ran_pool(pool)
            entrants = []
            for item in past[index]["entrants"]:
                player = self.by_racetime_id[item["user"]["id"]]
                outcome = item["status"]["value"]
                if item["user"]["name"] == disqualified:
                    outcome = "dq"
                finish = duration_us(item["finish_time"]) if outcome == "done" else None
                reason = f"Already ran 1 of {RUNS_PER_POOL} in pool {pool}" if player.discord_user_id in ran else None
                entrants.append(PlannedEntrant(item["user"], outcome, finish, player, reason))
            if episode == "e2e-3":
                reason = "Not linked to a player of this server"
                entrants.append(PlannedEntrant(self.unlinked_user, "done", UNLINKED_FINISH_US, None, reason))
            planned.append(PlannedRace(episode, pool, past[index]["name"], tuple(entrants)))
        return planned

    @cached_property
    def race_by_episode(self) -> dict[str, PlannedRace]:
        return {race.episode: race for race in self.races}

    @cached_property
    def live_runs(self) -> list[PlannedRun]:
        runs = []
        for race in self.races:
            places = race.places()
            for entrant in race.counted:
                assert entrant.player is not None
                status = {"done": "finished", "dnf": "forfeit", "dq": "disqualified"}[entrant.outcome]
                runs.append(
                    PlannedRun(
                        entrant.player,
                        race.pool,
                        self.live_seed(race.pool),
                        status,
                        entrant.finish_us,
                        episode=race.episode,
                        place=places.get(entrant.name),
                    )
                )
        return runs

    @property
    def all_runs(self) -> list[PlannedRun]:
        return self.earlier_runs + self.live_runs

    # ---- scoring ----------------------------------------------------------------------------------
    @cached_property
    def par_times(self) -> dict[tuple[str, int], float | None]:
        times: dict[tuple[str, int], list[int]] = defaultdict(list)
        for run in self.all_runs:
            if run.status == "finished":
                times[(run.pool, run.seed)].append(run.elapsed_us)
        pars: dict[tuple[str, int], float | None] = {}
        for pool in POOLS:
            for seed in range(SEEDS_PER_POOL):
                fastest = sorted(times[(pool, seed)])[:5]
                pars[(pool, seed)] = sum(fastest) / len(fastest) / 1_000_000 if fastest else None
        return pars

    def score(self, run: PlannedRun) -> float:
        if run.status != "finished":
            return 0.0
        par = self.par_times[(run.pool, run.seed)]
        assert par is not None and run.elapsed_us is not None
        return min(105.0, max(0.0, (2 - run.elapsed_us / 1_000_000 / par) * 100))

    def leaderboard(self) -> list[tuple[int, int, float, int]]:
        """(rank, discord user id, score, runs counted), best first; equal scores share a rank."""
        best: dict[int, dict[str, float]] = defaultdict(dict)
        for run in self.all_runs:
            pools = best[run.player.discord_user_id]
            pools[run.pool] = max(pools.get(run.pool, 0.0), self.score(run))
        rows = sorted(
            (
                (sum(pools.values()) / (len(POOLS) * RUNS_PER_POOL), self.by_discord_id[uid], len(pools))
                for uid, pools in best.items()
            ),
            key=lambda row: (-row[0], row[1].display_name.lower()),
        )
        board, previous, rank = [], None, 0
        for position, (score, player, counted) in enumerate(rows, start=1):
            if previous is None or round(score, 6) != previous:
                rank, previous = position, round(score, 6)
            board.append((rank, player.discord_user_id, score, counted))
        return board

    # ---- notifications ----------------------------------------------------------------------------
    def eligible(self, pool: str) -> set[int]:
        """Who may race in `pool` before any live race started: every (linked) player who has not run it."""
        return {p.discord_user_id for p in self.players} - self.ran_pool(pool)

    def expected_dms(self) -> Counter:
        """(event, episode, discord user id) -> 1 for every DM the evening must deliver exactly once."""
        dms: Counter = Counter()
        for race in self.races:
            counted = {e.player.discord_user_id for e in race.counted if e.player is not None}
            audience = {
                "live_race_scheduled": self.eligible(race.pool),
                "live_race_room_opened": self.eligible(race.pool),
                "live_race_started": counted,
                "live_race_finished": counted,
            }
            for event, recipients in audience.items():
                for uid in recipients:
                    if self.by_discord_id[uid].subscribed(event):
                        dms[(event, race.episode, uid)] += 1
        return dms + self.extra_dms() if self.extras else dms

    def expected_posts(self) -> Counter:
        posts = Counter((event, race.episode) for race in self.races for event in POSTED_EVENTS)
        if self.extras:
            posts.update({("live_race_scheduled", MOVED[0]): 1, ("live_race_scheduled", DELETED[0]): 1})
        return posts

    def expected_edits(self) -> Counter:
        """(event, episode) -> edits of the living announcement (the moved race's two moves are two edits)."""
        edits = Counter((event, race.episode) for race in self.races for event in EDITED_EVENTS)
        if self.extras:
            edits.update({("live_race_rescheduled", MOVED[0]): len(MOVED_STARTS_MINUTES) - 1})
            edits.update({("live_race_cancelled", DELETED[0]): 1})
        return edits

    def expected_event_steps(self) -> Counter:
        """(step, episode) -> outbox rows that bring a race's Discord Scheduled Event along (one per step)."""
        steps = Counter((event, race.episode) for race in self.races for event in EVENTS)
        if self.extras:
            steps.update({(EVENTS[0], MOVED[0]): 1, ("live_race_rescheduled", MOVED[0]): len(MOVED_STARTS_MINUTES) - 1})
            steps.update({(EVENTS[0], DELETED[0]): 1, ("live_race_cancelled", DELETED[0]): 1})
        return steps

    # ---- the races that never open (issue 13) --------------------------------------------------------------
    @cached_property
    def rsvps(self) -> set[int]:
        """Discord user ids of who RSVP'd the moved race (and did not take it back)."""
        return {self.players[index].discord_user_id for index in RSVPS}

    def reminder_offset(self, uid: int) -> int | None:
        """The one reminder a player gets for the moved race at its last start (50 min ahead): the smallest of their
        offsets already due (the bot sends only the latest due one); none without an RSVP."""
        if uid not in self.rsvps:
            return None
        offsets = REMINDER_OFFSETS.get(self.by_discord_id[uid].index) or DEFAULT_RSVP_OFFSETS
        due = [m for m in offsets if m >= MOVED_STARTS_MINUTES[-1]]
        return min(due) if due else None

    def eligible_after_the_races(self, pool: str) -> set[int]:
        """Who may race in `pool` once the evening's races are recorded: every counted entrant of its race ran it."""
        ran = {e.player.discord_user_id for race in self.races if race.pool == pool for e in race.counted if e.player}
        return self.eligible(pool) - ran

    def extra_dms(self) -> Counter:
        """(event, episode, discord user id) -> 1 for the DMs of the races that never open."""
        dms: Counter = Counter()
        moved, moved_pool = MOVED
        deleted, deleted_pool = DELETED
        for uid in self.eligible(moved_pool):
            player = self.by_discord_id[uid]
            if player.subscribed("live_race_scheduled"):
                dms[("live_race_scheduled", moved, uid)] += 1
        for uid in self.eligible(moved_pool) | self.rsvps:  # who RSVP'd hears of a move without the preference
            if uid in self.rsvps or self.by_discord_id[uid].subscribed("live_race_rescheduled"):
                dms[("live_race_rescheduled", moved, uid)] += 1
        for uid in self.rsvps:
            if self.reminder_offset(uid) is not None:
                dms[(REMINDER, moved, uid)] += 1
        for uid in self.eligible(deleted_pool):
            if self.by_discord_id[uid].subscribed("live_race_scheduled"):
                dms[("live_race_scheduled", deleted, uid)] += 1
        for uid in self.eligible_after_the_races(deleted_pool):
            if self.by_discord_id[uid].subscribed("live_race_cancelled"):
                dms[("live_race_cancelled", deleted, uid)] += 1
        return dms
