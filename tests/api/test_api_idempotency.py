"""`Idempotency-Key` on every POST that creates something: a retried request creates nothing and gets the first
answer; the same key for another request is refused; keys are per guild; two requests with one key never both
create; a request that failed frees its key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.api.v1 import all_routes
from bot.events import LiveRaceScheduled
from bot.notifications.dispatcher import NotificationDispatcher
from bot.services.idempotency import ABANDONED_AFTER, WINDOW, IdempotencyService
from db.models import (
    AuditEntry,
    EventType,
    IdempotencyKey,
    IdempotencyState,
    LiveRace,
    Notification,
    NotificationKind,
    RoomProfile,
)
from db.types import utcnow
from tests.api.conftest import NEWCOMER_RACETIME, Api
from tests.api.test_api_core import assert_envelope
from tests.conftest import GUILD, MODERATOR, OTHER_GUILD
from tests.fakes.notifications import RecordingDelivery

NEWCOMER = 300_000_000_000_000_077  # eligible for the live races of guild "mine", subscribed to every DM
PROFILES = "/api/v1/room-profiles"


def races_path(api: Api) -> str:
    return f"/api/v1/tournaments/{api.mine.tid}/live-races"


# One start for the whole module: a retry must send the very same body, and a clock second may pass in between.
START = (datetime.now(UTC) + timedelta(days=3)).replace(hour=19, minute=0, second=0, microsecond=0)


def race_body(api: Api, **fields: Any) -> dict[str, Any]:
    return {"pool_id": api.mine.pid, "scheduled_at": START.strftime("%Y-%m-%dT%H:%M:%SZ"), "title": "Week 4"} | fields


async def count(api: Api, model: Any, *conditions: Any) -> int:
    async with api.app.db.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*conditions))


async def keyed(api: Api, path: str, body: Any, key: str, *, token: str = "manage") -> tuple[int, Any, Any]:
    return await api.call("POST", path, json=body, headers={"Idempotency-Key": key}, token=token)


def test_every_post_that_creates_honours_the_key() -> None:
    """Declared on the route, so a create route added later cannot forget it."""
    creating = [
        route for route in all_routes() if route.method == "POST" and 201 in (route.status, *route.other_statuses)
    ]
    assert len(creating) >= 6
    assert [f"{r.method} {r.path}" for r in creating if not r.idempotent] == []
    assert [f"{r.method} {r.path}" for r in all_routes() if r.idempotent and r.method != "POST"] == []


async def test_the_document_names_the_header_on_exactly_those_routes(api: Api) -> None:
    _, document, _ = await api.call("GET", "/api/v1/openapi.json", token=None)
    for route in all_routes():
        operation = document["paths"][route.path][route.method.lower()]
        headers = [p for p in operation.get("parameters", []) if p["in"] == "header"]
        assert [p["name"] for p in headers] == (["Idempotency-Key"] if route.idempotent else []), route.path
        if route.idempotent:
            assert headers[0]["schema"]["maxLength"] == 255
            assert "Idempotent-Replayed" in operation["responses"]["201"]["headers"]
            assert {"409", "422"} <= set(operation["responses"])


async def test_a_retried_live_race_post_makes_one_race_and_one_dm(api: Api) -> None:
    """The regression: a client that retries after a lost answer must not schedule the race twice."""
    services = api.app.services
    await services.players.upsert(
        GUILD,
        NEWCOMER,
        MODERATOR,
        display_name="newcomer",
        racetime_id=NEWCOMER_RACETIME["id"],
        racetime_name=NEWCOMER_RACETIME["name"],
    )
    await services.notifications.set_all(NEWCOMER, True, guild_id=GUILD, actor=MODERATOR)
    races_before = await count(api, LiveRace)
    audit_before = await count(api, AuditEntry, AuditEntry.action == "live_race.create")

    status, first, response = await keyed(api, races_path(api), race_body(api), "retry-7c9e")
    assert status == 201 and "Idempotent-Replayed" not in response.headers
    status, again, replayed = await keyed(api, races_path(api), race_body(api), "retry-7c9e")
    assert (status, again) == (201, first)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.headers["Location"] == response.headers["Location"] == f"{races_path(api)}/{first['id']}"

    assert await count(api, LiveRace) == races_before + 1
    assert await count(api, AuditEntry, AuditEntry.action == "live_race.create") == audit_before + 1
    scheduled_dms = (
        Notification.event_type == EventType.LIVE_RACE_SCHEDULED,
        Notification.kind == NotificationKind.DM,
        Notification.live_race_id == first["id"],
    )
    assert await count(api, Notification, *scheduled_dms) == 1
    delivery = RecordingDelivery()
    await NotificationDispatcher(api.app.db, api.app.settings, lambda: delivery).run_once()
    assert [(user, message.title.split(":")[0]) for user, message, _ in delivery.dms] == [
        (NEWCOMER, "📅 Live race scheduled")
    ]


@pytest.mark.parametrize("route", ["tournament", "pool", "seed", "room profile", "run"])
async def test_every_create_route_replays_instead_of_creating_again(api: Api, route: str) -> None:
    tournaments = "/api/v1/tournaments"
    path, body = {
        "tournament": (tournaments, {"name": "Autumn Cup"}),
        "pool": (f"{tournaments}/{api.mine.tid}/pools", {"name": "Pool Z"}),
        "seed": (
            f"{tournaments}/{api.mine.tid}/pools/{api.mine.pid}/seeds",
            {"url": "https://s.example/9"},
        ),
        "room profile": (PROFILES, {"name": "Streamed", "start_delay": 15}),
        "run": (
            f"{tournaments}/{api.mine.tid}/runs",
            {"discord_user_id": str(api.mine.discord_user_id), "seed_id": api.mine.sid, "status": "forfeit"},
        ),
    }[route]
    audit_before = await count(api, AuditEntry)
    status, first, _ = await keyed(api, path, body, f"create-{route}")
    assert status == 201, first
    status, again, response = await keyed(api, path, body, f"create-{route}")
    assert (status, again, response.headers["Idempotent-Replayed"]) == (201, first, "true")
    assert await count(api, AuditEntry) == audit_before + 1  # one change, one entry
    # Without the key the same body is a second request, refused for the duplicate it would be.
    assert (await api.call("POST", path, json=body))[0] == 409


async def test_the_same_key_for_another_request_is_422_and_creates_nothing(api: Api) -> None:
    status, _, _ = await keyed(api, races_path(api), race_body(api), "k-1")
    assert status == 201
    races = await count(api, LiveRace)
    status, body, _ = await keyed(api, races_path(api), race_body(api, title="Another race"), "k-1")
    assert status == 422
    error = assert_envelope(body, "idempotency_key_reused", field="Idempotency-Key")
    assert "POST /api/v1/tournaments/" in error["message"]
    status, body, _ = await keyed(api, PROFILES, {"name": "Other route"}, "k-1")  # another route: another request
    assert status == 422 and body["error"]["code"] == "idempotency_key_reused"
    assert await count(api, LiveRace) == races
    assert await count(api, RoomProfile, RoomProfile.name == "Other route") == 0


async def test_key_order_and_spacing_of_the_body_do_not_make_another_request(api: Api) -> None:
    body = {"name": "Order", "start_delay": 15}
    status, first, _ = await keyed(api, PROFILES, body, "order")
    raw = b'{ "start_delay": 15,\n  "name": "Order" }'
    headers = {"Idempotency-Key": "order", "Content-Type": "application/json"}
    status, again, response = await api.call("POST", PROFILES, data=raw, headers=headers)
    assert (status, again, response.headers["Idempotent-Replayed"]) == (201, first, "true")


async def test_keys_belong_to_one_guild(api: Api) -> None:
    body = {"name": "Shared name", "start_delay": 20}
    status, mine, _ = await keyed(api, PROFILES, body, "same-key")
    assert status == 201
    status, theirs, response = await keyed(api, PROFILES, body, "same-key", token="other")
    assert status == 201 and "Idempotent-Replayed" not in response.headers  # created in guild B, not replayed
    assert theirs["id"] != mine["id"]
    assert (await api.call("GET", f"{PROFILES}/{theirs['id']}"))[0] == 404  # guild A cannot see it
    _, again, response = await keyed(api, PROFILES, body, "same-key")
    assert again == mine and response.headers["Idempotent-Replayed"] == "true"
    status, body_b, _ = await keyed(api, PROFILES, {"name": "B changes its mind"}, "same-key", token="other")
    assert status == 422 and body_b["error"]["code"] == "idempotency_key_reused"  # B's own key, B's own request


@pytest.mark.parametrize(
    ("key", "problem"),
    [("x" * 256, "at most 255"), ("caf\u00e9", "printable ASCII"), ("tab\there", "printable ASCII")],
    ids=["too long", "not ascii", "control character"],
)
async def test_a_bad_key_is_422_and_creates_nothing(api: Api, key: str, problem: str) -> None:
    profiles = await count(api, RoomProfile)
    status, body, _ = await api.call(
        "POST",
        PROFILES,
        data=b'{"name": "bad key"}',
        headers={"Idempotency-Key": key, "Content-Type": "application/json"},
    )
    assert status == 422
    assert problem in assert_envelope(body, "validation_error", field="Idempotency-Key")["message"]
    assert await count(api, RoomProfile) == profiles


async def test_an_empty_key_is_422(api: Api) -> None:
    status, body, _ = await keyed(api, PROFILES, {"name": "empty key"}, "")
    assert status == 422 and body["error"]["details"]["field"] == "Idempotency-Key"


async def test_a_failed_request_frees_its_key_for_the_corrected_retry(api: Api) -> None:
    tournament = f"/api/v1/tournaments/{api.mine.tid}"
    assert (await api.call("PATCH", tournament, json={"active": False}))[0] == 200
    status, body, _ = await keyed(api, races_path(api), race_body(api), "after-fix")
    assert status == 409 and body["error"]["code"] == "conflict"  # the tournament is not active
    assert await count(api, IdempotencyKey) == 0
    assert (await api.call("PATCH", tournament, json={"active": True}))[0] == 200
    status, _, response = await keyed(api, races_path(api), race_body(api), "after-fix")
    assert status == 201 and "Idempotent-Replayed" not in response.headers


async def test_a_second_request_while_the_first_is_creating_is_409_and_never_creates(api: Api) -> None:
    """The first request is held inside the transaction that creates its race; the same request sent now is
    refused at once (it does not wait for SQLite's write lock), and after the first commits it is a replay."""
    entered, release = asyncio.Event(), asyncio.Event()

    async def hold(session, event) -> None:
        if isinstance(event, LiveRaceScheduled) and not release.is_set():
            entered.set()
            await release.wait()

    api.app.events.subscribe(hold)
    races = await count(api, LiveRace)
    first = asyncio.create_task(keyed(api, races_path(api), race_body(api), "twice"))
    await entered.wait()
    status, body, _ = await keyed(api, races_path(api), race_body(api), "twice")
    assert status == 409
    assert assert_envelope(body, "idempotency_key_in_progress", field="Idempotency-Key")["details"]["state"] == (
        "in_progress"
    )
    release.set()
    status, created, _ = await first
    assert status == 201
    status, again, response = await keyed(api, races_path(api), race_body(api), "twice")
    assert (status, again, response.headers["Idempotent-Replayed"]) == (201, created, "true")
    assert await count(api, LiveRace) == races + 1


async def test_a_reservation_whose_request_died_is_taken_over(api: Api) -> None:
    """A process killed after reserving the key but before creating anything: after a while the key is free."""
    keys = api.app.services.idempotency
    status, _, _ = await keyed(api, PROFILES, {"name": "Died"}, "died")  # reserve, create, answer …
    assert status == 201
    async with api.app.db.transaction() as session:  # … then make it look like the process died mid-way
        await session.execute(
            update(IdempotencyKey).values(
                state=IdempotencyState.IN_PROGRESS,
                claimed_at=utcnow() - ABANDONED_AFTER - timedelta(seconds=1),
                response_status=None,
                response_body=None,
            )
        )
        await session.execute(update(RoomProfile).where(RoomProfile.name == "Died").values(name="Gone"))
    assert keys is api.app.services.idempotency
    status, created, response = await keyed(api, PROFILES, {"name": "Died"}, "died")
    assert status == 201 and "Idempotent-Replayed" not in response.headers and created["name"] == "Died"


async def test_an_object_created_without_its_answer_stored_is_never_created_again(api: Api) -> None:
    """A process killed after the commit but before storing the answer: the key keeps refusing, with a hint."""
    status, _, _ = await keyed(api, PROFILES, {"name": "Half"}, "half")
    assert status == 201
    async with api.app.db.transaction() as session:
        await session.execute(
            update(IdempotencyKey).values(
                state=IdempotencyState.CREATED, claimed_at=utcnow() - ABANDONED_AFTER - timedelta(seconds=1)
            )
        )
    profiles = await count(api, RoomProfile)
    status, body, _ = await keyed(api, PROFILES, {"name": "Half"}, "half")
    assert status == 409 and body["error"]["details"]["state"] == "created"
    assert "find the object with a GET" in body["error"]["message"]
    assert await count(api, RoomProfile) == profiles


async def test_keys_expire_after_24_hours_and_the_upkeep_purges_them(api: Api) -> None:
    status, _, _ = await keyed(api, PROFILES, {"name": "Yesterday"}, "daily")
    assert status == 201
    later = IdempotencyService(api.app.db, clock=lambda: utcnow() + WINDOW + timedelta(minutes=1))
    assert await later.purge_expired() == 1
    assert await count(api, IdempotencyKey) == 0
    # A key past its window is a new key: the same request runs again (here: refused as the duplicate it is).
    status, body, _ = await keyed(api, PROFILES, {"name": "Yesterday"}, "daily")
    assert status == 409 and body["error"]["code"] == "conflict"
    await api.app._upkeep()  # the hourly job runs the purge too
    assert await count(api, IdempotencyKey) == 0


async def test_a_key_is_optional_and_read_tokens_are_refused_before_it_counts(api: Api) -> None:
    status, body, _ = await keyed(api, PROFILES, {"name": "Read only"}, "read-key", token="read")
    assert status == 403 and body["error"]["code"] == "insufficient_scope"
    assert await count(api, IdempotencyKey) == 0
    assert (await api.call("POST", PROFILES, json={"name": "No key"}))[0] == 201
    assert await count(api, IdempotencyKey, IdempotencyKey.guild_id == OTHER_GUILD) == 0
