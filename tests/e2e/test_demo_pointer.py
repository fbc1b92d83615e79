"""A team's own model in `models/` (the default `inputs.models`) with the demo model never pulled:
docs/OWN_DATA.md's step ("Your model", the demo's model pointer) lets plain `dvc repro` run. Without
it, `dvc repro` stopped at once: `failed to reproduce 'models/demo-base.dvc': missing data 'source'`.
"""

from __future__ import annotations

import re
import shutil

import pytest
import yaml

from tests.core.conftest import model_dir, tiny_cfg, tokenizer  # noqa: F401 - fixtures
from tests.workspace import REPO, make_workspace, run

pytestmark = pytest.mark.e2e


def own_data_step() -> list[str]:
    """The command docs/OWN_DATA.md gives for the demo's model pointer."""
    section = REPO.joinpath("docs/OWN_DATA.md").read_text().split("### Your model")[1].split("###")[0]
    [bullet] = [b for b in section.split("\n- ") if b.startswith("**The demo's model pointer.**")]
    [command] = re.findall(r"`(dvc remove [^`]+)`", bullet.replace("\n  ", " "))
    return command.split()


def test_a_team_model_runs_without_the_demo_pointer(tmp_path, model_dir):
    ws = make_workspace(tmp_path / "ws", demo_model=False)  # the demo data; never the demo model
    shutil.copytree(model_dir, ws / "models/team-lm")
    params = yaml.safe_load((ws / "params.yaml").read_text())
    params["base"]["model_path"] = "models/team-lm"
    (ws / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert not (ws / "models/demo-base").exists() and (ws / "models/demo-base.dvc").exists()

    run(ws, *own_data_step())
    status = run(ws, "dvc", "status").stdout
    assert "demo-base" not in status
    run(ws, "dvc", "repro", "base")  # raises with DVC's output when it fails
    assert (ws / "outputs/base/model/config.json").read_text() == (ws / "models/team-lm/config.json").read_text()
