"""End to end, in fast-forward time: a season of two tournaments, where a weekly series of the first runs three
weeks through the job, the room opener, the fake RaceTime.gg and the poller; then the season's leaderboard."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.app import Application
from db.models import RaceStatus
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, add_player, make_world, open_rooms, poll
from tests.fakes.racetime_data import captured_user
from tests.fakes.racetime_server import FakeRacetime

ALICE, BOB, CAROL = (captured_user(name) for name in ("Alice", "Bob", "Carol"))
BERLIN = ZoneInfo("Europe/Berlin")


async def test_a_season_with_a_weekly_series_over_three_weeks(app: Application, rt: FakeRacetime, clock: Clock) -> None:
    services = app.services
    weekly = await make_world(services, name="Weekly League", seeds=3, runs_per_pool=3)
    for index in range(3):
        await services.tournaments.add_seed(
            GUILD, weekly.tournament.id, weekly.other_pool.id, MODERATOR, url=f"https://alttpr.com/h/wb{index}"
        )
    cup = await make_world(services, name="Winter Cup")
    players = {
        user["id"]: await add_player(services, 100 + i, user["name"], user["id"])
        for i, user in enumerate((ALICE, BOB, CAROL))
    }
    season = await services.seasons.create(
        GUILD, MODERATOR, name="2027", tournament_ids=[weekly.tournament.id, cup.tournament.id]
    )
    template = await services.templates.create(
        GUILD, weekly.tournament.id, MODERATOR, name="Saturday", pool_ids=[weekly.pool.id, weekly.other_pool.id],
        title_pattern="Week {n} — {pool}", start_time="20:00", timezone="Europe/Berlin",
    )  # fmt: skip
    view = await services.series.create(
        GUILD, weekly.tournament.id, MODERATOR, name="League nights", template_id=template.id,
        rrule="FREQ=WEEKLY;BYDAY=SA", starts_on=clock.now.date() + timedelta(days=1),
    )  # fmt: skip
    series_id = view.series.id

    finished = []
    for week in range(1, 4):
        await services.series.run_job()
        upcoming = (await services.live_races.upcoming(GUILD, tournament_id=weekly.tournament.id)).items
        race = upcoming[0].race
        assert race.title == f"Week {week} — {'Pool A' if week % 2 else 'Pool B'}"
        assert len(upcoming) == 2  # the window (14 days) holds two Saturdays
        clock.now = race.scheduled_at - timedelta(minutes=10)  # fast-forward to the room's opening
        await open_rooms(app)
        slug = (await services.live_races.get(GUILD, race.id)).race.racetime_slug
        for user in (ALICE, BOB, CAROL):
            rt.add_entrant(slug, user)
        rt.start(slug)
        for user, minutes in ((ALICE, 90 + week), (BOB, 95), (CAROL, 100 - week)):
            rt.finish_entrant(slug, user["id"], timedelta(minutes=minutes))
        clock.now = race.scheduled_at + timedelta(hours=2)
        await poll(app)
        done = (await services.live_races.get(GUILD, race.id)).race
        results = await services.live_races.results(GUILD, race.id)
        assert [(e.racetime_name, e.counted) for e in results.entrants] == [
            ("Alice", True),
            ("Bob", True),
            ("Carol", True),
        ]
        assert done.status is RaceStatus.FINISHED and done.finisher_count == 3
        finished.append(done)
        clock.now += timedelta(days=1)

    # Three Saturdays at 20:00 Berlin, one week apart.
    local = [race.scheduled_at.astimezone(BERLIN) for race in finished]
    assert [(at.weekday(), at.hour, at.minute) for at in local] == [(5, 20, 0)] * 3
    assert [(at.date() - local[0].date()).days for at in local] == [0, 7, 14]
    assert (await services.series.run_job()).created == 1  # week 5 came into the window
    assert (await services.series.run_job()).created == 0  # and is made once
    series = await services.series.get(GUILD, weekly.tournament.id, series_id)
    assert series.series.status.value == "active"
    assert [o.local_date.weekday() for o in series.next_occurrences] == [5] * len(series.next_occurrences)

    # The cup: one imported run each, Carol fastest.
    for user, seconds in ((CAROL, 5000.0), (ALICE, 5400.0), (BOB, 6000.0)):
        await services.runs.import_run(
            GUILD, cup.tournament.id, MODERATOR, discord_user_id=players[user["id"]].discord_user_id,
            seed_id=cup.seeds[0].id, status="finished", elapsed_seconds=seconds,
        )  # fmt: skip

    board = await services.seasons.leaderboard(GUILD, season.season.id)
    weekly_board = {
        e.player_id: e.score for e in (await services.scoring.leaderboard(GUILD, weekly.tournament.id)).entries
    }
    cup_board = {e.player_id: e.score for e in (await services.scoring.leaderboard(GUILD, cup.tournament.id)).entries}
    expected = {pid: weekly_board.get(pid, 0) + cup_board.get(pid, 0) for pid in weekly_board | cup_board}
    assert {e.player_id: round(e.score, 6) for e in board.entries} == {k: round(v, 6) for k, v in expected.items()}
    assert [e.rank for e in board.entries] == sorted(e.rank for e in board.entries)
    assert board.entries[0].score == max(expected.values())
