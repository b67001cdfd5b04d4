"""Property-based contract test: schemathesis generates requests from /api/v1/openapi.json and checks that the
server never answers 5xx and that every answer (status, content type, headers, body) matches the document.

aiohttp is not ASGI, so the app runs on a real TestServer on 127.0.0.1 in a thread of its own (schemathesis
sends blocking requests). Examples are bounded per operation to keep the suite quick.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bot.api.registry import Route
from bot.api.v1 import all_routes
from tests.api.conftest import start_api
from tests.conftest import make_settings

EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@schemathesis.check
def rejects_negative_data(ctx, response, case) -> bool | None:
    """Schemathesis' negative-data check, counting 413 as a rejection too: a negative body can be generated larger
    than the server's body limit (`max_body_bytes`), which refuses it before validation ever sees it."""
    if response.status_code == 413:
        return None
    return negative_data_rejection(ctx, response, case)


class LiveServer:
    """The API on 127.0.0.1 with its own event loop in a background thread."""

    def __init__(self, tmp_path) -> None:
        # Always SQLite: the contract is about HTTP, and a module-wide server cannot share a PostgreSQL
        # database that the function-scoped fixtures wipe between tests.
        self.settings = make_settings(
            tmp_path,
            api={"rate_limit_per_minute": 1_000_000},
            database={"url": f"sqlite+aiosqlite:///{tmp_path / 'contract.db'}"},
        )
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="api-contract-server", daemon=True)

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def start(self) -> None:
        self.thread.start()
        self.api = self._run(start_api(self.settings))
        self.tokens, self.mine = self.api.tokens, self.api.mine
        self.base_url = str(self.api.client.make_url("")).rstrip("/")

    def stop(self) -> None:
        self._run(self.api.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[LiveServer]:
    with pytest.MonkeyPatch.context() as patch:
        import os

        for name in list(os.environ):
            if name.startswith("STARTLINE_"):
                patch.delenv(name)
        server = LiveServer(tmp_path_factory.mktemp("contract"))
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def schema(live: LiveServer):
    document = requests.get(f"{live.base_url}/api/v1/openapi.json", timeout=10).json()
    return schemathesis.openapi.from_dict(document)


POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
CASES = [(route, POSITIVE) for route in all_routes()] + [
    # Negative data needs an input to break: a route without parameters or body has none.
    (route, NEGATIVE)
    for route in all_routes()
    if route.path_params or route.body is not None or (route.query is not None and route.query.model_fields)
]


@pytest.mark.parametrize(
    ("route", "mode"), CASES, ids=[f"{mode.value}-{route.method} {route.path}" for route, mode in CASES]
)
def test_responses_match_the_document(live: LiveServer, schema, route: Route, mode) -> None:
    operation = schema[route.path][route.method]
    # Small ids, so generated paths hit the seeded objects as well as missing ones.
    known_ids = {name: getattr(live.mine, name) for name in route.path_params} if mode.is_positive else None
    headers = {"Authorization": f"Bearer {live.tokens['manage']}"}
    checks = CHECKS + ([rejects_negative_data] if not mode.is_positive else [])
    session = requests.Session()

    strategy = operation.as_strategy(generation_mode=mode)
    if known_ids:
        strategy = strategy | operation.as_strategy(generation_mode=mode, path_parameters=known_ids)

    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case) -> None:
        case.call_and_validate(base_url=live.base_url, session=session, headers=headers, checks=checks)

    check()
