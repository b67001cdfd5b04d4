"""Seeds were called permalinks: the old routes and field names stay as aliases of the new ones (docs/api.md,
"Aliases"). Old routes run the same handlers; answers carry both names with one value; requests take either name,
and refuse both names with different values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.api.v1 import all_routes
from tests.api.conftest import Api

ISO_Z = "%Y-%m-%dT%H:%M:%SZ"


def future(days: int = 3) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).strftime(ISO_Z)


def _pool(api: Api, name: str) -> str:
    return f"/api/v1/tournaments/{api.mine.tid}/pools/{api.mine.pid}/{name}"


async def test_the_old_seed_routes_answer_as_the_new_ones(api: Api) -> None:
    old, new = _pool(api, "permalinks"), _pool(api, "seeds")
    assert (await api.call("GET", old, token="read"))[:2] == (await api.call("GET", new, token="read"))[:2]
    status, seed, response = await api.call("POST", old, json={"url": "https://seeds.example/old-route"})
    assert status == 201 and response.headers["Location"] == f"{new}/{seed['id']}"  # the new name
    assert (await api.call("GET", f"{old}/{seed['id']}"))[1] == (await api.call("GET", f"{new}/{seed['id']}"))[1]
    status, patched, _ = await api.call("PATCH", f"{old}/{seed['id']}", json={"notes": "via the old name"})
    assert status == 200 and patched["notes"] == "via the old name"
    status, batch, _ = await api.call(
        "POST", f"{old}/batch", json={"permalinks": [{"url": "https://seeds.example/b1"}]}
    )
    assert status == 201 and [item["url"] for item in batch["items"]] == ["https://seeds.example/b1"]
    status, batch, _ = await api.call(
        "POST", f"{new}/batch", json={"permalinks": [{"url": "https://seeds.example/b2"}]}
    )
    assert status == 201 and [item["url"] for item in batch["items"]] == ["https://seeds.example/b2"]
    assert (await api.call("DELETE", f"{old}/{seed['id']}"))[0] == 204
    assert (await api.call("GET", f"{new}/{seed['id']}"))[0] == 404
    assert (await api.call("DELETE", f"{old}/{api.mine.spare_sid}"))[0] == 409  # same rules: raced seeds stay


async def test_a_batch_takes_one_list_under_either_name(api: Api) -> None:
    new = _pool(api, "seeds")
    one, two = [{"url": "https://seeds.example/c1"}], [{"url": "https://seeds.example/c2"}]
    status, body, _ = await api.call("POST", f"{new}/batch", json={"seeds": one, "permalinks": two})
    assert status == 422 and body["error"]["details"]["errors"][0]["type"] == "renamed_field_conflict"
    assert body["error"]["message"] == (
        "body: seeds and permalinks (its old name) are both given and differ; send seeds only"
    )
    assert (await api.call("POST", f"{new}/batch", json={"seeds": one, "permalinks": one}))[0] == 201
    status, body, _ = await api.call("POST", f"{new}/batch", json={})
    assert status == 422 and body["error"]["details"]["field"] == "seeds"


async def test_answers_carry_the_old_field_names_with_the_same_value(api: Api) -> None:
    race = f"/api/v1/tournaments/{api.mine.tid}/live-races/{api.mine.rid}"
    _, one, _ = await api.call("GET", race)
    assert one["seed"] == one["permalink"] == {"id": api.mine.sid, "url": "https://seeds.example/mine/1"}
    _, listed, _ = await api.call("GET", f"/api/v1/tournaments/{api.mine.tid}/live-races")
    assert all(item["seed"] == item["permalink"] for item in listed["items"])
    _, hidden, _ = await api.call("GET", race, token="read")
    assert hidden["seed"] is None and hidden["permalink"] is None  # secret under either name
    _, runs, _ = await api.call("GET", f"/api/v1/tournaments/{api.mine.tid}/runs", token="read")
    assert runs["items"] and all(run["seed_id"] == run["permalink_id"] for run in runs["items"])


async def test_requests_take_the_old_field_names(api: Api) -> None:
    races = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    body = {"pool_id": api.mine.pid, "scheduled_at": future(), "permalink_id": api.mine.sid}
    status, created, _ = await api.call("POST", races, json=body)
    assert status == 201, created
    assert created["seed"]["id"] == api.mine.sid
    status, same, _ = await api.call("POST", races, json={**body, "seed_id": api.mine.sid, "scheduled_at": future(4)})
    assert status == 201 and same["seed"]["id"] == api.mine.sid  # both names, one value: fine
    status, edited, _ = await api.call("PATCH", f"{races}/{created['id']}", json={"permalink_id": None})
    assert status == 200 and edited["seed"] is None  # null under the old name clears it too
    status, edited, _ = await api.call("PATCH", f"{races}/{created['id']}", json={"permalink_id": api.mine.sid})
    assert status == 200 and edited["seed"]["id"] == api.mine.sid

    runs = f"/api/v1/tournaments/{api.mine.tid}/runs"
    await api.call("PUT", "/api/v1/players/500000000000000001", json={"display_name": "Bob"})
    run_body = {"discord_user_id": "500000000000000001", "permalink_id": api.mine.spare_sid, "status": "forfeit"}
    status, run, _ = await api.call("POST", runs, json=run_body)
    assert status == 201 and run["seed_id"] == run["permalink_id"] == api.mine.spare_sid
    _, by_old, _ = await api.call("GET", f"{runs}?permalink_id={api.mine.spare_sid}", token="read")
    _, by_new, _ = await api.call("GET", f"{runs}?seed_id={api.mine.spare_sid}", token="read")
    assert by_old == by_new and run["id"] in [item["id"] for item in by_new["items"]]


async def test_both_names_with_different_values_are_refused(api: Api) -> None:
    races = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    runs = f"/api/v1/tournaments/{api.mine.tid}/runs"
    both = {"seed_id": api.mine.sid, "permalink_id": api.mine.spare_sid}
    cases = [
        ("POST", races, {"pool_id": api.mine.pid, "scheduled_at": future(), **both}),
        ("PATCH", f"{races}/{api.mine.rid}", both),
        ("PATCH", f"{races}/{api.mine.rid}", {"seed_id": None, "permalink_id": api.mine.sid}),
        ("POST", runs, {"discord_user_id": str(api.mine.discord_user_id), "status": "forfeit", **both}),
        ("GET", f"{runs}?seed_id={api.mine.sid}&permalink_id={api.mine.spare_sid}", None),
    ]
    for method, path, body in cases:
        status, answer, _ = await api.call(method, path, json=body)
        assert status == 422, (method, path, answer)
        assert answer["error"]["details"]["errors"][0]["type"] == "renamed_field_conflict", answer
        assert "seed_id and permalink_id (its old name) are both given and differ" in answer["error"]["message"]
    status, answer, _ = await api.call("POST", runs, json={"discord_user_id": "1", "status": "forfeit"})
    assert status == 422 and answer["error"]["details"]["field"] == "seed_id"  # neither name: seed_id is missing
    status, answer, _ = await api.call("POST", runs, json={**both, "discord_user_id": "1", "status": "forfeit"})
    assert status == 422  # checked before anything is looked up


async def test_the_document_lists_the_old_routes_as_deprecated_under_their_old_operation_ids(api: Api) -> None:
    _, document, _ = await api.call("GET", "/api/v1/openapi.json", token=None)
    seeds = "/api/v1/tournaments/{tid}/pools/{pid}/seeds"
    permalinks = "/api/v1/tournaments/{tid}/pools/{pid}/permalinks"
    old = {
        (permalinks, "get"): "list_permalinks",
        (permalinks, "post"): "create_permalink",
        (permalinks + "/batch", "post"): "create_permalinks",
        (permalinks + "/{sid}", "get"): "get_permalink",
        (permalinks + "/{sid}", "patch"): "update_permalink",
        (permalinks + "/{sid}", "delete"): "delete_permalink",
    }
    for (path, method), operation_id in old.items():
        operation = document["paths"][path][method]
        assert (operation["operationId"], operation["deprecated"]) == (operation_id, True)
        new = document["paths"][path.replace(permalinks, seeds)][method]
        assert "deprecated" not in new and new["operationId"] != operation_id
        assert operation["responses"] == new["responses"]
        assert operation.get("requestBody") == new.get("requestBody")
    aliases = [(route.method, route.path, route.alias_of) for route in all_routes() if route.alias_of]
    assert len(aliases) == len(old) and all(alias.replace(permalinks, seeds) == of for _, alias, of in aliases)
    schemas = document["components"]["schemas"]
    assert schemas["LiveRaceCreate"]["properties"]["permalink_id"]["deprecated"] is True
    assert {"permalink", "seed"} <= set(schemas["LiveRaceOut"]["required"])
    assert schemas["RunImport"]["anyOf"] == [{"required": ["seed_id"]}, {"required": ["permalink_id"]}]
