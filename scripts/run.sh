#!/usr/bin/env bash
# Sets up and starts the console. Without RUNPOD_API_KEY it runs on the local RunPod simulator.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PORT=${PORT:-8501}
echo "Serverless Console on http://127.0.0.1:${PORT}"
exec .venv/bin/python -m streamlit run app.py --server.address "${ADDRESS:-127.0.0.1}" \
  --server.port "$PORT" --server.headless true --browser.gatherUsageStats false
