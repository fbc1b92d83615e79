"""How a script tells "awaiting labels" from a failure under plain `dvc repro` (docs/OWN_DATA.md, "In a script").

`dvc repro` exits 255 whatever its stage command exited with; only its text says "exited with 5".
What a script can rely on is the marker `labels/outbox/<stage>.waiting.json`: present after a stop
for labels, and gone as soon as the stage runs again, so that a later failure of another kind is
not mistaken for waiting (the marker used to stay until the stage succeeded).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.helpers import write_jsonl
from tests.labeling.conftest import kept_prompts, quarantine
from tests.workspace import make_workspace, run

pytestmark = pytest.mark.e2e

MARKER = Path("labels/outbox/label.waiting.json")


@pytest.fixture
def workspace(tmp_path, model_dir) -> Path:
    """A copy of the project with ingest's outputs, a tiny SFT model and human labelers."""
    ws = make_workspace(tmp_path / "ws", profile="")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["inputs"]["rankings"] = "labels/rankings"
    params["label"].update(labelers="human", k_min=2, k_max=3, max_prompts=None, max_new_tokens=6, wait=True)
    (ws / "params.yaml").write_text(yaml.safe_dump(params))
    write_jsonl(ws / "outputs/ingest/prompts.jsonl", kept_prompts().to_dict("records"))
    write_jsonl(ws / "outputs/ingest/quarantine.jsonl", quarantine().to_dict("records"))
    shutil.copytree(model_dir, ws / "outputs/sft/model")
    return ws


def test_a_script_tells_awaiting_labels_from_a_failure(workspace):
    # -s: the label stage alone (ingest and SFT outputs are given above)
    waiting = run(workspace, "dvc", "repro", "-s", "label", check=False)
    assert waiting.returncode == 255  # DVC's code for any failed stage ...
    assert "exited with 5" in waiting.stderr + waiting.stdout  # ... the stage's only in its text
    marker = json.loads((workspace / MARKER).read_text())  # what a script checks
    assert marker["stage"] == "label" and marker["pending"] > 0
    assert marker["tasks_file"] == "labels/outbox/rank_tasks.jsonl"

    params = yaml.safe_load((workspace / "params.yaml").read_text())
    params["label"]["k_min"] = 1  # a bad params file: a failure, not a wait
    (workspace / "params.yaml").write_text(yaml.safe_dump(params))
    failed = run(workspace, "dvc", "repro", "-s", "label", check=False)
    assert failed.returncode == 255 and "exited with 2" in failed.stderr + failed.stdout
    assert not (workspace / MARKER).exists()  # so the script reports a failure
