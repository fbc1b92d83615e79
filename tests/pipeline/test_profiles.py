"""Profiles merge into params.yaml, keep comments, and refuse unknown keys."""

import pytest

from flows.profiles import apply_profile


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
    with pytest.raises(SystemExit, match="known profiles are"):
        apply_profile("missing", params, tmp_path / "profiles")
