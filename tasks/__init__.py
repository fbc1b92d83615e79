"""DVC stages: one module per stage, each run as `python -m tasks.<stage>`.

A stage reads its section of params.yaml into the library's config dataclass, validates its
inputs with Great Expectations, calls the library, writes its outputs atomically and logs to
MLflow. Offline settings are applied here so that plain `dvc repro` is offline too.
"""

import os

for _key, _value in {
    "DO_NOT_TRACK": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SKIP_PIP_REQUIREMENTS_CHECK": "true",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_PYTHON_REFRESH": "quiet",
    # The flow's ephemeral Prefect server migrates a new database on its first start (a fresh
    # clone's .prefect/): on 2 cores that takes longer than Prefect's default 20 s wait.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
}.items():
    os.environ.setdefault(_key, _value)
