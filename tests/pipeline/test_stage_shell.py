"""The stage shell: outputs appear only on success, exit codes say what went wrong."""

import json

import pytest

from instructgpt.config import ConfigError
from tasks.common import EXIT_CONFIG, EXIT_ERROR, main

DVC_YAML = """
stages:
  toy:
    cmd: python -m toy
    deps: [input.txt]
    outs: [outputs/toy/result.txt]
    metrics:
      - outputs/toy/metrics.json:
          cache: false
    plots:
      - outputs/toy/curve.csv:
          cache: false
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INSTRUCTGPT_NO_MLFLOW", "1")
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "params.yaml").write_text("toy:\n  n: 3\n  checkpoint_every: 5\n")
    (tmp_path / "input.txt").write_text("x")
    return tmp_path


def test_success_moves_outputs_and_writes_metrics_and_curve(project):
    seen = {}

    def body(stage):
        seen["section"] = stage.section
        stage.path("outputs/toy/result.txt").write_text("done")
        for step in (1, 2):
            stage.log({"train/loss": 1.0 / step}, step)
        stage.metrics["valid/loss"] = 0.5

    assert main("toy", body) == 0
    assert (project / "outputs/toy/result.txt").read_text() == "done"
    assert json.loads((project / "outputs/toy/metrics.json").read_text())["valid"]["loss"] == 0.5
    assert (project / "outputs/toy/curve.csv").read_text().splitlines()[0] == "step,train_loss"
    assert not list((project / "outputs").glob(".staging-*"))


def test_failure_writes_nothing(project):
    def body(stage):
        stage.path("outputs/toy/result.txt").write_text("half")
        raise RuntimeError("boom")

    assert main("toy", body) == EXIT_ERROR
    assert not (project / "outputs/toy").exists()
    assert not list((project / "outputs").glob(".staging-*"))


def test_bad_params_exit_code(project):
    def body(stage):
        raise ConfigError("toy.n must be even")

    assert main("toy", body) == EXIT_CONFIG


def test_undeclared_output_is_refused(project):
    def body(stage):
        stage.path("outputs/toy/other.txt")

    assert main("toy", body) == EXIT_ERROR


def test_checkpoint_dir_is_keyed_by_params_and_inputs(project):
    from dataclasses import dataclass

    @dataclass
    class Toy:
        n: int = 1
        checkpoint_every: int = 0
        checkpoint_dir: str | None = None

    dirs = []

    def body(stage):
        dirs.append(stage.config(Toy).checkpoint_dir)
        stage.path("outputs/toy/result.txt").write_text("ok")

    assert main("toy", body) == 0
    assert main("toy", body) == 0
    (project / "params.yaml").write_text("toy:\n  n: 4\n  checkpoint_every: 5\n")
    assert main("toy", body) == 0
    assert dirs[0] == dirs[1] != dirs[2]
    assert dirs[0].startswith("outputs/.checkpoints/toy-")
    assert not (project / dirs[0]).exists()  # removed after success
