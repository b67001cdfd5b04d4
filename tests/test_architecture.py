"""The layers are checked by a tool, not by memory: the import-linter contracts of pyproject.toml
(`[tool.importlinter]`) hold. On failure the output names each forbidden import and each cycle.

import-linter runs in a child process: it configures logging (`dictConfig`), which would disable the loggers of
the tests that run after it in this process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def test_the_import_contracts_hold() -> None:
    result = subprocess.run([sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
