#!/usr/bin/env bash
# Set up (first run only) and run the test suite. Extra arguments go to pytest, e.g. ./test.sh -k scoring
# The tests run on every core (pytest-xdist); STARTLINE_TEST_WORKERS=0 runs them in this process, one by one.
set -uo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test || exit 1
.venv/bin/python -m pytest -n "${STARTLINE_TEST_WORKERS:-auto}" --dist loadgroup "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
