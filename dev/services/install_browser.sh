#!/usr/bin/env bash
# Idempotent install of what dev/screenshots.py needs (a developer task, not needed by CI):
#   - Debian's Chromium (apt package `chromium`, /usr/bin/chromium), only when missing;
#   - the Playwright Python package, pinned, into .venv. Playwright drives the system Chromium
#     (executable_path=/usr/bin/chromium): no browser is downloaded (`playwright install` is
#     never run; it cannot reach its download host here anyway).
# Needs root for apt-get (as on the dev machines and CI); run dev/setup.sh first for .venv.
set -euo pipefail
cd "$(dirname "$0")/../.."

PLAYWRIGHT_VERSION=1.63.0

if ! command -v chromium >/dev/null 2>&1; then
  echo "browser: installing Debian's chromium (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

[ -x .venv/bin/python ] || { echo "browser: .venv missing; run dev/setup.sh first" >&2; exit 1; }
have=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("playwright"))' 2>/dev/null || true)
if [ "$have" != "$PLAYWRIGHT_VERSION" ]; then
  echo "browser: installing playwright==$PLAYWRIGHT_VERSION into .venv"
  UV=.venv/bin/uv
  [ -x "$UV" ] || UV=$(command -v uv)
  "$UV" pip install --quiet --python .venv/bin/python --compile-bytecode "playwright==$PLAYWRIGHT_VERSION"
fi

echo "browser: $(chromium --version 2>/dev/null), playwright $PLAYWRIGHT_VERSION"
