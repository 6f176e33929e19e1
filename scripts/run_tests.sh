#!/usr/bin/env bash
# Run the test suite (sets up .venv first when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import pose2mesh, pytest" 2>/dev/null; then
  bash scripts/setup.sh
fi
exec .venv/bin/python -m pytest -q "$@" tests
