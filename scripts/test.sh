#!/usr/bin/env bash
# The test command: set up .venv, make sure PostgreSQL and Redis run, lint, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/services.sh
.venv/bin/ruff check autosync
.venv/bin/mypy autosync
exec .venv/bin/pytest -q "$@"
