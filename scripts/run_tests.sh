#!/usr/bin/env bash
# Run the test suite (sets up .venv first when it is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -m ruff --version >/dev/null 2>&1 \
    || ! .venv/bin/python -c "import pose2mesh, pytest, mypy" 2>/dev/null; then
  bash scripts/setup.sh
fi
# lint (pyflakes, pycodestyle, import order, bugbear) and types on the package (pyproject.toml)
echo "[tests] ruff check lib smplpytorch manopth main demo"
.venv/bin/python -m ruff check lib smplpytorch manopth main demo
echo "[tests] mypy (lib/)"
.venv/bin/python -m mypy
exec .venv/bin/python -m pytest -q "$@" tests
