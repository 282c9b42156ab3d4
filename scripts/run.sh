#!/usr/bin/env bash
# Sets up and starts the console. Without RUNPOD_API_KEY it runs on the local RunPod simulator.
# DEV=1 reruns pages when a source file is saved (a polling watcher on the app's own modules only:
# a recursive watch of the project would also watch .venv and data/ and keep a core busy).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PORT=${PORT:-8501}
watcher=(--server.fileWatcherType none)
[[ "${DEV:-}" == 1 ]] && watcher=(--server.fileWatcherType poll --server.runOnSave true)
# No full garbage collection after every script run: with this many modules loaded it cost ~0.13 s
# of CPU per fragment refresh, most of an idle tab's cost (Python's own collector still runs).
tuning=(--runner.postScriptGC false)
echo "Serverless Console on http://127.0.0.1:${PORT}"
exec .venv/bin/python -m streamlit run app.py --server.address "${ADDRESS:-127.0.0.1}" \
  --server.port "$PORT" --server.headless true --browser.gatherUsageStats false "${watcher[@]}" "${tuning[@]}"
