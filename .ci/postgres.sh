#!/usr/bin/env bash
# Run the test suite once more against a real PostgreSQL server on loopback (installed with apt-get when missing).
# Everything built on the shared `settings`/`db` fixtures runs on PostgreSQL, and so do the tournament evenings of
# tests/e2e/test_evening.py (the real process on that database); other tests that start their own processes keep
# their own SQLite files.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v pg_ctlcluster >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "PostgreSQL stage skipped: PostgreSQL is not installed and apt-get needs root here" >&2
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q postgresql >/dev/null
fi

read -r version cluster < <(pg_lsclusters -h | awk 'NR==1 {print $1, $2}')
pg_ctlcluster "$version" "$cluster" start 2>/dev/null || true  # already running is fine
port=$(pg_lsclusters -h | awk 'NR==1 {print $3}')

as_postgres() { runuser -u postgres -- "$@"; }
as_postgres psql -p "$port" -q -c "DO \$\$ BEGIN CREATE ROLE startline_ci LOGIN PASSWORD 'startline_ci';
  EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" >/dev/null
# One database per pytest-xdist worker (startline_ci_gw0, …; tests/databases.py names them), and startline_ci,
# which names them and is where they are created from.
workers=${STARTLINE_TEST_WORKERS:-auto}
[ "$workers" = auto ] && workers=$(nproc)
for database in startline_ci $(for ((n = 0; n < workers; n++)); do echo "startline_ci_gw$n"; done); do
  as_postgres psql -p "$port" -q -c "DROP DATABASE IF EXISTS $database" >/dev/null
  as_postgres psql -p "$port" -q -c "CREATE DATABASE $database OWNER startline_ci" >/dev/null
done

echo "running the suite against PostgreSQL $version on 127.0.0.1:$port with $workers workers" >&2
export STARTLINE_TEST_DATABASE_URL="postgresql+asyncpg://startline_ci:startline_ci@127.0.0.1:$port/startline_ci"
# The fast suite and, in the same run, the whole tournament evenings (with and without faults) through the real
# process on PostgreSQL, and the evening with two processes on one database, the second SIGKILLed twice.
.venv/bin/python -m pytest -q -n "$workers" --dist loadgroup --durations=15 -m "not slow or evening" tests
