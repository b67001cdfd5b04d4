"""A newcomer's first ten minutes: clone the repository, run the two commands of the README exactly as written,
and see the bot start and the tests pass.

The clone is of this checkout's HEAD (uncommitted changes are not in it; CI runs on a clean clone anyway).
Its test run leaves out the tests marked `slow`, this one among them, so the suite does not run itself again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.e2e.harness import ROOT

pytestmark = pytest.mark.slow

INSTALL_DEADLINE = 900.0  # seconds for the first start, which creates .venv and installs from the registries
TEST_DEADLINE = 1800.0
NOT_SLOW = ["-m", "not slow"]  # appended to the README's test command: no recursion into this test
# `.ci/run` sets E2E_NEWCOMER_SUITE=skip: its own first stage is the README's test command on a fresh clone of the
# same commit, so running that suite again here would only repeat it.
SUITE_RUN_BY_CI = os.environ.get("E2E_NEWCOMER_SUITE") == "skip"


def readme_commands(readme: Path) -> list[list[str]]:
    """The commands of the README's first code block, comments dropped."""
    block = re.search(r"```[a-z]*\n(.*?)```", readme.read_text(), re.DOTALL)
    assert block is not None, "README.md has no code block"
    lines = [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line) for line in lines if line]


def newcomer_env() -> dict[str, str]:
    """A shell with none of this project's settings; the API on a free port, so it cannot clash with a
    server already running on the default 8080."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STARTLINE_")}
    env.pop("VIRTUAL_ENV", None)
    env["STARTLINE_API__PORT"] = "0"
    return env


@pytest.fixture
def clone(tmp_path) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: there is no HEAD to clone")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip(f"{ROOT} has no git HEAD to clone: {head.stderr.strip()}")
    target = tmp_path / "startline"
    subprocess.run(["git", "clone", "--quiet", "--no-checkout", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "checkout", "--quiet", "--detach", head.stdout.strip()], cwd=target, check=True)
    return target


def wait_for_line(path: Path, pattern: str, process: subprocess.Popen, deadline: float) -> re.Match:
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        match = re.search(pattern, path.read_text(errors="replace"))
        if match:
            return match
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise AssertionError(f"never saw {pattern!r}; output so far:\n{path.read_text(errors='replace')[-3000:]}")


def test_a_fresh_clone_starts_with_the_readme_commands_and_its_tests_pass(clone, tmp_path):
    commands = readme_commands(clone / "README.md")
    assert len(commands) == 2, f"the README's first code block should hold two commands: {commands}"
    start, run_tests = commands
    env = newcomer_env()

    stdout, stderr = tmp_path / "start.out", tmp_path / "start.err"
    with stdout.open("w") as out, stderr.open("w") as err:
        bot = subprocess.Popen(start, cwd=clone, env=env, stdout=out, stderr=err)
    try:
        port = int(wait_for_line(stdout, r"API on port (\d+)", bot, INSTALL_DEADLINE).group(1))
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/health", timeout=10) as response:
            health = json.loads(response.read())
        assert health["status"] == "ok" and health["discord"] == "disabled", health
        bot.send_signal(signal.SIGTERM)
        assert bot.wait(timeout=30) == 0
    finally:
        if bot.poll() is None:
            bot.kill()
            bot.wait()
    notice = stderr.read_text()
    assert "No Discord token is configured" in notice and "--no-discord" in notice, notice[-2000:]
    assert (clone / ".venv" / "bin" / "python").exists()

    if SUITE_RUN_BY_CI:
        print("fresh clone: started; its suite is CI's own first stage (E2E_NEWCOMER_SUITE=skip)")
        return
    result = subprocess.run(
        [*run_tests, *NOT_SLOW, "-q"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=TEST_DEADLINE,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, f"{summary}\n{result.stdout[-4000:]}\n{result.stderr[-2000:]}"
    assert re.search(r"\d+ passed", summary) and "failed" not in summary, summary
    print(f"fresh clone: {summary}")
