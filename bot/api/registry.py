"""The route registry: one declaration per route registers the aiohttp handler AND describes it in OpenAPI.

A `Route` names its method, path, scope and the pydantic models of its query, body and response. The
registry wraps the handler so that, before the handler runs, the token is authenticated, rate-limited and
scope-checked, the path ids are integers in range, and the query and body are validated into their models;
after it, the result is serialised through the response model. `openapi_document` reads the same
declarations, so the document cannot describe a route the server does not have, or miss one it has.

A route may keep an old path as an alias (`Alias`): the same handler serves it, and the document lists it as a
deprecated operation under its old operation id, so scripts and generated clients written against it keep working.

A route declared `idempotent` (every POST that creates something) honours an `Idempotency-Key` header: the same
key with the same request within 24 h answers the first answer again, with `Idempotent-Replayed: true`, and
changes nothing (`bot/services/idempotency.py` keeps the keys).
"""

from __future__ import annotations

import asyncio
import json
import re
import types
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, Union, get_args, get_origin

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from bot.actors import Actor
from bot.api.auth import authenticate, require_scope
from bot.api.errors import ApiError
from bot.api.ratelimit import RateLimiter
from bot.api.schemas import MAX_ID, ErrorResponse, ItemsPage, PageQuery
from bot.errors import NotFound
from bot.jobs import JobRunner
from bot.services import Services
from bot.services.idempotency import KEY_FIELD, MAX_KEY_LENGTH, WINDOW, KeyClaim, StoredAnswer, request_fingerprint
from bot.services.status import PermissionProbe, StatusService
from bot.services.tokens import AuthenticatedToken
from bot.settings import Settings
from db.models import TokenScope
from db.session import Database


class ApiHost(Protocol):
    """What the API reads of the process that serves it. `bot.app.Application` is the one; a protocol, so that
    bot/api never imports bot/app (which imports bot/api to start the server)."""

    settings: Settings
    version: str
    db: Database
    services: Services
    jobs: JobRunner
    status: StatusService
    permission_probe: PermissionProbe | None
    discord_state: str


APP_KEY = web.AppKey("startline_app", ApiHost)


def services_of(request: web.Request) -> Services:
    """The services, for a handler of the web application `create_api_app` made (the one accessor)."""
    return request.app[APP_KEY].services


LIMITER_KEY = web.AppKey("startline_rate_limiter", RateLimiter)

_PATH_PARAM = re.compile(r"{([a-z_]+)}")
JSON = "application/json"
IDEMPOTENCY_KEY = KEY_FIELD  # the request header
REPLAYED = "Idempotent-Replayed"  # the answer header of a replay


# Set by the test suite: every plain-data answer is checked against its route's response model (below).
CHECK_DATA_ANSWERS = False


@dataclass(frozen=True)
class Reply:
    """A handler's answer when the route's default status is not enough (201 with Location, 200 vs 201)."""

    body: BaseModel | dict[str, Any] | None  # a dict: plain data shaped like the response model (encode_data)
    status: int
    location: str | None = None


@dataclass
class ApiCall:
    """Everything a handler needs, already checked: the token, the path ids, the query and the body."""

    request: web.Request
    app: ApiHost
    token: AuthenticatedToken | None
    path: dict[str, int]
    query: Any
    body: Any

    @property
    def services(self) -> Services:
        return self.app.services

    @property
    def guild_id(self) -> int:
        assert self.token is not None, "a public route has no guild"
        return self.token.guild_id

    @property
    def actor(self) -> Actor:
        assert self.token is not None, "a public route has no actor"
        return Actor.token(self.token.id, self.token.name)

    @property
    def can_manage(self) -> bool:
        return self.token is not None and self.token.scope is TokenScope.MANAGE


Handler = Callable[[ApiCall], Awaitable[Any]]


