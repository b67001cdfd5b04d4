"""scripts/api_examples.py, the generator of docs/api.md's examples, still runs and has an example for every route
of the registry (it stopped at the first route without one, which nobody noticed until it was run again)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bot.api.v1 import all_routes

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "api_examples.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("api_examples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_examples_script_records_an_answered_example_for_every_route(settings) -> None:
    script = _load_script()
    sections = await script.record_examples(settings)
    rendered = script.render(sections)  # raises SystemExit naming any route without an example
    for route in all_routes():
        if route.alias_of is None:
            assert f"#### `{route.method} {route.path}`" in rendered
    for method, path in [
        ("GET", "/api/v1/tournaments/{tid}/live-races/{rid}/rsvps"),
        ("PUT", "/api/v1/tournaments/{tid}/live-races/{rid}/rsvps/{discord_user_id}"),
        ("DELETE", "/api/v1/tournaments/{tid}/live-races/{rid}/rsvps/{discord_user_id}"),
        ("GET", "/api/v1/players/{discord_user_id}/reminders"),
        ("PUT", "/api/v1/players/{discord_user_id}/reminders"),
        ("GET", "/api/v1/settings/reminders"),
        ("PUT", "/api/v1/settings/reminders"),
    ]:
        assert "HTTP/1.1 200 OK" in sections[(method, path)], (method, path)
