#!/usr/bin/env bash
# Set up (first run only) and run the test suite. Extra arguments go to pytest, e.g. ./test.sh -k scoring
set -uo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh test || exit 1
.venv/bin/python -m pytest "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: treating that as a failure" >&2
  exit 1
fi
exit "$status"
