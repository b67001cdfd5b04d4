"""Auth, scopes, the error envelope, input validation, pagination bounds and the rate limit."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from bot.api.v1 import all_routes
from db.models import ApiToken
from tests.api.conftest import Api, start_api
from tests.conftest import GUILD, MODERATOR


def assert_envelope(body: dict, code: str, field: str | None = None) -> dict:
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == code, error
    assert error["message"]
    if field is not None:
        assert error["details"]["field"] == field, error
    return error


# ---- auth -----------------------------------------------------------------------------------------------


async def test_missing_token_is_401_with_www_authenticate(api: Api) -> None:
    status, body, response = await api.call("GET", "/api/v1/tournaments", token=None)
    assert status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert_envelope(body, "unauthorized")


@pytest.mark.parametrize("header", ["Bearer slt_not-a-real-token", "Bearer ", "Basic dXNlcjpwYXNz", "slt_x"])
async def test_invalid_token_is_401(api: Api, header: str) -> None:
    status, body, response = await api.call("GET", "/api/v1/tournaments", token=None, headers={"Authorization": header})
    assert status == 401
    assert "Bearer" in response.headers["WWW-Authenticate"]
    assert body["error"]["code"] in ("unauthorized", "invalid_token")


async def test_revoked_token_is_refused(api: Api) -> None:
    tokens = await api.app.services.tokens.list(GUILD)
    read = next(token for token in tokens if token.name == "read")
    assert (await api.call("GET", "/api/v1/tournaments", token="read"))[0] == 200
    await api.app.services.tokens.revoke(GUILD, read.id, MODERATOR)
    status, body, response = await api.call("GET", "/api/v1/tournaments", token="read")
    assert status == 401
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert_envelope(body, "invalid_token")


async def test_bearer_scheme_is_case_insensitive(api: Api) -> None:
    headers = {"Authorization": f"bearer {api.tokens['read']}"}
    assert (await api.call("GET", "/api/v1/tournaments", token=None, headers=headers))[0] == 200


async def test_last_used_at_is_kept(api: Api) -> None:
    async with api.app.db.read() as session:
        before = (await session.scalars(select(ApiToken).where(ApiToken.name == "read"))).one()
    assert before.last_used_at is None
    await api.call("GET", "/api/v1/tournaments", token="read")
    async with api.app.db.read() as session:
        after = (await session.scalars(select(ApiToken).where(ApiToken.name == "read"))).one()
    assert after.last_used_at is not None
    # Throttled: a request within the resolution writes nothing, so reads stay reads.
    await api.call("GET", "/api/v1/tournaments", token="read")
    async with api.app.db.read() as session:
        again = (await session.scalars(select(ApiToken).where(ApiToken.name == "read"))).one()
    assert again.last_used_at == after.last_used_at


async def test_read_token_gets_403_on_every_mutation_without_side_effect(api: Api) -> None:
    audit_before = [entry.id for entry in (await api.app.services.audit.list(GUILD, limit=200)).items]
    mutations = [route for route in all_routes() if route.method != "GET" and route.scope is not None]
    assert len(mutations) >= 15
    for route in mutations:
        path = route.path.format(**{name: getattr(api.mine, name) for name in route.path_params})
        status, body, _ = await api.call(route.method, path, token="read", json={})
        assert status == 403, (route.method, route.path, body)
        assert_envelope(body, "insufficient_scope")
    assert [entry.id for entry in (await api.app.services.audit.list(GUILD, limit=200)).items] == audit_before


async def test_read_token_may_read(api: Api) -> None:
    status, body, _ = await api.call("GET", f"/api/v1/tournaments/{api.mine.tid}", token="read")
    assert status == 200 and body["id"] == api.mine.tid


# ---- the envelope for everything that can go wrong ------------------------------------------------------


async def test_unknown_route_is_404_envelope(api: Api) -> None:
    status, body, _ = await api.call("GET", "/api/v1/nothing-here")
    assert status == 404
    assert_envelope(body, "not_found")


async def test_wrong_method_is_405_envelope_with_allow(api: Api) -> None:
    status, body, response = await api.call("PUT", "/api/v1/tournaments")
    assert status == 405
    error = assert_envelope(body, "method_not_allowed")
    assert "GET" in response.headers["Allow"] and "POST" in error["details"]["allowed_methods"]


@pytest.mark.parametrize("path", ["/api/v1/tournaments/abc", "/api/v1/tournaments/-1", "/api/v1/tournaments/1.5"])
async def test_non_integer_path_id_is_404(api: Api, path: str) -> None:
    status, body, _ = await api.call("GET", path)
    assert status == 404
    assert_envelope(body, "not_found")


@pytest.mark.parametrize("value", ["0", str(2**63), "99999999999999999999999999"])
async def test_out_of_range_path_id_is_404(api: Api, value: str) -> None:
    status, body, _ = await api.call("GET", f"/api/v1/tournaments/{value}")
    assert status == 404
    assert_envelope(body, "not_found")


async def test_malformed_json_is_400(api: Api) -> None:
    status, body, _ = await api.call(
        "POST", "/api/v1/tournaments", data=b'{"name": ', headers={"Content-Type": "application/json"}
    )
    assert status == 400
    assert_envelope(body, "invalid_json", field="body")


async def test_unknown_field_is_422_naming_it(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json={"name": "x", "colour": "blue"})
    assert status == 422
    error = assert_envelope(body, "validation_error", field="colour")
    assert "unknown field" in error["message"]


async def test_wrong_type_is_422(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json={"name": "x", "runs_per_pool": "many"})
    assert status == 422
    assert_envelope(body, "validation_error", field="runs_per_pool")


async def test_body_that_is_not_an_object_is_422(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json=[1, 2])
    assert status == 422
    assert_envelope(body, "validation_error")


async def test_missing_required_field_is_422(api: Api) -> None:
    status, body, _ = await api.call("POST", "/api/v1/tournaments", json={})
    assert status == 422
    assert_envelope(body, "validation_error", field="name")


async def test_time_without_offset_is_422(api: Api) -> None:
    path = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    status, body, _ = await api.call(
        "POST", path, json={"pool_id": api.mine.pid, "scheduled_at": "2030-01-01T19:00:00"}
    )
    assert status == 422
    error = assert_envelope(body, "validation_error", field="scheduled_at")
    assert "offset" in error["message"]


async def test_nested_field_is_named_with_its_path(api: Api) -> None:
    path = f"/api/v1/tournaments/{api.mine.tid}/live-races"
    body = {"pool_id": api.mine.pid, "scheduled_at": "2030-01-01T19:00:00Z", "room": {"start_delay": 5}}
    status, answer, _ = await api.call("POST", path, json=body)
    assert status == 422
    assert_envelope(answer, "validation_error", field="room.start_delay")


async def test_oversized_body_is_413_envelope(settings_with) -> None:
    settings = settings_with(api={"max_body_bytes": 2048})
    api = await start_api(settings)
    try:
        response = await api.client.post(
            "/api/v1/tournaments",
            json={"name": "x", "description": "y" * 5000},
            headers={"Authorization": f"Bearer {api.tokens['manage']}"},
        )
        assert response.status == 413
        error = assert_envelope(await response.json(), "payload_too_large")
        assert error["details"]["max_body_bytes"] == 2048
    finally:
        await api.close()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("limit=ten", "limit"),
        ("cursor=!!!", "cursor"),
        ("colour=blue", "colour"),
        ("limit=1&limit=2", "limit"),
        ("active=perhaps", "active"),
    ],
)
async def test_bad_query_is_422(api: Api, query: str, field: str) -> None:
    status, body, _ = await api.call("GET", f"/api/v1/tournaments?{query}")
    assert status == 422, body
    assert_envelope(body, "validation_error", field=field)


async def test_unexpected_failure_is_500_envelope_without_internals(api: Api, monkeypatch) -> None:
    async def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(api.app.services.tournaments, "list_tournaments", explode)
    status, body, _ = await api.call("GET", "/api/v1/tournaments")
    assert status == 500
    error = assert_envelope(body, "internal_error")
    assert "secret" not in error["message"]


# ---- pagination -----------------------------------------------------------------------------------------


async def test_pages_follow_next_cursor(api: Api) -> None:
    for index in range(4):
        await api.call("POST", "/api/v1/tournaments", json={"name": f"paged {index}"})
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "2", **({"cursor": cursor} if cursor else {})}
        status, body, _ = await api.call("GET", "/api/v1/tournaments", params=params)
        assert status == 200 and len(body["items"]) <= 2
        seen += [item["id"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5 and seen == sorted(seen)


# ---- rate limit -----------------------------------------------------------------------------------------


async def test_rate_limit_is_per_token_and_answers_429_with_retry_after(settings_with) -> None:
    settings = settings_with(api={"rate_limit_per_minute": 3})
    api = await start_api(settings)
    client, tokens = api.client, api.tokens
    try:
        manage = {"Authorization": f"Bearer {tokens['manage']}"}
        statuses = [(await client.get("/api/v1/tournaments", headers=manage)).status for _ in range(3)]
        assert statuses == [200, 200, 200]
        response = await client.get("/api/v1/tournaments", headers=manage)
        assert response.status == 429
        retry_after = int(response.headers["Retry-After"])
        assert 1 <= retry_after <= 60
        assert_envelope(await response.json(), "rate_limited")
        # Another token has its own window; health needs no token and is not limited.
        read = {"Authorization": f"Bearer {tokens['read']}"}
        assert (await client.get("/api/v1/tournaments", headers=read)).status == 200
        assert (await client.get("/api/v1/health")).status == 200
    finally:
        await api.close()


# ---- the OpenAPI document -------------------------------------------------------------------------------


async def test_openapi_document_lists_every_registered_route(api: Api) -> None:
    status, document, _ = await api.call("GET", "/api/v1/openapi.json", token=None)
    assert status == 200
    assert document["openapi"] == "3.1.0"
    documented = {(method.upper(), path) for path, ops in document["paths"].items() for method in ops}
    registered = {(route.method, route.path) for route in all_routes()}
    assert documented == registered
    schemas = document["components"]["schemas"]
    text = str(document)
    for name in schemas:
        assert name.replace("_", "").isalnum(), name
    import re

    for ref in set(re.findall(r"#/components/schemas/([A-Za-z0-9_.-]+)", text)):
        assert ref in schemas, ref


async def test_openapi_operations_are_unique_and_complete(api: Api) -> None:
    _, document, _ = await api.call("GET", "/api/v1/openapi.json", token=None)
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            if op["security"]:
                assert {"401", "429"} <= set(op["responses"]), (method, path)
            if "requestBody" in op:
                assert {"400", "413", "422"} <= set(op["responses"]), (method, path)


def test_docs_have_an_example_for_every_route() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    aliases = text.split("## Aliases", 1)[1].split("\n## ", 1)[0]
    for route in all_routes():
        if route.alias_of is not None:  # an old name, kept for existing scripts: listed once, without an example
            assert f"`{route.path}`" in aliases, f"name the old path {route.path} under Aliases in docs/api.md"
            continue
        assert f"#### `{route.method} {route.path}`" in text, f"regenerate docs: scripts/api_examples.py ({route.path})"