@dataclass(frozen=True)
class Alias:
    """An old path of a route, served by the same handler (`operation_id`: its old operationId)."""

    path: str
    operation_id: str


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # OpenAPI form: /api/v1/tournaments/{tid}
    handler: Handler
    summary: str
    tag: str
    scope: TokenScope | None  # None: no bearer token (health, the document, the calendar feed)
    response: type[BaseModel] | None  # None: 204 No Content, or a non-JSON body (see media_type)
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    status: int = 200
    other_statuses: tuple[int, ...] = ()  # further success statuses (PUT: 201 when it creates)
    errors: tuple[int, ...] = ()  # error statuses beyond the ones every route of its kind has
    media_type: str = JSON
    description: str = ""
    # Honours `Idempotency-Key`: every POST that creates something must (a test walks the routes).
    idempotent: bool = False
    operation_id: str = ""  # default: the handler's name
    alias_of: str | None = None  # an old path kept for existing scripts: the path it is the old name of

    @property
    def name(self) -> str:
        return self.operation_id or self.handler.__name__

    @property
    def path_params(self) -> list[str]:
        return _PATH_PARAM.findall(self.path)

    @property
    def aiohttp_path(self) -> str:
        # Non-digit ids never match a route, so they get the same 404 as an id that does not exist.
        return _PATH_PARAM.sub(lambda m: "{" + m.group(1) + r":\d+}", self.path)

    @property
    def error_statuses(self) -> list[int]:
        statuses = set(self.errors)
        if self.scope is not None:
            statuses |= {401, 404, 429}
        if self.scope is TokenScope.MANAGE:
            statuses.add(403)
        if self.path_params:
            statuses.add(404)
        if self.query is not None and self.query.model_fields:
            statuses.add(422)
        if self.body is not None:
            statuses |= {400, 413, 422}
        if self.idempotent:
            statuses |= {409, 422}
        return sorted(statuses)


