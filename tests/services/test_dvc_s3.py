"""A shared data remote on S3-compatible storage (moto's server): `dvc push --run-cache` from the
trained workspace, and a second workspace whose `dvc repro --pull` restores every stage from the
run cache instead of training again (the local-folder variant: tests/e2e/test_pipeline.py).
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import cached_outs
from tests.services.conftest import STAGES

pytestmark = pytest.mark.services


def test_run_cache_on_s3_skips_training(trained_workspace, restored_workspace, s3):
    other, out = restored_workspace
    assert out.count("is cached - skipping run") == len(STAGES), out
    assert "Running stage" not in out
    assert cached_outs(other) == cached_outs(trained_workspace)
    assert (other / "outputs/ppo/model/config.json").exists()
    # it all went through the bucket: the stage outputs and the run cache entries
    keys = s3.keys("dvc/")
    assert any(k.startswith("dvc/files/md5/") for k in keys), keys[:20]
    assert any(k.startswith("dvc/runs/") for k in keys), keys[:20]
    # the credentials stay out of the committed config
    assert "secret_access_key" not in (other / ".dvc/config").read_text()
    assert "secret_access_key" in (other / ".dvc/config.local").read_text()
