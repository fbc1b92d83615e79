"""The PPO monitor: validation-split prompts sampled every `sample_every` steps with their KL from
SFT and RM score, from a generator of its own (training unchanged), without the simulated world."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch

from instructgpt.models import ModelConfig, build_causal_lm
from instructgpt.reward_model import RewardModel
from instructgpt.tokenizer import train_tokenizer
from instructgpt.train.ppo import PPOConfig, train_ppo
from tests.helpers import same_weights

pytestmark = pytest.mark.slow  # the ppo stage and PPO runs, 5-10 s a test

TRAIN = ["repeat the word cat 2 times", "list three colors .", "repeat the word sun 1 times", "name a dog ."]
HELD_OUT = ["repeat the word tree 3 times", "list two animals ."]


def run(monitor: bool):
    torch.manual_seed(0)
    tok = train_tokenizer([p + "\ncat cat dog tree sun red blue" for p in TRAIN + HELD_OUT] * 20, vocab_size=300)
    cfg_m = ModelConfig(arch="gpt2", n_layer=1, n_embd=32, n_head=2, n_positions=64)
    policy = build_causal_lm(cfg_m, tok, seed=0)
    rm = RewardModel.from_causal_lm(build_causal_lm(cfg_m, tok, seed=1), seed=0)
    cfg = PPOConfig(steps=4, batch_size=4, mini_batch_size=2, ppo_epochs=1, max_new_tokens=6, lr=1e-3,
                    sample_every=2, show_progress=False)
    logged, sampled = [], []
    train_ppo(policy, copy.deepcopy(policy), None, rm, tok, TRAIN, [], cfg, lambda m, s: logged.append((s, m)),
              sample_log=lambda rows, step: sampled.append((step, rows)),
              monitor_prompts=HELD_OUT if monitor else ())
    return logged, sampled, policy.state_dict()


def test_monitor_samples_held_out_prompts_and_leaves_training_unchanged():
    logged, sampled, weights = run(monitor=True)
    logged0, sampled0, weights0 = run(monitor=False)
    assert sampled0 == []
    assert [s for s, _ in sampled] == [0, 2, 4]  # the SFT policy, every sample_every steps (and the last)
    # step 0 is π^SFT itself: no KL from the reference yet
    assert all(abs(r["kl"]) < 1e-4 for r in sampled[0][1])
    for _, rows in sampled:
        assert [r["prompt"] for r in rows] == HELD_OUT  # only the monitor's prompts, never training ones
        assert all(set(r) == {"prompt", "response", "kl", "rm_score", "ended_with_eos"} for r in rows)
    assert any(r["kl"] != 0.0 for _, rows in sampled for r in rows)
    # training is the same with and without the monitor: every logged figure, the final weights
    assert logged == logged0
    assert same_weights(weights, weights0)


def test_ppo_stage_writes_the_monitor_without_the_world(workspace):
    from tasks.params import dvc_stages
    from tasks.shell.run import main
    from tasks.lineage import import_closure
    from tasks.ppo import make_body

    assert not Path("data/world").exists() and not any(Path("labels/judgements").iterdir())
    assert main("ppo", make_body("ppo"), section="ppo") == 0
    rows = [json.loads(line) for line in Path("outputs/ppo/monitor.jsonl").read_text().splitlines()]
    prompts = [json.loads(line) for line in Path("outputs/ingest/prompts.jsonl").read_text().splitlines()]
    valid = {p["prompt_id"] for p in prompts if p["dataset"] == "ppo" and p["split"] == "valid"}
    assert {r["step"] for r in rows} == {0, 1, 2} and len(rows) == 3 * 3  # ppo.monitor_prompts: 3 (conftest)
    assert {r["prompt_id"] for r in rows} <= valid
    assert all(set(r) == {"prompt_id", "step", "response", "kl", "rm_score", "ended_with_eos"} for r in rows)
    curve = Path("outputs/ppo/curve.csv").read_text().splitlines()[0].split(",")
    assert {"ppo_monitor_kl", "ppo_monitor_rm_score"} <= set(curve)
    # the ppo stages neither import the world nor depend on the judge's inputs
    closure = {str(p) for p in import_closure("tasks.ppo", Path(__file__).resolve().parents[2])}
    assert not any(p.startswith("instructgpt/world") or p.startswith("instructgpt/judging") for p in closure)
    for stage in ("ppo", "ppo_noptx"):
        deps = dvc_stages()[stage]["deps"]
        assert "labels/judgements" not in deps and "instructgpt/world" not in deps


def test_a_resumed_ppo_stage_keeps_the_monitor_rows_of_before(workspace, monkeypatch):
    """Killed after its step-2 checkpoint, the stage resumes there; monitor.jsonl still starts at
    step 0 and equals the uninterrupted run's."""
    from tasks.shell.run import EXIT_ERROR, main
    from tasks.ppo import Monitor, make_body
    from tests.workspace import set_params

    set_params(workspace, "ppo", steps=3, checkpoint_every=1, sample_every=1)
    assert main("ppo", make_body("ppo"), section="ppo") == 0
    reference = Path("outputs/ppo/monitor.jsonl").read_text()
    original = Monitor.samples

    def killed_at_step_3(self, samples, step):
        if step == 3:
            raise RuntimeError("killed")
        original(self, samples, step)

    monkeypatch.setattr(Monitor, "samples", killed_at_step_3)
    assert main("ppo", make_body("ppo"), section="ppo") == EXIT_ERROR
    monkeypatch.setattr(Monitor, "samples", original)
    assert main("ppo", make_body("ppo"), section="ppo") == 0
    assert Path("outputs/ppo/monitor.jsonl").read_text() == reference
    assert sorted({json.loads(line)["step"] for line in reference.splitlines()}) == [0, 1, 2, 3]
