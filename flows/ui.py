"""`make ui`: the MLflow UI on 127.0.0.1 over the local store, opened on the runs table; with
MLFLOW_TRACKING_URI naming a tracking server, that server's own UI (nothing to start)."""

from __future__ import annotations

import os
import sys

import tasks  # noqa: F401  (offline environment variables)
from tasks import tracking


def main() -> None:
    port = os.environ.get("MLFLOW_UI_PORT", "5000")
    exp_id = tracking.setup()
    uri = tracking.tracking_uri()
    if tracking.is_server(uri):
        print(f"MLflow UI: {uri.rstrip('/')}/#/experiments/{exp_id}/runs (the tracking server)", flush=True)
        return
    print(f"MLflow UI: http://127.0.0.1:{port}/#/experiments/{exp_id}/runs", flush=True)
    os.execvp(
        sys.executable,
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", port],
    )


if __name__ == "__main__":
    main()
