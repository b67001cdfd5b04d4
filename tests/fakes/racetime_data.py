"""Real RaceTime.gg JSON for tests (``/work/shared/racetime-data``, vendored in ``tests/data``)."""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VENDORED_DIR = REPO_ROOT / "tests" / "data" / "racetime-data"
ENV_VAR = "STARTLINE_RACETIME_DATA"


def _is_data_dir(path: Path) -> bool:
    return (path / "captured").is_dir()


def shared_data_dir() -> Path | None:
    """The shared (not vendored) copy, if this machine has one."""
    candidates = []
    if os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    candidates += [
        REPO_ROOT.parent / "shared" / "racetime-data",
        REPO_ROOT.parent.parent / "shared" / "racetime-data",
        Path("/work/shared/racetime-data"),
    ]
    for candidate in candidates:
        if _is_data_dir(candidate) and candidate.resolve() != VENDORED_DIR.resolve():
            return candidate
    return None


def data_dir() -> Path:
    """Where the data lives: env ``STARTLINE_RACETIME_DATA``, the shared copy, else the vendored one."""
    found = shared_data_dir()
    if found is not None:
        return found
    if _is_data_dir(VENDORED_DIR):
        return VENDORED_DIR
    raise FileNotFoundError("RaceTime.gg test data not found (set STARTLINE_RACETIME_DATA)")


@cache
def _load_text(name: str) -> str:
    return (data_dir() / name).read_text(encoding="utf-8")


def load_json(name: str) -> Any:
    """A fresh copy of a data file: ``"races_with_past_entrants.json"``, ``"captured/race_open.json"``..."""
    return json.loads(_load_text(name))


def past_races() -> list[dict[str, Any]]:
    """Every finished race (with entrants) of both ``races_with_past_entrants*.json`` pages."""
    return [
        race
        for name in ("races_with_past_entrants.json", "races_with_past_entrants_2.json")
        for race in load_json(name)["races"]
    ]


def real_users() -> list[dict[str, Any]]:
    """Distinct real user summaries from the past races, in order of first appearance."""
    seen: dict[str, dict[str, Any]] = {}
    for race in past_races():
        for entrant in race["entrants"]:
            user = entrant["user"]
            if user is not None:
                seen.setdefault(user["id"], user)
    return list(seen.values())


def captured_user(name: str) -> dict[str, Any]:
    """A user summary from the captured samples by name ("Alice", "Bob", "Carol")."""
    for entrant in load_json("captured/race_finished.json")["entrants"]:
        if entrant["user"]["name"] == name:
            return entrant["user"]
    raise KeyError(name)
