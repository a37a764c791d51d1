#!/usr/bin/env bash
# The test command: set up .venv, make sure PostgreSQL and Redis run, lint, run the whole suite, then
# the quick fault campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
.venv/bin/ruff check autosync
.venv/bin/mypy autosync
.venv/bin/pytest -q "$@"
# Then the fault campaigns in quick mode (bench/faults, RELIABILITY.md; about 4 minutes): they fail the
# build when anything is lost, duplicated, leaked or crashed. A targeted run (arguments) skips them.
if [ "$#" -eq 0 ]; then
    exec .venv/bin/python -m bench.faults --quick --out "${TMPDIR:-/tmp}/autosync-faults-quick.json"
fi
