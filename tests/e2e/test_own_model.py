"""The base stage takes a user's own Hugging Face model directory instead of training one."""

from __future__ import annotations

import json

import pytest

from tests.workspace import make_workspace, run

pytestmark = pytest.mark.e2e


def test_base_stage_uses_own_model_without_training(tmp_path_factory):
    from ruamel.yaml import YAML
    from transformers import AutoModelForCausalLM, LlamaConfig

    from instructgpt.models import ModelConfig, build_causal_lm, save_model
    from instructgpt.tokenizer import train_tokenizer

    ws = make_workspace(tmp_path_factory.mktemp("own"))
    own = ws / "models" / "my-llama"  # inside inputs.models, which DVC tracks
    texts = [json.loads(line)["text"] for line in (ws / "data/corpus.jsonl").read_text().splitlines()[:300]]
    tok = train_tokenizer(texts, 400)
    model = build_causal_lm(ModelConfig(arch="llama", n_layer=1, n_embd=32, n_head=2), tok, seed=0)
    save_model(model, tok, own)
    y = YAML()
    params = y.load((ws / "params.yaml").read_text())
    params["base"]["model_path"] = "models/my-llama"
    with open(ws / "params.yaml", "w") as f:
        y.dump(params, f)
    proc = run(ws, "python", "-m", "tasks.base", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "pretrain" not in proc.stderr  # no training progress bar: nothing was trained
    metrics = json.loads((ws / "outputs/base/metrics.json").read_text())
    assert metrics["trained"] == 0 and metrics["heldout"]["loss"] > 0
    loaded = AutoModelForCausalLM.from_pretrained(ws / "outputs/base/model")
    assert isinstance(loaded.config, LlamaConfig)
