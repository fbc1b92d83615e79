"""DVC stages: one module per stage, each run as `python -m tasks.<stage>`.

A stage reads its section of params.yaml into the library's config dataclass, validates its
inputs with Great Expectations, calls the library, writes its outputs atomically and logs to
MLflow. Offline settings are applied here so that plain `dvc repro` is offline too.
"""

from instructgpt import offline

offline.apply()
