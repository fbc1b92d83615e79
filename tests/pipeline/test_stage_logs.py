"""Stage output in the flow's logs: progress as a few lines, not one line per redraw; DVC and the
stages found without the virtual environment on PATH."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tqdm import tqdm

from flows.repro import StageLog, run_dvc_stage
from instructgpt.progress import LineProgress, progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_off_a_terminal_writes_a_line_per_tenth():
    out = io.StringIO()
    assert isinstance(progress(total=1000, file=io.StringIO()), LineProgress)
    bar = LineProgress(total=1000, desc="sft", unit="step", file=out, min_gap=0.0)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    # the start, then one line per 10 %: not one per update
    assert len(lines) == 11, lines
    assert lines[0].startswith("sft:   0% 0/1000") and lines[-1].startswith("sft: 100% 1000/1000")


def test_progress_off_a_terminal_fast_bar_is_two_lines():
    out = io.StringIO()
    assert list(progress(range(37), desc="label: rank", file=out)) == list(range(37))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and "0/37" in lines[0] and "37/37" in lines[1]


def test_progress_off_a_terminal_resumes_at_initial():
    out = io.StringIO()
    bar = LineProgress(total=100, initial=95, desc="ppo", file=out, min_gap=0.0)
    for _ in range(5):
        bar.update(1)
    bar.close()
    assert [ln.split("[")[0].split()[-1] for ln in out.getvalue().splitlines()] == ["95/100", "100/100"]


def test_progress_postfix_joins_the_next_line():
    out = io.StringIO()
    bar = LineProgress(total=2, desc="ingest", unit="rule", file=out, min_gap=0.0)
    for name in ("schema", "pii"):
        bar.set_postfix_str(name)
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[1].endswith("schema]") and lines[2].endswith("pii]")


def test_progress_on_a_terminal_is_tqdm():
    bar = progress(total=3, desc="x", file=FakeTTY())
    assert isinstance(bar, tqdm)
    bar.close()
    assert isinstance(progress(total=3, disable=True), tqdm)


def _tqdm_output(n: int) -> str:
    """What a plain tqdm bar writes to a pipe when it redraws on every update."""
    buf = io.StringIO()
    for _ in tqdm(range(n), desc="sample", file=buf, mininterval=0, miniters=1):
        pass
    return buf.getvalue()


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_stage_log_collapses_carriage_return_redraws(chunk):
    raw = "Running stage 'sft':\r\n> python -m tasks.sft\n" + _tqdm_output(500) + "done\n"
    assert raw.count("\r") > 500  # every redraw
    emitted: list[str] = []
    log = StageLog(emitted.append, interval=30.0, clock=lambda: 0.0)  # time stands still
    for i in range(0, len(raw), chunk):
        log.feed(raw[i: i + chunk])
    log.close()
    bar_lines = [ln for ln in emitted if ln.startswith("sample")]
    # the first redraw and the final state, not 500 lines
    assert len(bar_lines) == 2, emitted
    assert "500/500" in bar_lines[-1]
    assert emitted[:2] == ["Running stage 'sft':", "> python -m tasks.sft"] and emitted[-1] == "done"


def test_stage_log_shows_redraws_at_its_interval():
    now = [0.0]
    emitted: list[str] = []
    log = StageLog(emitted.append, interval=30.0, clock=lambda: now[0])
    for i in range(100):
        now[0] = i * 1.0  # one redraw per second for 100 s
        log.feed(f"\rbar {i}")
    log.feed("\n")
    assert emitted == ["bar 0", "bar 30", "bar 60", "bar 90", "bar 99"]


DVC_YAML = """
stages:
  noisy:
    cmd: python -m noisy
    outs: [out.txt]
"""

NOISY = """
import sys
from pathlib import Path
from tqdm import tqdm

print("noisy starts", flush=True)
for _ in tqdm(range(300), desc="noisy", mininterval=0, miniters=1):
    pass
Path("out.txt").write_text(sys.executable)
"""


@pytest.mark.slow  # a real `dvc repro` process
def test_run_dvc_stage_without_the_venv_on_path(tmp_path, monkeypatch):
    """The worker's PATH lacks the virtual environment: DVC and `python` still resolve to it."""
    venv_bin = Path(sys.executable).parent
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if p and Path(p).resolve() != venv_bin.resolve())
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    (tmp_path / "noisy.py").write_text(NOISY)
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], check=True)
    monkeypatch.setenv("PATH", path)
    lines: list[str] = []
    outcome = run_dvc_stage("noisy", None, lines.append)
    assert outcome.ran
    # the stage ran on the flow's interpreter, not whatever `python` the PATH had
    assert Path((tmp_path / "out.txt").read_text()) == Path(sys.executable)
    assert "noisy starts" in lines
    bar_lines = [ln for ln in lines if ln.startswith("noisy:")]
    assert 1 <= len(bar_lines) <= 3 and "300/300" in bar_lines[-1], lines
