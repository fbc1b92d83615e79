"""Data parallel: SFT, the RM and PPO on 2 CPU processes (gloo) land on the single-process weights.

Same seed, same GLOBAL batch: each rank trains on its shard and the gradients are summed, so the
two runs differ only in float reduction order (a rank's partial sums are added in another order
than one process adds them, and shards are padded to their own length, so matmul blocking
differs): ~1e-7 relative per gradient. AdamW amplifies that where a TRUE gradient is 0 (the RM
head bias: the ranking loss is shift-invariant; attention key biases: softmax is too): it
divides float noise ~1e-9 by sqrt(v) + eps ~1e-8 and moves the weight by a fraction of lr, in
each run differently. Measured: SFT max |Δ| 1.8e-5, RM 8e-5 (head bias; 2.3e-4 on a Xeon with AMX),
PPO 2e-6; weights moved by ~1e-2. Hence |Δ| <= 2e-4 + 1e-4·|w|, except for the RM head bias: its
value is float noise amplified, so it is held to what AdamW can move any weight (``FREE_RM_KEYS``).
The RM's gain and bias are read off the trained weights
after training, so they are checked against what those weights give (``NORMALISATION``). The data sizes
leave uneven last batches (SFT: 5 over 2 ranks; RM: 1, so one rank has an empty shard and runs a
row at weight 0 for DDP; PPO: minibatches and ptx batches of 3). Gradients are summed by
``DistributedDataParallel`` (a sum hook). PPO's rollout is sharded: each rank samples 3 of the 6
prompts with per-row noise drawn for the global batch (``ppo.row_keyed_sampling``, on in the
single-process run too so both sample the same responses), and the shards are gathered before
whitening, so the batch is the single-process one; the test also counts the tokens each process
samples: half of the single process's.
"""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from instructgpt.models import load_causal_lm, load_tokenizer
from instructgpt.reward_model import RewardModel
from instructgpt.train.common import DistContext, distributed
from instructgpt.train.ppo import PPOConfig, train_ppo
from instructgpt.train.reward import RewardConfig, comparison_samples, normalize_rewards, train_reward_model
from instructgpt.train.sft import SFTConfig, train_sft

from .conftest import make_pairs
from .test_train import make_comparisons

WORLD_SIZE = 2
ATOL, RTOL = 2e-4, 1e-4  # |w_2proc − w_1proc| <= ATOL + RTOL·|w_1proc|
RM_PROMPTS = 9  # the prompts the RM trains on (make_comparisons)


# The RM's gain and bias are not trained: normalize_rewards reads them off the trained weights
# (gain = 1/std of the samples' scores, bias = −mean of the demonstrations' scores), so a weight
# difference within tolerance moves them by more than the weights' own tolerance (a 2-process run
# on a Xeon with AMX: bias −1.3856 against −1.3860). They are checked by what they are computed
# from: each run's gain and bias must be what normalize_rewards gives on that run's own weights
# and the same data (one computation, here, in one process: float rounding alone).
NORMALISATION = ("gain", "bias")
NORMALISATION_RTOL = 1e-5

# The RM head's bias gets no true gradient (the ranking loss only sees differences of scores): each
# run moves it by its own float noise divided by AdamW's sqrt(v), as far as AdamW moves any weight,
# lr per step (betas (0.9, 0.95): (1 − β1) <= sqrt(1 − β2), Kingma & Ba §2.1). Two runs then differ
# by at most twice that.
FREE_RM_KEYS = ("head.bias",)


def rm_normalisation(model_dir, state: dict[str, torch.Tensor]) -> dict[str, float]:
    """The gain and bias ``normalize_rewards`` sets on an RM holding ``state``'s weights, with the
    samples and demonstrations ``run_all`` trains the RM on."""
    rm = RewardModel.from_causal_lm(model_dir)
    rm.load_state_dict(state)
    tokenizer = load_tokenizer(model_dir)
    metrics = normalize_rewards(rm, tokenizer, comparison_samples(make_comparisons(RM_PROMPTS, 3)), make_pairs(6, 2), rm_cfg())
    return {k: metrics[k] for k in NORMALISATION}


