"""Test settings: offline, quiet, a private PREFECT_HOME, one Prefect server for the session."""

import os
import tempfile

# Before any import of prefect/mlflow/dvc/transformers (README, "Offline").
_home = tempfile.mkdtemp(prefix="instructgpt-tests-")
for key, value in {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_HOME": os.path.join(_home, "prefect"),
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
}.items():
    os.environ[key] = value
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_collection_modifyitems(items):
    """End-to-end modules first (a stable sort: modules keep their order and stay whole): under
    `make test`'s two processes (pytest-xdist, one module per process at a time) the longest
    modules start at once instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
