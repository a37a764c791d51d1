#!/usr/bin/env bash
# The test command: set up .venv, make sure PostgreSQL and Redis run, lint, run the whole suite, then
# the quick fault campaigns.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
.venv/bin/ruff check autosync
.venv/bin/mypy autosync
# pytest-xdist: the suite mostly waits (workers, emulator, PostgreSQL), so three sessions side by side
# take ~4.5 minutes instead of ~10 on 2 cores. Each session has its own database, Redis databases and
# emulator (tests/conftest.py). AUTOSYNC_TEST_WORKERS=0 runs them in one process.
.venv/bin/pytest -q -n "${AUTOSYNC_TEST_WORKERS:-3}" "$@"
# Then the fault campaigns in quick mode (bench/faults, RELIABILITY.md; about 4 minutes): they fail the
# build when anything is lost, duplicated, leaked or crashed. A targeted run (arguments) skips them.
if [ "$#" -eq 0 ]; then
    exec .venv/bin/python -m bench.faults --quick --out "${TMPDIR:-/tmp}/autosync-faults-quick.json"
fi
