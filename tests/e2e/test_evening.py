"""A whole tournament evening through the real process: the REST API for the organizers' script, the fake
RaceTime.gg for the racing, a fake Discord (REST and gateway) for the DMs; then the same evening with the
process killed in every phase and RaceTime.gg and Discord down for a while, which must end the same way.

With Discord, the evening also has what players hear of every change (issue 13): each race mirrored as a Discord
Scheduled Event from creation to completion, RSVPs and reminders, a race moved twice (one rescheduled notice) and a
race deleted (the cancelled notice); `tests/e2e/tournament.py` says who must get what."""

from __future__ import annotations

import asyncio

import pytest

from tests.databases import TEST_DATABASE_URL
from tests.e2e.checks import check_deliveries, check_evening, check_log_is_clean
from tests.e2e.evening import run_evening
from tests.e2e.faults import FaultPlan, SecondProcessKills, fault_seeds, two_process_seeds

pytestmark = [pytest.mark.slow, pytest.mark.evening]

# The tests that compare with the fault-free evening run on one pytest-xdist worker, which runs that evening once.
WITH_THE_REFERENCE = pytest.mark.xdist_group("evening_with_discord")


def test_tournament_evening_without_discord(tmp_path):
    outcome = asyncio.run(run_evening(tmp_path, discord=False))
    print(f"evening without Discord: {outcome.facts['seconds']:.1f} s, {outcome.facts['api_requests']} API requests")
    check_evening(outcome)
    check_log_is_clean(outcome)


@pytest.fixture(scope="module")
def evening_with_discord(tmp_path_factory):
    """The fault-free evening in Discord mode: checked here, and the reference for the evening with faults."""
    return asyncio.run(run_evening(tmp_path_factory.mktemp("evening"), discord=True))


@WITH_THE_REFERENCE
def test_tournament_evening_with_discord(evening_with_discord):
    outcome = evening_with_discord
    print(f"evening with Discord: {outcome.facts['seconds']:.1f} s, {sum(outcome.dms.values())} DMs delivered")
    check_evening(outcome)
    check_deliveries(outcome)
    check_log_is_clean(outcome)


OUTAGE_SECONDS = 6.0  # "a minute" in the issue; any length works, the bot catches up


@WITH_THE_REFERENCE
@pytest.mark.parametrize("seed", fault_seeds())
def test_tournament_evening_with_faults_ends_like_the_fault_free_one(tmp_path, evening_with_discord, seed):
    print(f"\nfault seed {seed} (replay with E2E_SEED={seed})")
    faults = FaultPlan(seed, outage_seconds=OUTAGE_SECONDS)
    try:
        outcome = asyncio.run(run_evening(tmp_path, discord=True, faults=faults))
    finally:
        print("\n".join(faults.events), f"\nprocess log: {tmp_path / 'process.log'}")
    facts = {key: value for key, value in outcome.facts.items() if key != "log"}
    print(f"evening with faults: {facts}")
    differences = snapshot_differences(outcome.snapshot, evening_with_discord.snapshot)
    assert not differences, f"seed {seed}: the final state differs from the fault-free evening: {differences}"
    check_evening(outcome)
    check_deliveries(outcome)
    assert outcome.facts["kills"] == len(FaultPlan.PHASES), f"seed {seed}"


@WITH_THE_REFERENCE
@pytest.mark.skipif(
    not TEST_DATABASE_URL,
    reason="several processes share PostgreSQL only (SQLite refuses a second process: tests/test_operations.py)",
)
@pytest.mark.parametrize("seed", two_process_seeds())
def test_two_processes_with_one_killed_twice_end_like_one(tmp_path, evening_with_discord, seed):
    """Two processes on one PostgreSQL database through the evening, every job running in both; the second is
    SIGKILLed and restarted twice. No duplicate room, DM, run, announcement or audit entry; nothing lost."""
    print(f"\ntwo processes, seed {seed} (replay with E2E_SEED={seed})")
    faults = SecondProcessKills(seed)
    try:
        outcome = asyncio.run(run_evening(tmp_path, discord=True, faults=faults, processes=2))
    finally:
        print("\n".join(faults.events), f"\nprocess logs: {tmp_path}/process*.log")
    facts = {key: value for key, value in outcome.facts.items() if key != "log"}
    print(f"two processes: {facts}")
    differences = snapshot_differences(outcome.snapshot, evening_with_discord.snapshot)
    assert not differences, f"the final state differs from the one-process evening: {differences}"
    check_evening(outcome)
    check_deliveries(outcome)
    assert outcome.facts["kills"] == 2 and outcome.facts["starts"] == 4


def snapshot_differences(got: dict, expected: dict) -> list[str]:
    differences = []
    for part in expected:
        if got[part] == expected[part]:
            continue
        if isinstance(expected[part], dict):
            keys = sorted(set(got[part]) | set(expected[part]), key=str)
            wrong = [
                (key, got[part].get(key), expected[part].get(key))
                for key in keys
                if got[part].get(key) != expected[part].get(key)
            ]
            differences.append(f"{part}: {len(wrong)} differ, e.g. {wrong[:5]}")
        else:
            wrong = [(g, e) for g, e in zip(got[part], expected[part], strict=False) if g != e]
            differences.append(f"{part}: {len(got[part])} vs {len(expected[part])} items, e.g. {wrong[:5]}")
    return differences
