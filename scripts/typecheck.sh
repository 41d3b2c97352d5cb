#!/bin/bash
# Type-checks Shoal with mypy (configuration: [tool.mypy] in pyproject.toml).
# Checks whichever of node/ manager/ worker/ raft/ scheduler/ pki/ cli/ metrics/ exist and says
# which; mypy also checks the modules they import (overlay_net/, proto/model.py, ...).
# Exits non-zero on any type error. scripts/test.sh runs it before the test suite.
# MYPY overrides the mypy to run (default: the repository's .venv, made by setup.sh).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
MYPY="${MYPY:-.venv/bin/mypy}"
present=()
missing=()
for pkg in node manager worker raft scheduler pki cli metrics lab; do
    if [ -d "$pkg" ]; then present+=("$pkg"); else missing+=("$pkg"); fi
done
if [ ${#present[@]} -eq 0 ]; then
    echo "typecheck: none of the packages to check exists in $REPO" >&2
    exit 1
fi
echo "typecheck: mypy ${present[*]}${missing[*]:+ (not present: ${missing[*]})}"
exec "$MYPY" "${present[@]}"
