#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: a venv with uv, the pinned dependency set, the package
# (editable) with every extra, and the stand-ins the tests start. Re-runs are fast: the install is
# skipped when nothing it depends on changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS="amazon,google,microsoft-azure,snowflake,postgres,openlineage,server,test"

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip --version >/dev/null 2>&1 || .venv/bin/python -m ensurepip -q
  .venv/bin/python -m pip install -q --disable-pip-version-check "uv==0.13.8"
fi

stamp=.venv/.batchpred-installed
want=$(cat constraints.txt setup.cfg pyproject.toml dev/setup.sh | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing the pinned dependency set (uv, constraints.txt)"
  # Bytecode is compiled at install time: the shell sets PYTHONDONTWRITEBYTECODE=1, and without
  # it every Airflow start pays for compiling its modules again.
  .venv/bin/uv pip install --quiet --python .venv/bin/python --compile-bytecode \
    -c constraints.txt -e ".[$EXTRAS]"
  echo "$want" > "$stamp"
fi
bash dev/services/install.sh
