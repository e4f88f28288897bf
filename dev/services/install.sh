#!/usr/bin/env bash
# Idempotent install of what the test stand-ins need beyond the packages in .venv:
#   - Azurite (Azure Blob) from npm, exactly as locked in dev/services/azurite/, into .services/node
#   - the BigQuery emulator in its own venv, .services/bqemulator-venv (it needs a newer fastapi
#     than Airflow allows), pinned by dev/services/bqemulator-requirements.txt
#   - the PostgreSQL server binaries from the OS packages (installed only when missing)
# moto, gcp-storage-emulator and fakesnow come with the "test" extra in .venv.
# Re-runs are fast: each part is skipped when its stamp matches what it was installed from.
set -euo pipefail
cd "$(dirname "$0")/../.."

SERVICES=.services
UV=.venv/bin/uv
[ -x "$UV" ] || UV=$(command -v uv || true)
[ -n "$UV" ] || { echo "services: uv not found; run dev/setup.sh first" >&2; exit 1; }

stamp_of() { cat "$@" dev/services/install.sh | sha256sum | cut -d' ' -f1; }

# Azurite: npm ci from the committed lock file (exact versions, no resolution at install time).
node_dir=$SERVICES/node
want=$(stamp_of dev/services/azurite/package.json dev/services/azurite/package-lock.json)
if [ "$(cat "$node_dir/.installed" 2>/dev/null)" != "$want" ] || [ ! -x "$node_dir/node_modules/.bin/azurite-blob" ]; then
  command -v npm >/dev/null 2>&1 || { echo "services: npm is required for Azurite" >&2; exit 1; }
  echo "services: installing Azurite (npm ci) into $node_dir"
  mkdir -p "$node_dir"
  cp dev/services/azurite/package.json dev/services/azurite/package-lock.json "$node_dir/"
  npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error
  echo "$want" > "$node_dir/.installed"
fi

# BigQuery emulator: its own venv with the pinned set; bytecode compiled (PYTHONDONTWRITEBYTECODE
# is set in the shell, and the emulator starts much slower without compiled modules).
bq_venv=$SERVICES/bqemulator-venv
want=$(stamp_of dev/services/bqemulator-requirements.txt)
if [ "$(cat "$bq_venv/.installed" 2>/dev/null)" != "$want" ] || [ ! -x "$bq_venv/bin/python" ]; then
  echo "services: installing the BigQuery emulator into $bq_venv"
  [ -x "$bq_venv/bin/python" ] || "$UV" venv --quiet --python .venv/bin/python "$bq_venv"
  "$UV" pip install --quiet --python "$bq_venv/bin/python" --compile-bytecode \
    -r dev/services/bqemulator-requirements.txt
  echo "$want" > "$bq_venv/.installed"
fi

# PostgreSQL: the tests run the OS packages' server binaries as the postgres system user.
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ] || ! id postgres >/dev/null 2>&1; then
  echo "services: installing the PostgreSQL server (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
