"""Test settings: offline, quiet, a private PREFECT_HOME, one Prefect server for the session."""

import os
import tempfile

from instructgpt import offline

# Before any import of prefect/mlflow/dvc/transformers (README, "Offline").
_home = tempfile.mkdtemp(prefix="instructgpt-tests-")
offline.apply(overwrite=True)
os.environ["PREFECT_HOME"] = os.path.join(_home, "prefect")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)


def pytest_collection_modifyitems(items):
    """End-to-end modules first (a stable sort: modules keep their order and stay whole): under
    `make test`'s two processes (pytest-xdist, one module per process at a time) the longest
    modules start at once instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
