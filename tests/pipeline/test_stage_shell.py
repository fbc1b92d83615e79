"""The stage shell: outputs appear only on success, exit codes say what went wrong."""

import json

import pytest

from instructgpt.config import ConfigError
from tasks.shell.run import EXIT_CONFIG, EXIT_ERROR, main

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


def test_bad_input_exit_code_names_the_file(project, capsys):
    from instructgpt.config import InputError

    def body(stage):
        raise InputError("data/demos/b.jsonl:3: field 'response' is missing or null")

    assert main("toy", body) == EXIT_CONFIG
    assert "[toy] FAILED: bad input: data/demos/b.jsonl:3: field 'response'" in capsys.readouterr().err


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


def _toy_config():
    from dataclasses import dataclass

    @dataclass
    class Toy:
        n: int = 1
        checkpoint_every: int = 0
        checkpoint_dir: str | None = None

    return Toy


def test_checkpoint_key_follows_input_content_not_mtime(project):
    import os

    Toy, dirs = _toy_config(), []

    def body(stage):
        dirs.append(stage.config(Toy).checkpoint_dir)
        raise RuntimeError("killed")  # a failed run keeps its checkpoint folder

    main("toy", body)
    os.utime(project / "input.txt", (1, 1))  # what a clone or `dvc checkout` does to mtimes
    main("toy", body)
    (project / "input.txt").write_text("y")
    main("toy", body)
    assert dirs[0] == dirs[1] != dirs[2]


def test_resume_says_so_and_the_curve_covers_the_whole_run(project, capsys):
    import csv

    from torch import nn

    from instructgpt.train.checkpoint import save_checkpoint

    Toy, resumed = _toy_config(), []

    def killed(stage):
        cfg = stage.config(Toy)
        for step in range(1, 7):
            stage.log({"train/loss": 10.0 - step}, step)
            if step == 4:
                save_checkpoint(cfg.checkpoint_dir, {"m": nn.Linear(1, 1)}, {"step": step})
        raise RuntimeError("killed after step 6")

    def rerun(stage):
        stage.config(Toy)
        resumed.append(stage.resumed_from_step)
        for step in range(5, 9):  # the trainer goes on after the checkpoint's step
            stage.log({"train/loss": 10.0 - step}, step)
        stage.path("outputs/toy/result.txt").write_text("ok")

    assert main("toy", killed) == EXIT_ERROR
    assert main("toy", rerun) == 0
    assert resumed == [4]
    assert "resuming from the checkpoint at step 4" in capsys.readouterr().out
    with open(project / "outputs/toy/curve.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == list(range(1, 9))  # steps 5, 6 once, not twice
    assert [float(r["train_loss"]) for r in rows] == [10.0 - s for s in range(1, 9)]


def test_overrides_are_what_is_recorded(project):
    Toy, saved = _toy_config(), {}

    def body(stage):
        cfg = stage.config(Toy, overrides={"n": 0})
        out = stage.path("outputs/toy/result.txt")
        stage.save_config(out.parent)
        saved.update(json.loads((out.parent / "instructgpt_config.json").read_text()))
        saved["trained_with"] = cfg.n
        out.write_text("ok")

    assert main("toy", body) == 0
    assert saved["toy"]["n"] == saved["trained_with"] == 0  # params.yaml says 3
