#!/bin/bash
# Sets up this machine (scripts/setup.sh), type-checks the packages with mypy
# (scripts/typecheck.sh) and runs the whole test suite: unit tests and end-to-end
# tests with real daemons and podman containers.
# Exits non-zero when setup, the type check or any test fails, or when no test ran.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
bash scripts/typecheck.sh
.venv/bin/python -m lab.images
# pytest exits 5 when it collected no test: that is a failure too (set -e).
exec .venv/bin/python -m pytest -p no:cacheprovider -o console_output_style=classic \
    --timeout=600 -rfE --durations=25 "$@"
