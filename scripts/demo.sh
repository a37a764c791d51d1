#!/usr/bin/env bash
# The main job in one command: set up .venv, then run autosync with its live demo against the emulator.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [ -z "${AUTOSYNC_DATABASE_URL:-}" ]; then
  .venv/bin/python -m pip install --quiet -e ".[embedded]" 2>/dev/null || scripts/services.sh
fi
exec .venv/bin/autosync run --demo --cycles "${CYCLES:-3}" "$@"
