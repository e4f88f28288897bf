#!/usr/bin/env bash
# The whole test suite, set-up included. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
.venv/bin/ruff check .
exec .venv/bin/pytest "$@"
