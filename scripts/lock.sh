#!/usr/bin/env bash
# Regenerate requirements.lock: the runtime dependencies and the [monitor] extra (what the Docker
# image installs), each pinned to one version with the hashes of all its published files, resolved
# for every platform on Python 3.11 (the image's Python). Run it after changing pyproject.toml's
# dependencies; tests/test_deploy_files.py checks that the lock still covers them.
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install --quiet "uv>=0.5"
"$tools/bin/uv" pip compile pyproject.toml --extra monitor --generate-hashes --universal --python-version 3.11 \
    --custom-compile-command "scripts/lock.sh" --output-file requirements.lock
