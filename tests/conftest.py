"""Test settings: offline, quiet, a private PREFECT_HOME, one Prefect server for the session."""

import os
import tempfile

import pytest

from instructgpt import offline

# Before any import of prefect/mlflow/dvc/transformers (README, "Offline").
_home = tempfile.mkdtemp(prefix="instructgpt-tests-")
offline.apply(overwrite=True)
os.environ["PREFECT_HOME"] = os.path.join(_home, "prefect")
os.environ.pop("PREFECT_API_URL", None)
os.environ.pop("MLFLOW_TRACKING_URI", None)


# the markers that keep a test out of the fast tier (pyproject.toml says what each means)
NOT_UNIT = ("e2e", "slow", "acceptance", "services", "labelstudio")
# modules queued first, in this order: the longest start at once under make test's two processes
QUEUE_FIRST = ("e2e", "slow")


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items):
    """Every test without a marker of `NOT_UNIT` is a unit test (`make test-unit`: `-m unit`).

    End-to-end modules first, then slow ones (a stable sort by module: modules keep their order and
    stay whole): under `make test`'s two processes (pytest-xdist, one module per process at a time)
    the longest modules start at once instead of running alone at the end."""
    rank: dict[str, int] = {}
    for item in items:
        if not any(item.get_closest_marker(name) for name in NOT_UNIT):
            item.add_marker("unit")
        module = item.nodeid.split("::")[0]
        queued = [i for i, name in enumerate(QUEUE_FIRST) if item.get_closest_marker(name)]
        rank[module] = min([rank.get(module, len(QUEUE_FIRST)), *queued])
    items.sort(key=lambda item: rank[item.nodeid.split("::")[0]])