def assert_trained_alike(name: str, model_dir, single: dict, multi: dict, label: str = "") -> None:
    """Training moved the weights (> 10·ATOL from the start: the RM's 3 steps at lr 1e-3 move its
    trained weights by 2.6e-3, once its bias, set after training, is not counted), and the 2-process weights are within
    ATOL + RTOL·|w| of the 1-process ones; the RM's gain and bias are those its own weights give
    (``NORMALISATION``)."""
    init = (RewardModel.from_causal_lm(model_dir) if name == "rm" else load_causal_lm(model_dir)[0]).state_dict()
    free = NORMALISATION + FREE_RM_KEYS if name == "rm" else ()
    keys = [k for k, v in single.items() if v.is_floating_point() and k not in free]
    moved = max(float((single[k] - init[k]).abs().max()) for k in keys)
    assert moved > 10 * ATOL, f"{name}: training barely moved the weights ({moved:.1e})"
    if name == "rm":
        for k in FREE_RM_KEYS:
            gap = float((single[k] - multi[k]).abs().max())
            assert gap <= 2 * rm_adam_reach(), (
                f"rm{label}: {k} differs by {gap:.1e}, beyond what AdamW's steps reach")
    excess = {k: float(((single[k] - multi[k]).abs() - RTOL * single[k].abs()).max()) for k in keys}
    worst = max(excess, key=excess.get)
    assert excess[worst] < ATOL, (
        f"{name}{label}: {worst} differs by more than {ATOL:g} + {RTOL:g}·|w| between 1 and 2 processes")
    if name == "rm":
        for run, state in (("1 process", single), (f"2 processes{label}", multi)):
            for k, v in rm_normalisation(model_dir, state).items():
                assert abs(float(state[k]) - v) <= NORMALISATION_RTOL * abs(v), (
                    f"rm {run}: {k} {float(state[k]):.6f} is not what normalize_rewards gives on its weights ({v:.6f})")


def sft_cfg() -> SFTConfig:
    return SFTConfig(epochs=1, lr=3e-3, batch_size=8, warmup=1, dropout=0.0, max_len=48, selection="last",
                     show_progress=False)


def rm_cfg() -> RewardConfig:
    return RewardConfig(epochs=1, lr=1e-3, batch_size=4, warmup=1, max_len=48, show_progress=False)


