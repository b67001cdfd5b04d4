#!/usr/bin/env bash
# Pre-release only: rebuild db/migrations/versions/0001_initial_schema.py from db/models.py.
# Once a release has shipped, add a new migration with `alembic revision --autogenerate` instead.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -f db/migrations/versions/0001_initial_schema.py
STARTLINE_DATABASE__URL="sqlite+aiosqlite:///$tmp/gen.db" "$python" -m alembic -c alembic.ini revision \
  --autogenerate -m "initial schema" --rev-id 0001 >/dev/null
echo "regenerated db/migrations/versions/0001_initial_schema.py"
