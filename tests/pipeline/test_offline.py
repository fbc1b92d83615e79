"""The offline environment has one home (instructgpt/offline.py); the Makefile's copy must not drift."""

import re
from pathlib import Path

from instructgpt import offline

REPO = Path(__file__).resolve().parents[2]


def test_the_makefile_exports_the_offline_environment_of_instructgpt_offline():
    # constant exports only: PATH and PREFECT_HOME are built from $(CURDIR), the rest name no value
    exported = dict(re.findall(r"^export (\w+) := ([^$\s]+)\s*$", (REPO / "Makefile").read_text(), re.M))
    assert exported == offline.ENV


def test_apply_keeps_what_is_set_unless_told_to_overwrite():
    env = {"HF_HUB_OFFLINE": "0"}
    offline.apply(env)
    assert env == {**offline.ENV, "HF_HUB_OFFLINE": "0"}
    offline.apply(env, overwrite=True)
    assert env == offline.ENV