def rm_adam_reach() -> float:
    """The farthest AdamW moves one weight in the RM's training: lr per optimizer step."""
    cfg = rm_cfg()
    return cfg.lr * cfg.epochs * -(-RM_PROMPTS // cfg.batch_size)


def ppo_cfg() -> PPOConfig:
    return PPOConfig(steps=2, batch_size=6, mini_batch_size=3, ppo_epochs=2, lr=1e-3, max_new_tokens=6,
                     ptx_coef=0.5, ptx_batch_size=3, ptx_block_size=16, row_keyed_sampling=True, show_progress=False)


def count_sampled_tokens(policy: torch.nn.Module) -> list[int]:
    """A one-item list that counts the tokens the policy samples: every KV-cached forward (the
    sampling loop's) predicts one token per row; the update's forwards run without the cache."""
    count = [0]

    def hook(module, args, kwargs, output):
        if kwargs.get("use_cache"):
            count[0] += kwargs["input_ids"].shape[0]

    policy.register_forward_hook(hook, with_kwargs=True)
    return count


def run_all(model_dir) -> dict[str, dict[str, torch.Tensor]]:
    """SFT on 37 demonstrations (5 steps), the RM on 9 comparisons (3 steps), 2 PPO-ptx steps;
    the tokens the PPO rollouts sampled in this process under "ppo_tokens"."""
    model, tokenizer = load_causal_lm(model_dir)
    train_sft(model, tokenizer, make_pairs(37, 1), make_pairs(6, 2), sft_cfg())
    rm = RewardModel.from_causal_lm(model_dir)
    train_reward_model(rm, tokenizer, make_comparisons(RM_PROMPTS, 3), make_comparisons(3, 4), make_pairs(6, 2), rm_cfg())
    policy = load_causal_lm(model_dir)[0]
    texts = [f"{p}\n{r}" for p, r in make_pairs(40, 5)]
    tokens = count_sampled_tokens(policy)
    train_ppo(policy, None, None, rm, tokenizer, [p for p, _ in make_pairs(12, 6)], texts, ppo_cfg())
    return {"sft": model.state_dict(), "rm": rm.state_dict(), "ppo": policy.state_dict(),
            "ppo_tokens": {"n": torch.tensor(tokens[0])}}


def _worker(rank: int, port: int, model_dir: str, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD_SIZE), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    try:
        states = run_all(model_dir)
        if rank == 0:
            torch.save(states, out)
        torch.save(states["ppo_tokens"], f"{out}.tokens{rank}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_context_is_a_no_op():
    ctx = distributed()
    assert ctx == DistContext() and ctx.is_main and ctx.shard([1, 2, 3]) == [1, 2, 3]
    loss = torch.tensor(2.5)
    assert ctx.share(loss, 7)[0] is loss
    module = torch.nn.Linear(2, 2)
    assert ctx.wrap(module) is module  # one process never meets a DDP wrapper: numerics unchanged
    assert DistContext(1, 2).shard([0, 1, 2, 3, 4]) == [1, 3] and DistContext(1, 2).shard([0]) == []


def test_trained_alike_fails_on_a_real_difference(model_dir):
    """The tolerances still catch a difference: a weight off by 10·ATOL, the RM head's bias off by more
    than AdamW's steps reach, an RM bias off by 1e-3
    (what normalising on one rank's half of the demonstrations would give, or more), a gain off by 1e-3."""
    import pytest

    tokenizer = load_tokenizer(model_dir)
    rm = RewardModel.from_causal_lm(model_dir)
    train_reward_model(rm, tokenizer, make_comparisons(RM_PROMPTS, 3), make_comparisons(3, 4), make_pairs(6, 2), rm_cfg())
    single = {k: v.clone() for k, v in rm.state_dict().items()}
    assert_trained_alike("rm", model_dir, single, {k: v.clone() for k, v in single.items()})
    deltas = {"head.weight": 10 * ATOL, "head.bias": 3 * rm_adam_reach(), "bias": 1e-3, "gain": 1e-3}
    for key, delta in deltas.items():
        broken = {k: v.clone() for k, v in single.items()}
        broken[key] += delta
        with pytest.raises(AssertionError, match=key):
            assert_trained_alike("rm", model_dir, single, broken)


@pytest.mark.slow  # 2 gloo processes, ~12-30 s
def test_two_processes_match_one(model_dir, tmp_path):
    out = tmp_path / "ddp.pt"
    mp.spawn(_worker, args=(_free_port(), str(model_dir), str(out)), nprocs=WORLD_SIZE, join=True)
    ddp = torch.load(out, weights_only=True)
    single = run_all(model_dir)
    per_process = [int(torch.load(f"{out}.tokens{r}", weights_only=True)["n"]) for r in range(WORLD_SIZE)]
    n_single = int(single["ppo_tokens"]["n"])
    # 2 steps x 6 prompts x 6 tokens (an untrained model never ends every row early)
    assert n_single == 2 * 6 * 6, n_single
    assert per_process == [n_single // WORLD_SIZE] * WORLD_SIZE, (
        f"each of the {WORLD_SIZE} processes should sample half of the {n_single} tokens, got {per_process}")
    for name in ("sft", "rm", "ppo"):
        assert_trained_alike(name, model_dir, single[name], ddp[name])
