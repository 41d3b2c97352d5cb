#!/bin/bash
# Sets up this machine (scripts/setup.sh) and runs the demo: a Shoal cluster
# with a web service built from busybox-static, shown answering.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
bash scripts/setup.sh
exec .venv/bin/python -m lab.demo up
