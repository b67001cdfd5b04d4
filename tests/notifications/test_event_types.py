"""Every notification type is complete: this walks `EventType` (and the moderator alert) and fails on any missing
piece, so a new type cannot be half added. What a new type needs is in docs/architecture.md ("Where to add a
notification type"); each piece has a test here:

- its `EventSpec` (code, labels, style, audience, default, docs text, staleness rule), declared once in db/models.py;
- an event class in bot/events.py whose `.type` is it, which the outbox queues to exactly the spec's audience;
- a renderer (`@renders`) in bot/notifications/render.py, for a DM and for a channel post;
- the preferences, /notify and the API list it by its code and label;
- the dispatcher expires it by its rule and sends it otherwise;
- its rows in the user guide's DM table and the admin guide's expiry table.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.api.registry import openapi_document
from bot.api.v1 import all_routes
from bot.events import LiveRaceEvent
from bot.notifications.dispatcher import NotificationDispatcher
from bot.notifications.render import RENDERERS, render
from bot.services.notifications import parse_event_type
from db.models import (
    DM_AUDIENCES,
    EVENT_SPECS,
    LIVE_RACE_REMINDER,
    OPEN_FAILED_ALERT,
    Audience,
    EventSpec,
    EventType,
    GuildSettings,
    LiveRace,
    Notification,
    NotificationKind,
    NotificationStatus,
    RaceInterest,
    RaceStatus,
)
from db.types import utcnow
from tests.conftest import GUILD
from tests.fakes.notifications import RecordingDelivery, add_player, make_world, publish, subscribe

DOCS = Path(__file__).resolve().parents[2] / "docs"
ALICE, BOB = 701, 702  # Alice may race the race; Bob is a participant who may not (not linked)
CAROL, DAVE = 703, 704  # neither subscribed: Carol RSVP'd the race, Dave pressed Interested on its Discord event
ANNOUNCEMENTS, MODERATORS = 4242, 4343
SPEC_IDS = [spec.name for spec in EVENT_SPECS]


def event_class(spec: EventSpec) -> type[LiveRaceEvent]:
    """The event in bot/events.py that queues this type."""
    classes = [cls for cls in _subclasses(LiveRaceEvent) if _instance(cls).spec is spec]
    assert len(classes) == 1, f"{spec.name}: add one event class to bot/events.py (found {classes})"
    return classes[0]


def _subclasses(cls: type) -> list[type]:
    return [sub for direct in cls.__subclasses__() for sub in (direct, *_subclasses(direct))]


def _instance(cls: type[LiveRaceEvent], **fields: Any) -> LiveRaceEvent:
    """An instance with every required field filled in (an error text, a reason, …) besides `fields`."""
    values: dict[str, Any] = {"guild_id": GUILD, "tournament_id": 1, "live_race_id": 1, "occurred_at": utcnow()}
    samples = {"int": 1, "datetime": utcnow() - timedelta(hours=1), "bool": True}
    for field in dataclasses.fields(cls):
        if field.name not in values and field.default is dataclasses.MISSING:
            values[field.name] = samples.get(str(field.type).split(" | ")[0], f"some {field.name}")
    return cls(**(values | fields))


def sample_payload(spec: EventSpec) -> dict[str, Any]:
    race = {"id": 1, "title": "Week 3", "tournament": "Cup", "pool": "A", "room_url": "https://racetime.gg/x/y"}
    return {"v": 1, "event": spec.name, "occurred_at": 1767268800, "race": race, "role_id": 43}


# ---- the spec ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=SPEC_IDS)
def test_the_spec_is_complete(spec: EventSpec) -> None:
    for text in (spec.name, spec.label, spec.short_label, spec.headline, spec.emoji, spec.docs):
        assert text.strip(), f"{spec.name}: every text of the spec is needed"
    assert len(spec.short_label) <= 70, "a /notify button label must fit (Discord: 80 characters with ': off')"
    assert 0 <= spec.colour <= 0xFFFFFF
    assert len(spec.name) <= 32, "stored in VARCHAR(32) columns (payloads, subscriptions, outbox rows)"
    assert spec.audience, f"{spec.name}: say who gets it"
    assert spec.stale_once <= set(RaceStatus) and RaceStatus.SCHEDULED not in spec.stale_once
    assert spec.expiry_rule.strip()
    if spec is OPEN_FAILED_ALERT:
        assert spec.code is None and spec.audience == Audience.MODERATORS
    elif spec is LIVE_RACE_REMINDER:  # queued by the reminders job at the player's offsets, not subscribed by type
        assert spec.code is None and spec.audience == Audience.REMINDED
    else:
        assert isinstance(spec.code, int) and spec.audience & (DM_AUDIENCES | Audience.ANNOUNCEMENT)
        assert EventType(spec.name).spec is spec


def test_names_and_codes_are_unique() -> None:
    assert len({spec.name for spec in EVENT_SPECS}) == len(EVENT_SPECS)
    codes = [event_type.code for event_type in EventType]
    assert len(set(codes)) == len(codes)


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=SPEC_IDS)
@pytest.mark.parametrize("channel", [False, True], ids=["dm", "channel"])
def test_it_has_a_renderer(spec: EventSpec, channel: bool) -> None:
    assert spec.name in RENDERERS, f"{spec.name}: register its body with @renders in bot/notifications/render.py"
    message = render(sample_payload(spec), channel=channel)
    assert message.title == f"{spec.emoji} {spec.headline}: Week 3"
    assert message.colour == spec.colour and message.description.strip()


@pytest.mark.parametrize("event_type", list(EventType), ids=[e.value for e in EventType])
async def test_preferences_list_it_by_code_and_label(services, event_type: EventType) -> None:
    assert parse_event_type(event_type.code) is event_type
    assert parse_event_type(str(event_type.code)) is event_type and parse_event_type(event_type.value) is event_type
    views = {view.event_type: view for view in await services.notifications.preferences(ALICE, GUILD)}
    view = views[event_type]
    assert (view.code, view.label, view.effective) == (
        event_type.code,
        event_type.spec.label,
        event_type.spec.default_on,
    )


def test_the_api_document_lists_every_type_and_status() -> None:
    schemas = openapi_document(all_routes(), version="test")["components"]["schemas"]
    assert schemas["EventType"]["enum"] == [event_type.value for event_type in EventType]
    assert schemas["NotificationStatus"]["enum"] == [status.value for status in NotificationStatus]
    described = schemas["NotificationOut"]["properties"]["event_type"]["description"]
    assert all(f"`{e.code}` `{e.value}`" in described for e in EventType)


# ---- audiences --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=SPEC_IDS)
async def test_the_outbox_queues_it_to_its_audience(services, spec: EventSpec) -> None:
    if spec is LIVE_RACE_REMINDER:
        pytest.skip("no event publishes it: the reminders job queues it (tests/notifications/test_reminders.py)")
    world = await make_world(services, announcement_channel_id=ANNOUNCEMENTS)
    async with services.db.transaction() as session:
        session.add(GuildSettings(guild_id=GUILD, moderator_channel_id=MODERATORS))
    await add_player(services, ALICE, "alice")
    bob = await add_player(services, BOB, "bob", linked=False)
    for user in (ALICE, BOB):
        await subscribe(services, user)
    carol = await add_player(services, CAROL, "carol", linked=False)
    await services.reminders.set_rsvp(GUILD, world.race.id, CAROL, True)
    dave = await add_player(services, DAVE, "dave", linked=False)
    async with services.db.transaction() as session:
        session.add(RaceInterest(guild_id=GUILD, live_race_id=world.race.id, player_id=dave))
    cls = event_class(spec)
    fields = {"participant_player_ids": (bob,)} if "participant_player_ids" in cls.__dataclass_fields__ else {}
    await publish(services, _instance(cls, tournament_id=world.tournament.id, live_race_id=world.race.id, **fields))

    async with services.db.read() as session:
        rows = (await session.scalars(select(Notification))).all()
        players = {row.player_id: row for row in rows if row.kind is NotificationKind.DM}
    expected_dms = set()
    if Audience.ELIGIBLE in spec.audience:
        expected_dms.add(await _player_id(services, ALICE))
    if Audience.PARTICIPANTS in spec.audience:
        expected_dms.add(bob)
    if Audience.RSVPED in spec.audience:
        expected_dms.add(carol)
    if Audience.INTERESTED in spec.audience:
        expected_dms.add(dave)
    assert set(players) == expected_dms
    channels = sorted(row.channel_id for row in rows if row.kind is NotificationKind.CHANNEL)
    expected_channels = [ANNOUNCEMENTS] * (Audience.ANNOUNCEMENT in spec.audience)
    expected_channels += [MODERATORS] * (Audience.MODERATORS in spec.audience)
    assert channels == sorted(expected_channels)
    assert all(row.payload["event"] == spec.name for row in rows)
    assert all(row.event_type == (EventType(spec.name) if spec.code is not None else None) for row in rows)


async def _player_id(services, discord_user_id: int) -> int:
    return (await services.players.get(GUILD, discord_user_id)).id


# ---- staleness --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=SPEC_IDS)
async def test_the_dispatcher_expires_it_by_its_rule_and_sends_it_otherwise(services, spec: EventSpec) -> None:
    """One race in each status plus a deleted one, one row of this type for each: the rule decides."""
    world = await make_world(services)
    player = await add_player(services, ALICE, "alice")
    async with services.db.transaction() as session:
        races = {}
        for status in RaceStatus:
            race = LiveRace(
                guild_id=GUILD,
                tournament_id=world.tournament.id,
                pool_id=world.pool.id,
                title=f"race {status}",
                scheduled_at=utcnow() + timedelta(hours=1),
                status=status,
                marker=f"stale-{spec.name}-{status}",
            )
            session.add(race)
            await session.flush()
            races[status] = race.id
        for status, race_id in [*races.items(), (None, None)]:  # None: a deleted race (the row lost its link)
            payload = sample_payload(spec) | {"race": {"id": world.race.id if race_id is None else race_id}}
            dm = spec.code is not None
            session.add(
                Notification(
                    kind=NotificationKind.DM if dm else NotificationKind.CHANNEL,
                    event_type=EventType(spec.name) if dm else None,
                    guild_id=GUILD,
                    player_id=player if dm else None,
                    channel_id=None if dm else MODERATORS,
                    live_race_id=race_id,
                    payload=payload,
                    dedupe_key=f"stale:{status}",
                )
            )
    delivery = RecordingDelivery()
    report = await NotificationDispatcher(services.db, services.settings, lambda: delivery).run_once()

    async with services.db.read() as session:
        outcomes = {row.dedupe_key: (row.status, row.error) for row in await session.scalars(select(Notification))}
    for status in [*RaceStatus, None]:
        reason = spec.stale_reason(status)
        stale = status in spec.stale_once if status is not None else spec.stale_if_deleted
        assert (reason is not None) == stale
        expected = (NotificationStatus.EXPIRED, reason) if stale else (NotificationStatus.SENT, None)
        assert outcomes[f"stale:{status}"] == expected, status
    assert report.expired == len(spec.stale_once) + spec.stale_if_deleted
    assert len(delivery.dms) + len(delivery.posts) == report.sent == len(RaceStatus) + 1 - report.expired


# ---- docs -------------------------------------------------------------------------------------------------------


def _table_rows(path: Path) -> set[str]:
    return {line.strip() for line in path.read_text().splitlines() if line.startswith("|")}


@pytest.mark.parametrize("event_type", list(EventType), ids=[e.value for e in EventType])
def test_the_user_guide_has_its_row(event_type: EventType) -> None:
    spec = event_type.spec
    row = f"| {spec.code} | {spec.emoji} **{spec.headline}** | {spec.dm_audience_docs} | {spec.docs} |"
    assert row in _table_rows(DOCS / "user-guide.md"), f"add to docs/user-guide.md's table of DMs:\n{row}"


@pytest.mark.parametrize("spec", EVENT_SPECS, ids=SPEC_IDS)
def test_the_admin_guide_has_its_expiry_rule(spec: EventSpec) -> None:
    row = f"| {spec.emoji} {spec.headline} | {spec.expiry_rule} |"
    assert row in _table_rows(DOCS / "admin-guide.md"), f"add to docs/admin-guide.md's table of expiry:\n{row}"


def test_the_admin_guide_explains_every_status() -> None:
    documented = {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", (DOCS / "admin-guide.md").read_text(), re.M)}
    assert {status.value for status in NotificationStatus} <= documented
