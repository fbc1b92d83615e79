"""``make gpu-check`` (bench/gpu.py) runs on a stock GPU machine: torch, transformers and peft, none of
the pipeline's services. Here its tiny CPU run, in a subprocess where MLflow, Prefect, DVC, Great
Expectations and Presidio cannot be imported, must pass every smoke check and report every figure."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu.py"
SERVICES = ("mlflow", "prefect", "dvc", "great_expectations", "presidio")

# The script's run with the services unimportable (as if absent): importing one raises
# ModuleNotFoundError and is recorded. ``find_spec`` still answers, so that availability probes
# (accelerate asks for mlflow when peft imports it) behave as on a machine that has the package.
RUNNER = """
import importlib.abc, importlib.machinery, json, runpy, sys

SERVICES = {services!r}
attempts = []


class Unimportable(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if any(top == s or top.startswith(s + "_") for s in SERVICES):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        attempts.append(spec.name)
        raise ModuleNotFoundError(f"No module named {{spec.name!r}} (blocked)", name=spec.name)

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, Unimportable())
sys.argv = [{script!r}, *sys.argv[1:]]
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    print("SERVICE_IMPORTS " + json.dumps(attempts), file=sys.stderr)
"""

SMOKE = {"pretrain", "sft", "rm", "ppo", "ppo-ptx", "ppo-lora", "lora-merge", "ratio", "rm-shared", "ratio (tiny)",
         "rm-shared (tiny)"}
FIGURES = ("matmul_flops_per_s", "sft_tokens_per_s", "sft_mfu", "rm_tokens_per_s", "rm_mfu", "ppo_samples_per_s",
           "ppo_step_s", "rollout_s", "score_s", "advantages_s", "ppo_update_s", "decode_ms_per_token_dynamic",
           "decode_ms_per_token_auto", "params", "matmul_params")


def test_the_script_imports_only_torch_transformers_peft_and_the_library():
    tree = ast.parse(SCRIPT.read_text())
    tops = {a.name.partition(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    tops |= {n.module.partition(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
    assert tops - set(sys.stdlib_module_names) == {"torch", "transformers", "peft", "instructgpt"}


@pytest.mark.slow  # a subprocess runs bench/gpu.py's smoke checks, ~25 s
def test_tiny_cpu_run_passes_every_smoke_check_without_the_services():
    code = RUNNER.format(services=SERVICES, script=str(SCRIPT))
    # one thread: beside make test's other process, two would spin-wait for cores (8 min instead of 25 s)
    proc = subprocess.run([sys.executable, "-c", code, "--device", "cpu", "--size", "tiny", "--threads", "1"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    imports = [line for line in proc.stderr.splitlines() if line.startswith("SERVICE_IMPORTS ")]
    assert imports and json.loads(imports[-1].removeprefix("SERVICE_IMPORTS ")) == [], proc.stderr[-3000:]
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]

    lines = proc.stdout.strip().splitlines()
    report = json.loads(lines[-1])  # the LAST line is the JSON object
    assert report["passed"] is True and report["device"] == "cpu"
    assert set(report["smoke"]) == SMOKE
    assert all(row["pass"] for row in report["smoke"].values()), report["smoke"]
    rows = [line for line in lines if line.split(" ")[0] in {s.split(" ")[0] for s in SMOKE}]
    assert len(rows) == len(SMOKE) and all(" PASS " in line for line in rows)
    # the learning checks compare real improvements
    for name in ("pretrain", "sft", "rm", "ppo", "ppo-ptx", "ppo-lora"):
        assert report["smoke"][name]["fp32"] > 0 and report["smoke"][name]["bf16"] > 0
    assert report["smoke"]["lora-merge"]["max_delta_w"] > 0

    figures = report["throughput"]["tiny"]
    for key in FIGURES:
        assert figures[key] > 0, key
    for key in ("device_name", "torch", "transformers", "peft", "date"):
        assert report[key]
