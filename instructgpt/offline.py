"""The environment that keeps every run offline and quiet: no telemetry, no downloads.

One home for these settings: `tasks` applies them (so that plain ``dvc repro`` is offline too),
the tests apply them before any import, and the Makefile exports the same set (a test holds the
two equal). ``PREFECT_HOME`` is not here: the Makefile keeps it in the project, the tests in a
temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

ENV: dict[str, str] = {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    # The flow's ephemeral Prefect server migrates a new database on its first start (a fresh
    # clone's .prefect/): on 2 cores that takes longer than Prefect's default 20 s wait.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}


def apply(environ: MutableMapping[str, str] = os.environ, overwrite: bool = False) -> None:
    """Set ``ENV`` in ``environ``; values already set are kept unless ``overwrite``."""
    for key, value in ENV.items():
        if overwrite:
            environ[key] = value
        else:
            environ.setdefault(key, value)
