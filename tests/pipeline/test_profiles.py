"""Profiles run in a workspace of their own: params merged there, no tracked file changes."""

import subprocess
from pathlib import Path

import pytest

from flows.profiles import apply_profile, profile_workspace

REPO = Path(__file__).resolve().parents[2]


def test_apply_profile_merges_and_keeps_comments(tmp_path):
    (tmp_path / "profiles").mkdir()
    params = tmp_path / "params.yaml"
    params.write_text("sft:\n  # epochs over the demonstrations\n  epochs: 16\n  lr: 0.001\n")
    (tmp_path / "profiles" / "tiny.yaml").write_text("sft:\n  epochs: 1\n")
    apply_profile("tiny", params, tmp_path / "profiles")
    text = params.read_text()
    assert "epochs: 1\n" in text and "lr: 0.001" in text and "# epochs over the demonstrations" in text


def test_unknown_key_and_unknown_profile(tmp_path):
    (tmp_path / "profiles").mkdir()
    params = tmp_path / "params.yaml"
    params.write_text("sft:\n  epochs: 16\n")
    (tmp_path / "profiles" / "bad.yaml").write_text("sft:\n  epoch: 1\n")
    with pytest.raises(KeyError, match="sft.epoch"):
        apply_profile("bad", params, tmp_path / "profiles")
    with pytest.raises(SystemExit, match=r"known profiles are \['bad', 'demo'\]"):
        apply_profile("missing", params, tmp_path / "profiles")


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout


def test_profile_runs_in_its_own_workspace_and_leaves_git_clean(tmp_path):
    repo = tmp_path / "repo"
    (repo / "profiles").mkdir(parents=True)
    (repo / "tasks").mkdir()
    (repo / ".gitignore").write_text((REPO / ".gitignore").read_text())
    (repo / "params.yaml").write_text("sft:\n  epochs: 16  # paper: 16\n")
    (repo / "profiles" / "tiny.yaml").write_text("sft:\n  epochs: 1\n")
    (repo / "tasks" / "sft.py").write_text("print('v1')\n")
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "init")
    (repo / "tasks" / "sft.py").write_text("print('v2, not committed')\n")  # a developer's edit travels too

    assert profile_workspace("demo", repo) == repo
    ws = profile_workspace("tiny", repo)
    assert ws == repo / "profiles" / "tiny"
    assert "# paper: 16" in (ws / "params.yaml").read_text() and "epochs: 1 " in (ws / "params.yaml").read_text()
    assert (ws / "tasks" / "sft.py").read_text() == "print('v2, not committed')\n"
    assert (repo / "params.yaml").read_text() == "sft:\n  epochs: 16  # paper: 16\n"
    assert _git(repo, "status", "--porcelain") == " M tasks/sft.py\n"  # the edit, nothing else
    assert "no_scm = true" in (ws / ".dvc" / "config.local").read_text()
    with pytest.raises(SystemExit, match="unknown profile 'huge'"):
        profile_workspace("huge", repo)


@pytest.mark.parametrize("written", ["0.00005", "5e-5", "5e-05", "5.0e-5", "5E-05"])
def test_small_learning_rates_are_numbers_through_a_profile_and_params_yaml(tmp_path, written):
    """PyYAML (YAML 1.1) reads ``5e-05`` as a string and ruamel.yaml writes 0.00005 that way: a
    profile could not set a learning rate below 1e-4, nor a user type ``lr: 5e-5``."""
    from instructgpt.config import from_dict
    from instructgpt.train.ppo import PPOConfig
    from tasks.params import load_params
    from tasks.launch import compute_config

    (tmp_path / "profiles").mkdir()
    params = tmp_path / "params.yaml"
    params.write_text("compute:\n  device: cpu\nppo:\n  lr: 0.00002\n  kl:\n    kl_coef: 0.02\n")
    (tmp_path / "profiles" / "probe.yaml").write_text(f"ppo:\n  lr: {written}\n  kl:\n    kl_coef: 1e-3\n")
    apply_profile("probe", params, tmp_path / "profiles")
    ppo = from_dict(PPOConfig, load_params(params)["ppo"], "ppo")
    assert ppo.lr == 5e-5 and ppo.kl.kl_coef == 1e-3
    assert compute_config("ppo", str(params)).device == "cpu"

    params.write_text(f"ppo:\n  lr: {written}\n  vf_lr: 1e3\n")  # typed by hand
    ppo = from_dict(PPOConfig, load_params(params)["ppo"], "ppo")
    assert (ppo.lr, ppo.vf_lr) == (5e-5, 1000.0)
    assert load_params(params)["ppo"]["lr"] == 5e-5
