#!/usr/bin/env bash
# Screenshot the MLflow UI (runs table, and the registered policy) in headless Chromium.
#   scripts/ui_screenshot.sh [OUT_DIR]      (needs: apt-get install chromium; a store from `make run`)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-reports/screenshots}
port=${MLFLOW_UI_PORT:-5077}
mkdir -p "$out"
export MLFLOW_DISABLE_TELEMETRY=true
exp_id=$(.venv/bin/python -c "import tasks; from tasks import tracking; print(tracking.setup())")
.venv/bin/python -m mlflow ui --backend-store-uri "sqlite:///$PWD/mlflow/mlflow.db" --host 127.0.0.1 --port "$port" \
  > "$out/mlflow-ui.log" 2>&1 &
ui=$!
trap 'kill $ui 2>/dev/null || true' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 1; done
shot() {  # URL FILE
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$(mktemp -d)" --window-size=1600,1000 --virtual-time-budget=15000 \
    --screenshot="$2" "$1" 2>/dev/null
}
shot "http://127.0.0.1:$port/#/experiments/$exp_id/runs" "$out/runs.png"
shot "http://127.0.0.1:$port/#/models/instructgpt-policy" "$out/registry.png"
echo "screenshots: $out/runs.png $out/registry.png"
