"""A template's lead time, announcement channel and ping role: given to races made from it, directly or by a series,
and read wherever a race's room-open time and announcement are worked out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.errors import ValidationFailed
from bot.services import Services
from db.models import LiveRace, Notification, NotificationKind
from tests.conftest import GUILD, MODERATOR
from tests.fakes.lifecycle import Clock, make_world

START = datetime(2026, 1, 7, 12, 0, tzinfo=UTC)  # a Wednesday


@pytest.fixture
def clock(services: Services) -> Clock:
    moved = Clock(START)
    services.live_races.clock = moved
    return moved


async def _template(services: Services, world, **fields):
    return await services.templates.create(
        GUILD,
        world.tournament.id,
        MODERATOR,
        name="weekly",
        pool_ids=[world.pool.id],
        start_time="20:00",
        timezone="Europe/Berlin",
        **fields,
    )


async def _announcements(services: Services, race_id: int) -> list[tuple[int, int | None]]:
    async with services.db.read() as session:
        rows = (
            await session.scalars(
                select(Notification).where(
                    Notification.live_race_id == race_id, Notification.kind == NotificationKind.CHANNEL
                )
            )
        ).all()
    return [(row.channel_id, row.payload.get("role_id")) for row in rows]


async def test_a_race_from_a_template_takes_its_lead_channel_and_role(services: Services, clock: Clock) -> None:
    world = await make_world(services, announcement_channel_id=111, announcement_role_id=222)
    template = await _template(
        services, world, room_open_lead_minutes=45, announcement_channel_id=777, announcement_role_id=888
    )
    view = await services.templates.create_race(
        GUILD, world.tournament.id, template.id, MODERATOR, when=date(2026, 1, 10)
    )
    race = view.race
    assert (race.room_open_lead_minutes, race.announcement_channel_id, race.announcement_role_id) == (45, 777, 888)
    assert view.room_opens_at == race.scheduled_at - timedelta(minutes=45)
    assert await _announcements(services, race.id) == [(777, 888)]
    listing = (await services.live_races.upcoming(GUILD)).items[0]
    assert listing.room_opens_at == race.scheduled_at - timedelta(minutes=45)
    # The opener opens it 45 minutes ahead, not the tournament's (default) 15.
    clock.now = race.scheduled_at - timedelta(minutes=46)
    assert await services.live_races.opener.due_race_ids() == []
    clock.now = race.scheduled_at - timedelta(minutes=44)
    assert await services.live_races.opener.due_race_ids() == [race.id]
    # A plain race of the same tournament keeps the tournament's channel and role.
    plain = await services.live_races.create(
        GUILD, world.tournament.id, MODERATOR, pool_id=world.pool.id, scheduled_at=START + timedelta(days=5)
    )
    assert await _announcements(services, plain.race.id) == [(111, 222)]


async def test_a_template_with_only_a_role_pings_it_in_the_tournaments_channel(
    services: Services, clock: Clock
) -> None:
    world = await make_world(services, announcement_channel_id=111, announcement_role_id=222)
    template = await _template(services, world, announcement_role_id=999)
    view = await services.templates.create_race(
        GUILD, world.tournament.id, template.id, MODERATOR, when=date(2026, 1, 10)
    )
    assert await _announcements(services, view.race.id) == [(111, 999)]
    assert view.room_opens_at == view.race.scheduled_at - timedelta(minutes=15)  # the default lead


async def test_series_occurrences_take_them_and_follow_a_change(services: Services, clock: Clock) -> None:
    world = await make_world(services, seeds=6)
    template = await _template(services, world, room_open_lead_minutes=30, announcement_channel_id=777)
    view = await services.series.create(
        GUILD, world.tournament.id, MODERATOR, name="Sat", template_id=template.id, rrule="FREQ=WEEKLY;BYDAY=SA"
    )
    async with services.db.read() as session:
        races = (await session.scalars(select(LiveRace).order_by(LiveRace.scheduled_at))).all()
    assert [(r.room_open_lead_minutes, r.announcement_channel_id) for r in races] == [(30, 777), (30, 777)]
    for race in races:
        assert await _announcements(services, race.id) == [(777, None)]
    # Changing the template is enough: the series' future races follow (here the lead time and the start time).
    await services.templates.update(
        GUILD, world.tournament.id, template.id, MODERATOR, room_open_lead_minutes=60, start_time="21:00"
    )
    async with services.db.read() as session:
        races = (await session.scalars(select(LiveRace).order_by(LiveRace.scheduled_at))).all()
    assert [r.room_open_lead_minutes for r in races] == [60, 60]
    assert [r.scheduled_at.hour for r in races] == [20, 20]  # 21:00 in Berlin in winter
    assert view.series.id


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"room_open_lead_minutes": -1}, "room_open_lead_minutes"),
        ({"room_open_lead_minutes": 1441}, "room_open_lead_minutes"),
        ({"room_open_lead_minutes": "15"}, "room_open_lead_minutes"),
        ({"announcement_channel_id": 0}, "announcement_channel_id"),
        ({"announcement_role_id": 2**64}, "announcement_role_id"),
        ({"announcement_channel_id": True}, "announcement_channel_id"),
    ],
)
async def test_bad_values_are_refused_and_change_nothing(services: Services, clock: Clock, fields, field) -> None:
    world = await make_world(services)
    with pytest.raises(ValidationFailed) as refused:
        await _template(services, world, **fields)
    assert refused.value.field == field
    assert await services.templates.list(GUILD, world.tournament.id) == []
    template = await _template(services, world)
    with pytest.raises(ValidationFailed):
        await services.templates.update(GUILD, world.tournament.id, template.id, MODERATOR, **fields)
    unchanged = await services.templates.get(GUILD, world.tournament.id, template.id)
    assert (
        unchanged.room_open_lead_minutes,
        unchanged.announcement_channel_id,
        unchanged.announcement_role_id,
    ) == (None, None, None)
