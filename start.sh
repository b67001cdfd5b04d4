#!/usr/bin/env bash
# Set up (first run only) and start Startline. Extra arguments go to run.py, e.g. ./start.sh --no-discord
set -euo pipefail
cd "$(dirname "$0")"
scripts/bootstrap.sh
exec .venv/bin/python run.py "$@"
