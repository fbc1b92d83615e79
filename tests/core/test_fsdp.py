"""Sharded data parallel (``compute.parallel: fsdp``, torch FSDP2): SFT and the RM on 2 CPU
processes (gloo) land on the single-process weights, and each process really holds half.

Same seed, same GLOBAL batch as one process: each rank trains on its shard, FSDP reduce-scatters
the gradients (summed: divide factor 1, each rank's loss being its term of the global mean) and
every rank steps AdamW on its half of each weight. The runs differ only in float reduction order,
as with DDP (``test_ddp``'s docstring has the analysis: ~1e-7 relative per gradient, amplified by
AdamW where a true gradient is 0, e.g. the RM head bias), so the same bound holds:
|Δ| <= 2e-4 + 1e-4·|w| (measured: SFT 1.9e-5, RM 5.4e-5 on the head bias, 1.7e-4 on the
normalised reward bias, ~1.1 in size; weights moved by ~1e-2). AdamW would hide a gradient off by
a constant factor (averaged instead of summed over ranks), so the test also compares one batch's
full gradient, gathered from the shards, with the single-process one. SFT selects on the validation loss after
every other step, so the kept checkpoint is a full state dict gathered from the shards; the RM's
normalisation after training runs on the plain model that received the gathered weights.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.tensor import DTensor

from instructgpt.config import ConfigError
from instructgpt.device import parallelism
from instructgpt.models import load_causal_lm
from instructgpt.reward_model import RewardModel
from instructgpt.train.common import distributed
from instructgpt.train.fsdp import blocks, local_fraction, shard
from instructgpt.train.ppo import train_ppo
from instructgpt.train.reward import train_reward_model
from instructgpt.train.sft import _SFT, train_sft

from .conftest import make_pairs
from .test_ddp import ATOL, WORLD_SIZE, _free_port, assert_trained_alike, ppo_cfg, rm_cfg, sft_cfg
from .test_train import make_comparisons


def sft_cfg_selecting():
    cfg = sft_cfg()
    cfg.selection, cfg.eval_every = "valid_loss", 2
    return cfg


def run_both(model_dir) -> dict[str, dict[str, torch.Tensor]]:
    """SFT on 37 demonstrations (5 steps, selection every 2), the RM on 9 comparisons (3 steps)."""
    model, tokenizer = load_causal_lm(model_dir)
    m = train_sft(model, tokenizer, make_pairs(37, 1), make_pairs(6, 2), sft_cfg_selecting())
    rm = RewardModel.from_causal_lm(model_dir)
    train_reward_model(rm, tokenizer, make_comparisons(9, 3), make_comparisons(3, 4), make_pairs(6, 2), rm_cfg())
    return {"sft": model.state_dict(), "rm": rm.state_dict(), "best": {"step": torch.tensor(m["best/step"])}}


def sft_gradient(model_dir, ctx=None) -> dict[str, torch.Tensor]:
    """The gradient of SFT's loss on one global batch of 8 demonstrations (the full gradient,
    gathered from the shards, under FSDP; ``ctx`` = the distributed context)."""
    model, tokenizer = load_causal_lm(model_dir)
    sharded = shard(model, ctx) if ctx is not None else None
    stage = _SFT(sharded.model if sharded else model, tokenizer, make_pairs(8, 1), [], sft_cfg())
    idx = ctx.shard(list(range(8))) if ctx is not None else list(range(8))
    loss, n, _ = sharded.run(lambda: stage.loss(idx)) if sharded else stage.loss(idx)
    if ctx is not None:
        loss, _ = ctx.share(loss, n)
    loss.backward()
    return {k: (p.grad.full_tensor() if isinstance(p.grad, DTensor) else p.grad)
            for k, p in stage.model.named_parameters()}


def resumed_sft(model_dir, checkpoint_dir: str) -> dict[str, torch.Tensor]:
    """SFT with a checkpoint every 2 steps (the last at step 4 of 5) run twice: the second run
    resumes from step 4 (full weights, full optimizer state, the selected checkpoint) and
    retrains step 5; its final weights."""
    for _ in range(2):
        model, tokenizer = load_causal_lm(model_dir)
        cfg = sft_cfg_selecting()
        cfg.checkpoint_dir, cfg.checkpoint_every, cfg.log_every = checkpoint_dir, 2, 1
        steps: list[int] = []  # the steps the run trained (logged on rank 0)
        m = train_sft(model, tokenizer, make_pairs(37, 1), make_pairs(6, 2), cfg,
                      log=lambda metrics, step: steps.append(step) if "train/loss" in metrics else None)
    return {**model.state_dict(), "best_step": torch.tensor(m["best/step"]), "steps": torch.tensor(steps)}


def ppo_refused(model_dir) -> bool:
    """Whether PPO under fsdp stops with the ConfigError that names the setting to change."""
    policy, tokenizer = load_causal_lm(model_dir)
    rm = RewardModel.from_causal_lm(model_dir)
    try:
        train_ppo(policy, None, None, rm, tokenizer, [p for p, _ in make_pairs(12, 6)],
                  [f"{p}\n{r}" for p, r in make_pairs(40, 5)], ppo_cfg())
    except ConfigError as exc:
        return "compute.parallel: ddp" in str(exc)
    return False


def _worker(rank: int, port: int, model_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        with parallelism("fsdp"):
            states = run_both(model_dir)
            # what each rank holds of a freshly sharded model: DTensor local shards
            sharded = shard(RewardModel.from_causal_lm(model_dir), distributed())
            fractions = {k: local_fraction(p) for k, p in sharded.model.named_parameters()}
            n_dtensor = sum(isinstance(p, DTensor) for p in sharded.model.parameters())
            states["grad"] = sft_gradient(model_dir, distributed())
            states["ppo_refused"] = {"yes": torch.tensor(ppo_refused(model_dir))}
            states["resumed"] = resumed_sft(model_dir, f"{out}.ckpt")
            states["shards"] = {"fractions": torch.tensor(list(fractions.values())),
                                "rows": torch.tensor([p.shape[0] for p in sharded.model.parameters()]),
                                "n_dtensor": torch.tensor(n_dtensor),
                                "n_blocks": torch.tensor(len(blocks(sharded.model)))}
        torch.save(states, f"{out}.{rank}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


@pytest.mark.slow  # 2 gloo processes, ~15-25 s
def test_fsdp_two_processes_match_one_and_shard(model_dir, tmp_path):
    out = tmp_path / "fsdp.pt"
    mp.spawn(_worker, args=(_free_port(), str(model_dir), str(out)), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(WORLD_SIZE)]
    single = run_both(model_dir)
    n_params = len(list(RewardModel.from_causal_lm(model_dir).parameters()))
    rows = ranks[0]["shards"]["rows"]
    # dim-0 shards: each rank holds ceil(rows/2) or floor(rows/2) rows of every parameter (the RM
    # head has 1 row: all on rank 0), and together the ranks hold each element once
    frac = torch.stack([fsdp["shards"]["fractions"] for fsdp in ranks])  # (ranks, params)
    assert torch.allclose(frac.sum(0), torch.ones(n_params)), frac
    assert bool((frac <= torch.ceil(rows / WORLD_SIZE) / rows).all()), frac
    assert int((frac == 0.5).all(0).sum()) >= n_params - 2, frac  # all but the head's two split evenly
    # the gradient is the single-process one (summed over ranks, not averaged: AdamW would hide
    # a factor of 2 in the weights); float reduction order only
    grad = sft_gradient(model_dir)
    for k, g in grad.items():
        assert torch.allclose(ranks[0]["grad"][k], g, rtol=1e-4, atol=1e-7), f"gradient of {k} differs"
    # resumed from the sharded run's checkpoint at step 4: the uninterrupted run's weights (the
    # same processes and operations from the same state: float order alike, so a tight bound)
    resumed = ranks[0]["resumed"]
    assert int(resumed.pop("best_step")) == int(ranks[0]["best"]["step"])
    assert resumed.pop("steps").tolist() == [5], "the second run should resume at step 4 and train step 5 alone"
    assert ranks[1]["resumed"]["steps"].tolist() == []  # rank 1 logs nothing
    for k, v in resumed.items():
        assert torch.allclose(v, ranks[0]["sft"][k], rtol=1e-5, atol=1e-6), f"resumed {k} differs"
    for r, fsdp in enumerate(ranks):
        assert bool(fsdp["ppo_refused"]["yes"]), "PPO under fsdp should stop with a ConfigError naming ddp"
        assert int(fsdp["shards"]["n_dtensor"]) == n_params and int(fsdp["shards"]["n_blocks"]) == 2
        assert int(fsdp["best"]["step"]) == int(single["best"]["step"])
        for name in ("sft", "rm"):
            keys = [k for k, v in single[name].items() if v.is_floating_point()]
            assert set(keys) <= set(fsdp[name]), "the plain model after FSDP has the usual state dict"
            assert_trained_alike(name, model_dir, single[name], fsdp[name], f" rank {r}")
