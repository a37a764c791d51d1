#!/usr/bin/env bash
# The main job in one command: set up .venv (with the embedded PostgreSQL/Valkey extra), then run
# autosync -- worker, beat and the live demo against the built-in provider emulator -- for CYCLES
# beat cycles (default 3) and print the convergence summary. Extra arguments go to `autosync run`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/autosync run --demo --cycles "${CYCLES:-3}" "$@"
