#!/usr/bin/env bash
# Sets up and runs the whole test suite (unit, simulator, conformance, AppTest, Playwright in Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
if [[ ! -x /usr/bin/chromium ]]; then
  # Debian's Chromium drives the browser tests; Playwright never downloads a browser here.
  if [[ $(id -u) -eq 0 ]]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null; fi
fi
exec .venv/bin/python -m pytest -q "$@"
