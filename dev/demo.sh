#!/usr/bin/env bash
# The main job, set-up included: score a CSV through the local server with the example DAG.
set -euo pipefail
cd "$(dirname "$0")/.."
bash dev/setup.sh
exec .venv/bin/python dev/demo.py "$@"
