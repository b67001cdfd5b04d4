"""The vendored copy of the RaceTime.gg test data must stay identical to the shared one."""

import pytest

from tests.fakes import racetime_data
from tests.fakes.racetime_data import VENDORED_DIR, data_dir, load_json, real_users, shared_data_dir


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_vendored_copy_is_byte_identical_to_the_shared_one():
    shared = shared_data_dir()
    if shared is None:
        pytest.skip("no shared racetime-data on this machine (clean clone): the vendored copy is used")
    assert _files(VENDORED_DIR) == _files(shared)


def test_vendored_copy_is_complete():
    files = _files(VENDORED_DIR)
    assert {
        "README.md",
        "races_with_past_entrants.json",
        "races_with_past_entrants_2.json",
        "captured/race_finished.json",
        "captured/race_open.json",
    } <= set(files)


def test_data_dir_order(monkeypatch, tmp_path):
    monkeypatch.setenv(racetime_data.ENV_VAR, str(tmp_path))
    assert data_dir() != tmp_path  # not a data directory (no captured/)
    (tmp_path / "captured").mkdir()
    assert data_dir() == tmp_path


def test_data_dir_falls_back_to_the_vendored_copy(monkeypatch):
    monkeypatch.delenv(racetime_data.ENV_VAR, raising=False)
    monkeypatch.setattr(racetime_data, "shared_data_dir", lambda: None)
    assert data_dir() == VENDORED_DIR


def test_load_json_returns_fresh_copies():
    first = load_json("captured/race_finished.json")
    first["version"] = -1
    assert load_json("captured/race_finished.json")["version"] == 16
    assert len(real_users()) == len({u["id"] for u in real_users()}) > 10
