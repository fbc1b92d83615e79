"""A tiny project workspace with no simulated world: prompts, demonstrations, corpus, labeler ids
and tiny models at the places the ppo and evaluate stages read them, so that those stages run
for real (in-process, MLflow off) in a few seconds."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch

from instructgpt.models import ModelConfig, build_causal_lm, save_model
from instructgpt.reward_model import RewardModel
from instructgpt.tokenizer import train_tokenizer
from tests.helpers import write_jsonl
from tests.workspace import repo_params, stage_dir, write_project

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain"]
MODELS = ("base", "sft", "ppo", "ppo_noptx")


def _prompts() -> list[dict]:
    """sft/rm/ppo prompts in train/valid/test splits, one user per prompt."""
    rng = random.Random(0)
    rows = []
    for dataset, n in (("sft", 16), ("rm", 6), ("ppo", 16)):
        for i in range(n):
            w, k = rng.choice(WORDS), rng.randint(1, 3)
            split = "test" if i % 4 == 3 else "valid" if i % 4 == 2 else "train"
            pid = f"{dataset}{i:03d}"
            rows.append({"prompt_id": pid, "user_id": f"u-{pid}", "text": f"repeat the word {w} {k} times",
                         "timestamp": "2026-01-01T00:00:00Z", "source": "api", "style": "plain",
                         "dataset": dataset, "split": split})
    return rows


def write_workspace(dest: Path) -> Path:
    """Write the workspace (module docstring) into ``dest``."""
    torch.manual_seed(0)
    prompts = _prompts()
    demos = [{"prompt_id": p["prompt_id"], "labeler_id": "t03", "response": " ".join([p["text"].split()[3]] *
                                                                                      int(p["text"].split()[4]))}
             for p in prompts]
    corpus = [{"doc_id": f"d{i:03d}", "kind": "story", "text": f"the {WORDS[i % 10]} and the {WORDS[(i * 3) % 10]} ."}
              for i in range(120)]
    nlp = [{"item_id": f"n{i}", "context": f"the {WORDS[i]} is", "choices": [" red", " a cat"], "answer": i % 2}
           for i in range(6)]
    write_jsonl(dest / "outputs/ingest/prompts.jsonl", prompts)
    write_jsonl(dest / "data/demonstrations.jsonl", demos)
    write_jsonl(dest / "data/prompts.jsonl", prompts)
    write_jsonl(dest / "data/corpus.jsonl", corpus)
    write_jsonl(dest / "data/nlp_task.jsonl", nlp)
    write_jsonl(dest / "outputs/label/comparisons.jsonl", [
        {"prompt_id": p["prompt_id"], "user_id": p["user_id"], "split": p["split"], "prompt": p["text"],
         "responses": ["cat", "dog"], "ranking": [0, 1], "labeler_id": "t0" + str(i % 2 + 1)}
        for i, p in enumerate(prompts) if p["dataset"] == "rm"])
    texts = [f"{p['text']}\n{d['response']}" for p, d in zip(prompts, demos)] + [c["text"] for c in corpus]
    tok = train_tokenizer(texts * 3, vocab_size=300)
    cfg = ModelConfig(arch="gpt2", n_layer=1, n_embd=32, n_head=2, n_positions=64)
    for seed, name in enumerate(MODELS):
        save_model(build_causal_lm(cfg, tok, seed=seed), tok, dest / f"outputs/{name}/model")
    RewardModel.from_causal_lm(build_causal_lm(cfg, tok, seed=7), seed=0).save_pretrained(
        dest / "outputs/rm/model", tok)
    (dest / "models").mkdir()
    (dest / "labels/judgements").mkdir(parents=True)
    params = repo_params()
    params["inputs"].update(rankings="labels/rankings", judgements="labels/judgements")
    params["ppo"].update(steps=2, batch_size=4, mini_batch_size=4, ppo_epochs=1, max_new_tokens=6,
                         ptx_block_size=16, ptx_batch_size=2, checkpoint_every=0, monitor_prompts=3)
    params["evaluate"].update(n_prompts=6, max_new_tokens=6, batch_size=8, corpus_docs=5, nlp_task_items=6,
                              judge="human", wait=True)
    return write_project(dest, params, sort_keys=False)


@pytest.fixture(scope="session")
def workspace_template(tmp_path_factory) -> Path:
    return write_workspace(tmp_path_factory.mktemp("judging-ws") / "ws")


@pytest.fixture
def workspace(workspace_template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template as the working directory, MLflow off, inputs re-read."""
    ws = tmp_path / "ws"
    shutil.copytree(workspace_template, ws)
    with stage_dir(ws, monkeypatch):
        yield ws
