"""The tests' own helpers fail where they should."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import same_weights


def test_same_weights_compares_names_before_tensors():
    a = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    b = torch.nn.Sequential(torch.nn.Linear(2, 2))
    b[0].load_state_dict(a[0].state_dict())
    # the old check, all(torch.equal(x, y) for x, y in zip(...values())), passed here: zip stops at b's end
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(AssertionError, match=r"only in the first \['1.bias', '1.weight'\]"):
        same_weights(a, b)
    with pytest.raises(AssertionError, match="only in the second"):
        assert not same_weights(b, a)  # "the weights differ" must not pass on a missing tensor either
    assert same_weights(a, a.state_dict())
    c = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert not same_weights(a, c)


@pytest.mark.parametrize("ci, outcome", [("true", "1 failed"), ("", "1 skipped")])
def test_a_services_skip_fails_under_ci(tmp_path, ci, outcome):
    """tests/services/ci.py: `make test-services` cannot pass having run nothing under CI."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "test_needs_a_server.py").write_text(
        "import pytest\n\ndef test_server():\n    pytest.skip('no postgres on PATH')\n")
    env = {**os.environ, "CI": ci, "PYTHONPATH": str(repo)}
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.services.ci", "-p", "no:cacheprovider",
                          str(tmp_path / "test_needs_a_server.py")], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert outcome in run.stdout, run.stdout + run.stderr
    if ci:
        assert "skipped under CI=true" in run.stdout and "no postgres on PATH" in run.stdout