@dataclass
class RouteTable:
    """The routes of one resource module, declared with the `route` decorator, or with one of the shortcuts below
    for a resource's usual routes, which declare their conventions once:

    - `read`: a GET with the read scope; `page`: one page of a list (`ItemsPage`, `PageQuery` unless told);
    - `create`: a POST with the manage scope answering 201 (with Location) and honouring `Idempotency-Key`;
    - `update`: a PATCH with the manage scope; `delete`: a DELETE with the manage scope answering 204;
    - `manage`: any other method with the manage scope.

    `create` and `update` may answer 409 unless told otherwise (`errors=...`). `tag` is the tag of the routes
    declared without one; `section(tag)` declares into the same table under another tag."""

    routes: list[Route] = field(default_factory=list)
    tag: str | None = None

    def route(
        self, method: str, path: str, *, alias: Alias | None = None, **options: Any
    ) -> Callable[[Handler], Handler]:
        if self.tag is not None:
            options.setdefault("tag", self.tag)

        def register(handler: Handler) -> Handler:
            route = Route(method=method, path=path, handler=handler, **options)
            self.routes.append(route)
            if alias is not None:
                self.routes.append(replace(route, path=alias.path, operation_id=alias.operation_id, alias_of=path))
            return handler

        return register

    def section(self, tag: str) -> RouteTable:
        return RouteTable(self.routes, tag)

    def read(self, path: str, summary: str, response: type[BaseModel], **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, summary=summary, scope=TokenScope.READ, response=response, **options)

    def page(
        self, path: str, summary: str, item: type[BaseModel], query: type[BaseModel] = PageQuery, **options: Any
    ) -> Callable[[Handler], Handler]:
        return self.read(path, summary, ItemsPage[item], query=query, **options)  # type: ignore[valid-type]

    def manage(self, method: str, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.route(method, path, summary=summary, scope=TokenScope.MANAGE, **options)

    def create(
        self, path: str, summary: str, body: type[BaseModel], response: type[BaseModel], **options: Any
    ) -> Callable[[Handler], Handler]:
        options = {"errors": (409,), **options}
        return self.manage("POST", path, summary, body=body, response=response, status=201, idempotent=True, **options)

    def update(
        self, path: str, summary: str, body: type[BaseModel], response: type[BaseModel], **options: Any
    ) -> Callable[[Handler], Handler]:
        options = {"errors": (409,), **options}
        return self.manage("PATCH", path, summary, body=body, response=response, **options)

    def delete(self, path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        return self.manage("DELETE", path, summary, response=None, status=204, **options)


# ---- turning a request into an ApiCall ------------------------------------------------------------------

_MESSAGES = {
    "timezone_aware": "must include a timezone offset (for example 2026-12-01T19:00:00Z)",
    "extra_forbidden": "unknown field",
    "missing": "is required",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def validation_error(exc: ValidationError, where: str) -> ApiError:
    problems = [
        {
            "field": _field_name(error["loc"]),
            "message": _MESSAGES.get(error["type"], error["msg"]),
            "type": error["type"],
        }
        for error in exc.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = problems[0]
    # A problem of the whole body (two names of one field that disagree) has no field to name.
    named = exc.errors()[0]["loc"] != ()
    return ApiError(
        422,
        "validation_error",
        f"{where} field {first['field']}: {first['message']}" if named else f"{where}: {first['message']}",
        details={"field": first["field"], "errors": problems},
    )


def _list_fields(model: type[BaseModel]) -> frozenset[str]:
    def is_list(annotation: Any) -> bool:
        if get_origin(annotation) in (Union, types.UnionType):
            return any(is_list(arg) for arg in get_args(annotation))
        return get_origin(annotation) is list

    return frozenset(name for name, info in model.model_fields.items() if is_list(info.annotation))


def parse_query(model: type[BaseModel], query: Mapping[str, str], list_fields: frozenset[str]) -> BaseModel:
    raw: dict[str, Any] = {}
    for key in set(query.keys()):
        values = query.getall(key)  # type: ignore[attr-defined]
        if key in list_fields:
            raw[key] = values
        elif len(values) > 1:
            raise ApiError(422, "validation_error", f"query field {key}: given more than once", details={"field": key})
        else:
            raw[key] = values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_error(exc, "query") from None


async def parse_body(model: type[BaseModel], request: web.Request) -> BaseModel:
    raw = await request.read()  # aiohttp enforces client_max_size here (413)
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        if any(error["type"] == "json_invalid" for error in exc.errors()):
            raise ApiError(
                400, "invalid_json", "the request body is not valid JSON", details={"field": "body"}
            ) from None
        raise validation_error(exc, "body") from None


def parse_path(route: Route, match_info: Mapping[str, str]) -> dict[str, int]:
    path: dict[str, int] = {}
    for name in route.path_params:
        value = int(match_info[name])
        if not 1 <= value <= MAX_ID:
            raise NotFound(f"{name} {value} not found", field=name)
        path[name] = value
    return path


def encode_data(route: Route, data: dict[str, Any]) -> bytes:
    """A hot route's answer given as plain data shaped like its response model (times as aware UTC datetimes),
    encoded by orjson: building and serialising pydantic models was most of a list page's cost. Under the test
    suite (`CHECK_DATA_ANSWERS`) the data is validated by the route's model and must encode to the same JSON."""
    body = orjson.dumps(data, option=orjson.OPT_UTC_Z)
    if CHECK_DATA_ANSWERS:
        assert route.response is not None, f"{route.path} declares no response model"
        expected = route.response.model_validate(data).model_dump_json()
        assert json.loads(body) == json.loads(expected), f"{route.method} {route.path}: data answer differs"
    return body


def render(route: Route, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    reply = result if isinstance(result, Reply) else Reply(result, route.status)
    if reply.body is None:
        return web.Response(status=204)
    headers = {"Location": reply.location} if reply.location else None
    body = encode_data(route, reply.body) if isinstance(reply.body, dict) else reply.body.model_dump_json().encode()
    return web.Response(status=reply.status, body=body, content_type=JSON, headers=headers)


def aiohttp_handler(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    list_fields = _list_fields(route.query) if route.query is not None else frozenset()

    async def handle(request: web.Request) -> web.StreamResponse:
        app = request.app[APP_KEY]
        token = None
        if route.scope is not None:
            token = await authenticate(request, services_of(request).tokens)
            request.app[LIMITER_KEY].check(f"token:{token.id}")
            require_scope(token, route.scope)
        key = request.headers.get(IDEMPOTENCY_KEY) if route.idempotent else None
        call = ApiCall(
            request=request,
            app=app,
            token=token,
            path=parse_path(route, request.match_info),
            query=parse_query(route.query, request.query, list_fields) if route.query is not None else None,
            body=await parse_body(route.body, request) if route.body is not None else None,
        )
        if key is not None:
            return await _once(route, call, key)
        return render(route, await route.handler(call))

    handle.__name__ = route.handler.__name__
    return handle


async def _once(route: Route, call: ApiCall, key: str) -> web.StreamResponse:
    """Run an idempotent route under its key: replay the stored answer, or run it and store its answer."""
    keys = call.services.idempotency
    body = call.body.model_dump(mode="json", exclude_unset=True) if call.body is not None else None
    path = call.request.path
    outcome = await keys.begin(
        call.guild_id, key, request_fingerprint(route.method, path, body), f"{route.method} {path}"
    )
    if isinstance(outcome, StoredAnswer):
        headers = {REPLAYED: "true"} | ({"Location": outcome.location} if outcome.location else {})
        return web.Response(status=outcome.status, body=outcome.body.encode(), content_type=JSON, headers=headers)
    claim: KeyClaim = outcome
    try:
        with keys.committing_with(claim):
            response = render(route, await route.handler(call))
    except BaseException:
        await asyncio.shield(keys.abandon(claim))  # nothing was created: a corrected retry may use the key
        raise
    if 200 <= response.status < 300 and isinstance(response, web.Response) and response.body is not None:
        await keys.finish(claim, response.status, bytes(response.body).decode(), response.headers.get("Location"))
    else:
        await keys.abandon(claim)
    return response


def add_routes(web_app: web.Application, routes: Iterable[Route]) -> None:
    for route in routes:
        web_app.router.add_route(route.method, route.aiohttp_path, aiohttp_handler(route), name=route.name)


# ---- the OpenAPI 3.1 document ---------------------------------------------------------------------------

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Malformed request (not JSON)",
    401: "No valid API token",
    403: "The token's scope does not allow this",
    404: "Not found (also: belongs to another guild)",
    409: "Conflict with the current state",
    413: "Request body too large",
    422: "Invalid input; `details.field` names the field",
    429: "Rate limit reached; see Retry-After",
    503: "RaceTime.gg or the database is unavailable",
}
REF = "#/components/schemas/{model}"


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional query parameter is left out rather than sent as null."""
    options = schema.get("anyOf")
    if options and any(option.get("type") == "null" for option in options):
        rest = [option for option in options if option.get("type") != "null"]
        schema = {key: value for key, value in schema.items() if key != "anyOf"}
        schema.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
    if schema.get("default") is None:
        schema.pop("default", None)
    return schema


def _path_parameter(name: str) -> dict[str, Any]:
    if name.endswith("discord_user_id"):
        schema: dict[str, Any] = {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"}
    else:
        schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return {"name": name, "in": "path", "required": True, "schema": schema}


IDEMPOTENCY_PARAMETER: dict[str, Any] = {
    "name": IDEMPOTENCY_KEY,
    "in": "header",
    "required": False,
    "description": f"Any string of your own (a UUID, say) naming this request. Sent again with the same request "
    f"within {WINDOW.total_seconds() / 3600:g} h, it gets the first answer back with `{REPLAYED}: true` and creates "
    "nothing; with a different request, 422 `idempotency_key_reused`; while the first is still being processed, "
    "409 `idempotency_key_in_progress`. Keys are per guild.",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": "^[ -~]+$"},
}


def _query_parameters(schema: dict[str, Any], list_fields: frozenset[str]) -> list[dict[str, Any]]:
    required = set(schema.get("required", []))
    parameters = []
    for name, prop in schema.get("properties", {}).items():
        prop = _strip_null(dict(prop))
        description = prop.pop("description", None)
        prop.pop("title", None)
        parameter: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
        if description:
            parameter["description"] = description
        if name in list_fields:
            parameter.update(style="form", explode=True)
        parameters.append(parameter)
    return parameters


def _responses(route: Route, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in (route.status, *route.other_statuses):
        response: dict[str, Any] = {"description": _STATUS_TEXT.get(status, "OK")}
        if status != 204:
            if route.response is not None:
                schema = refs[(route.response, "serialization")]
            else:  # a body the handler writes itself (the document, the calendar feed)
                schema = {"type": "object"} if route.media_type == JSON else {"type": "string"}
            response["content"] = {route.media_type: {"schema": schema}}
        if status == 201:
            response["headers"] = {
                "Location": {"description": "URL of the created resource", "schema": {"type": "string"}}
            }
        if route.idempotent and 200 <= status < 300:
            response.setdefault("headers", {})[REPLAYED] = {
                "description": f"`true` when this is the stored answer to an earlier request with the same "
                f"`{IDEMPOTENCY_KEY}`: nothing was created this time",
                "schema": {"type": "string", "enum": ["true"]},
            }
        responses[str(status)] = response
    error_ref = refs[(ErrorResponse, "serialization")]
    for status in route.error_statuses:
        response = {"description": _STATUS_TEXT.get(status, "Error"), "content": {JSON: {"schema": error_ref}}}
        if status == 401:
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == 429:
            response["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer", "minimum": 1}}
            }
        responses[str(status)] = response
    return responses


def openapi_document(routes: Iterable[Route], *, version: str, server_url: str | None = None) -> dict[str, Any]:
    routes = list(routes)
    models: set[tuple[type[BaseModel], str]] = {(ErrorResponse, "serialization")}
    for route in routes:
        if route.response is not None:
            models.add((route.response, "serialization"))
        if route.body is not None:
            models.add((route.body, "validation"))
        if route.query is not None:
            models.add((route.query, "validation"))
    refs, definitions = models_json_schema(
        sorted(models, key=lambda pair: (pair[0].__name__, pair[1])), ref_template=REF
    )
    schemas = definitions.get("$defs", {})
    query_models = {route.query for route in routes if route.query is not None}
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation: dict[str, Any] = {
            "operationId": route.name,
            "summary": route.summary,
            "tags": [route.tag],
            "security": [{"bearerAuth": []}] if route.scope is not None else [],
            "responses": _responses(route, refs),
        }
        description = route.description
        if route.alias_of is not None:
            operation["deprecated"] = True
            description = f"Old name of `{route.method} {route.alias_of}`, kept for existing scripts. {description}"
        if route.scope is not None:
            description = f"Scope: `{route.scope.value}`. {description}".strip()
        if description:
            operation["description"] = description
        parameters = [_path_parameter(name) for name in route.path_params]
        if route.idempotent:
            parameters.append(IDEMPOTENCY_PARAMETER)
        if route.query is not None:
            query_schema = schemas[refs[(route.query, "validation")]["$ref"].rsplit("/", 1)[1]]
            parameters += _query_parameters(query_schema, _list_fields(route.query))
        if parameters:
            operation["parameters"] = parameters
        if route.body is not None:
            operation["requestBody"] = {
                "required": bool(route.body.model_json_schema().get("required")),
                "content": {JSON: {"schema": refs[(route.body, "validation")]}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    for model in query_models:  # expanded into parameters above; not referenced as schemas
        referenced_elsewhere = any(
            route.body is model or route.response is model for route in routes if model is not None
        )
        if not referenced_elsewhere:
            schemas.pop(refs[(model, "validation")]["$ref"].rsplit("/", 1)[1], None)
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Startline API",
            "version": version,
            "description": "Live races for async tournaments. Errors use the envelope "
            '`{"error": {"code", "message", "details"}}`; lists return `{"items", "next_cursor"}`.',
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
