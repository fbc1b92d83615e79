"""The registered models load and answer where the project is not installed.

The models are logged and registered into a temporary SQLite store by the project's own code
(tasks/registry.py), then loaded by a second interpreter: a fresh virtual environment that sees
the shared site-packages (torch, transformers, mlflow) through a plain path line, so the project's
editable install is not active there, with its working directory outside the repository.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from instructgpt.models import ModelConfig, build_causal_lm, save_model
from instructgpt.reward_model import RewardModel
from instructgpt.tokenizer import train_tokenizer

REPO = Path(__file__).resolve().parents[2]
PROMPTS = ["repeat the word cat 2 times", "list three colors ."]
RESPONSES = ["cat cat", ""]
PARAMS = {"temperature": 0.7, "max_new_tokens": 8, "seed": 3, "batch_size": 1}
# The pipeline's tools, which serving must not need (they are installed in the shared environment).
PIPELINE_TOOLS = ("prefect", "dvc", "great_expectations", "presidio_analyzer", "spacy")

# Run by the clean interpreter; prints one JSON line.
CLEAN_CHECK = """
import importlib.util, json, sys
project = {m: importlib.util.find_spec(m) is not None for m in ("instructgpt", "tasks", "flows")}
import mlflow, pandas as pd
policy = mlflow.pyfunc.load_model("models:/instructgpt-policy/1")
responses = policy.predict(PROMPTS, params=PARAMS)
rm = mlflow.pyfunc.load_model("models:/instructgpt-reward-model/1")
scores = rm.predict(pd.DataFrame({"prompt": PROMPTS, "response": RESPONSES}))
print(json.dumps({
    "project": project,
    "responses": list(responses),
    "scores": [float(x) for x in scores],
    "instructgpt_from": sys.modules["instructgpt"].__file__ if "instructgpt" in sys.modules else None,
    "tasks_imported": "tasks" in sys.modules,
    "pipeline_tools": sorted(m for m in PIPELINE_TOOLS if m in sys.modules),
}))
"""


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny causal LM and a reward model on its backbone, with their tokenizer."""
    torch.manual_seed(0)
    texts = [f"repeat the word {w} {k} times\n{' '.join([w] * k)}" for w in ("cat", "dog", "sun") for k in (1, 2, 3)]
    tok = train_tokenizer(texts * 10 + ["list three colors .\nred , blue , green ."] * 10, vocab_size=300)
    cfg = ModelConfig(arch="gpt2", n_layer=1, n_embd=32, n_head=2, n_positions=64)
    root = tmp_path_factory.mktemp("models")
    save_model(build_causal_lm(cfg, tok, seed=0), tok, root / "policy")
    rm = RewardModel.from_causal_lm(build_causal_lm(cfg, tok, seed=1), seed=0)
    with torch.no_grad():
        rm.bias.fill_(0.25)
    rm.save_pretrained(root / "rm", tok)
    return root / "policy", root / "rm"


@pytest.fixture(scope="module")
def store(tmp_path_factory, model_dirs) -> str:
    """Both models logged and registered by tasks/registry.py into a fresh SQLite store."""
    import mlflow
    import mlflow.tracking._tracking_service.utils as tracking_utils

    from tasks import registry

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setattr(tracking_utils, "_tracking_uri", None)  # the env var, not an earlier test's store
    try:
        exp = mlflow.create_experiment("registry-test", artifact_location=(root / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=exp):
            policy, rm = model_dirs
            assert registry.register_policy(str(policy)) == "1"
            assert registry.register_reward_model(str(rm)) == "1"
        yield uri
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def clean_python(tmp_path_factory) -> Path:
    """A venv without the project: the shared site-packages on its path, their .pth files not run."""
    venv = tmp_path_factory.mktemp("clean") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "shared.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def run_clean(python: Path, code: str, cwd: Path, uri: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["MLFLOW_TRACKING_URI"] = uri
    # -I: no PYTHONPATH, no user site, no script directory or cwd on sys.path
    return subprocess.run([str(python), "-I", "-c", code], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow  # a fresh Python process without the project loads every registered model
def test_registered_models_load_and_answer_without_the_project(store, model_dirs, clean_python, tmp_path):
    from instructgpt.generation import sample
    from instructgpt.models import load_causal_lm, load_tokenizer
    from instructgpt.train.reward import score_pairs

    code = (f"PROMPTS = {PROMPTS!r}\nRESPONSES = {RESPONSES!r}\nPARAMS = {PARAMS!r}\n"
            f"PIPELINE_TOOLS = {PIPELINE_TOOLS!r}\n" + CLEAN_CHECK)
    proc = run_clean(clean_python, code, tmp_path, store)
    assert proc.returncode == 0, proc.stderr[-5000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["project"] == {"instructgpt": False, "tasks": False, "flows": False}
    assert not got["tasks_imported"] and got["pipeline_tools"] == []
    # the library code came with the model, not from the repository
    assert got["instructgpt_from"] and not got["instructgpt_from"].startswith(str(REPO))

    # the served policy samples exactly as the project does: same prompt format, params honoured
    policy_dir, rm_dir = model_dirs
    model, tok = load_causal_lm(policy_dir)
    expected = sample(model, tok, PROMPTS, max_new_tokens=PARAMS["max_new_tokens"], temperature=PARAMS["temperature"],
                      batch_size=PARAMS["batch_size"], seed=PARAMS["seed"])
    assert got["responses"] == [s.response for s in expected]
    assert all(len(s.response_ids) <= PARAMS["max_new_tokens"] for s in expected)
    from tasks.registry import GENERATION_PARAMS as default

    unchanged = sample(model, tok, PROMPTS, max_new_tokens=default["max_new_tokens"], temperature=default["temperature"],
                       batch_size=default["batch_size"], seed=default["seed"])
    assert got["responses"] != [s.response for s in unchanged]  # so the equality above shows the params arrived
    # and the reward model scores as the project does, bias included
    rm = RewardModel.from_pretrained(rm_dir)
    want = score_pairs(rm, load_tokenizer(rm_dir), list(zip(PROMPTS, RESPONSES)))
    assert got["scores"] == pytest.approx(want.tolist(), abs=1e-5)


def test_registered_models_are_code_with_their_requirements_not_pickles(store):
    import mlflow

    for name in ("instructgpt-policy", "instructgpt-reward-model"):
        pyfunc = mlflow.models.get_model_info(f"models:/{name}/1").flavors["python_function"]
        assert pyfunc["loader_module"] == "mlflow.pyfunc.loaders.code_model", pyfunc
        local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/1"))
        assert not list(local.rglob("*.pkl")), sorted(local.rglob("*"))
        assert (local / pyfunc["code"] / "instructgpt" / "generation.py").is_file()
        requirements = (local / "requirements.txt").read_text()
        for needed in ("mlflow", "torch", "transformers", "pandas"):
            assert needed in requirements, (name, requirements)
        for tool in ("prefect", "dvc", "great-expectations"):
            assert tool not in requirements, (name, requirements)
