"""Benchmark: PPO throughput on the demo-size model, where a step's time goes, and the share of the
machine's matmul FLOP/s.

Measures, on a random-init GPT-2 of the demo size (4 layers × 128, 4 heads, n_positions 256)
with a byte-level BPE of at most 2048 tokens trained on ``data/corpus.jsonl`` (as the base stage
does; the synthetic corpus saturates at ~1275 tokens, so that is the real vocabulary, as in the
demo) and prompts from ``data/prompts.jsonl`` (both only read):

  matmul     FLOP/s of a large fp32 matmul (2·n³ per product): the machine's reference peak.
  ppo        samples/s of full ``train_ppo`` steps with the demo config (batch 32, minibatch 16,
             2 PPO epochs, 32 new tokens, ptx_coef 0.1).
  steps      the functions ``train_ppo`` composes, each timed alone on the same batch:
               rollout     sampling with the KV cache (logprobs and entropy from its logits)
               score       π^SFT log-probs, values, RM scores, per-token rewards
               advantages  GAE and whitening
               ppo_update  ppo_epochs × minibatches of (policy + value + ptx) forward, ONE
                           backward, per-model clipping, AdamW step
             ppo_update FLOPs ≈ 6·N·D per minibatch (forward 2·N·D + backward 4·N·D), summed
             over the two networks:
               policy: N = non-embedding params + V·d (the tied unembedding), D = M·T + P·L
               value:  N = non-embedding params + d + 1 (scalar head),          D = M·T
             M rows of T = prompt + response tokens, P ptx blocks of L tokens. Attention's
             T-dependent FLOPs (~12·n_layer·T·d per token) are NOT counted, so the share is a
             lower bound; the policy's unembedding is counted on every token, though only
             response positions are unembedded (an upper-bound term): "~".
  --profile N  also runs torch.profiler over one call of each step function and prints its N
             most expensive operators (self CPU time): where the time goes.

Timings are medians of repeats (the first repeat of each is a warm-up and is dropped). Prints a
table and, as the LAST line, one JSON object with the figures. Not part of the test suite.

    .venv/bin/python bench/ppo.py [--threads N --ppo-steps 2 --repeats 3 --profile 12]
    (~1 min idle, ~3 min on 2 busy cores)
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt.data import make_blocks  # noqa: E402
from instructgpt.models import ModelConfig, build_causal_lm  # noqa: E402
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.tokenizer import train_tokenizer  # noqa: E402
from instructgpt.train.ppo import (  # noqa: E402
    PPOConfig,
    PtxStream,
    advantages,
    make_ppo_optimizer,
    ppo_update,
    rollout,
    score,
    train_ppo,
)

DEMO_MODEL = ModelConfig(arch="gpt2", n_layer=4, n_embd=128, n_head=4, n_positions=256, dropout=0.0)


def read_texts(path: Path, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def median_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after one warm-up run."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_flops(n: int, repeats: int) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_time(lambda: a @ b, repeats)


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters of the transformer blocks and final norm (token/position embeddings excluded)."""
    return sum(p.numel() for name, p in model.named_parameters() if "wte" not in name and "wpe" not in name)


def top_ops(fn: Callable[[], object], n: int) -> list[tuple[str, float, int]]:
    """(operator, self CPU seconds, calls) of the ``n`` most expensive operators of one ``fn()``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    return [(e.key, e.self_cpu_time_total / 1e6, e.count) for e in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ppo-steps", type=int, default=2, help="train_ppo steps timed (plus one warm-up)")
    ap.add_argument("--corpus-docs", type=int, default=3000, help="corpus documents for the tokenizer/ptx")
    ap.add_argument("--profile", type=int, default=0, help="print the N most expensive operators of each step")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()

    # 0. reference: the machine's fp32 matmul FLOP/s
    peak = matmul_flops(args.matmul_n, args.repeats)

    corpus = read_texts(ROOT / "data/corpus.jsonl", args.corpus_docs)
    prompts = read_texts(ROOT / "data/prompts.jsonl", 512)
    tokenizer = train_tokenizer(corpus, vocab_size=2048)
    policy = build_causal_lm(DEMO_MODEL, tokenizer, seed=0)
    policy.eval()
    cfg = PPOConfig(steps=args.ppo_steps + 1, batch_size=32, mini_batch_size=16, ppo_epochs=2, max_new_tokens=32,
                    ptx_coef=0.1, lr=2e-5, show_progress=False)

    # 1. PPO samples/s: full train_ppo steps, timed between the log calls that end each step
    stamps: list[float] = []
    rm = RewardModel.from_causal_lm(policy, seed=1)
    t_start = time.perf_counter()
    train_ppo(copy.deepcopy(policy), None, None, rm, tokenizer, prompts, corpus, cfg,
              log=lambda m, s: stamps.append(time.perf_counter()))
    step_times = [b - a for a, b in zip([t_start] + stamps[:-1], stamps)][1:]  # first step = warm-up
    ppo_step_s = statistics.median(step_times)
    ppo_sps = cfg.batch_size / ppo_step_s

    # 2. the step functions alone, on one batch of the real shapes (no early stop: the EOS of a
    # random model is rare, and sampling only stops when every row has ended)
    up_policy, ref_policy = copy.deepcopy(policy), copy.deepcopy(policy)
    value_model = RewardModel.from_causal_lm(policy, seed=1)
    optimizer = make_ppo_optimizer(up_policy, value_model, cfg)
    ptx = PtxStream(make_blocks(tokenizer, corpus, cfg.ptx_block_size), cfg.ptx_batch_size, seed=1)
    b_prompts = prompts[: cfg.batch_size]
    gen = torch.Generator().manual_seed(0)
    profiles: dict[str, list[tuple[str, float, int]]] = {}
    steps: dict[str, Callable[[], object]] = {
        "rollout": lambda: rollout(up_policy, tokenizer, b_prompts, cfg, gen)}
    roll = rollout(up_policy, tokenizer, b_prompts, cfg, gen)
    steps["score"] = lambda: score(roll, ref_policy, value_model, rm, tokenizer, cfg, cfg.kl.kl_coef)
    scored = score(roll, ref_policy, value_model, rm, tokenizer, cfg, cfg.kl.kl_coef)
    steps["advantages"] = lambda: advantages(scored.values, scored.rewards, roll.mask, cfg)
    b_advantages, b_returns = advantages(scored.values, scored.rewards, roll.mask, cfg)
    steps["ppo_update"] = lambda: ppo_update(up_policy, value_model, optimizer, roll, scored.values, b_advantages,
                                             b_returns, cfg, step=0, ptx=ptx)
    step_s = {name: median_time(fn, args.repeats) for name, fn in steps.items()}
    if args.profile:
        profiles = {name: top_ops(fn, args.profile) for name, fn in steps.items()}

    rollout_tps = roll.response.numel() / step_s["rollout"]
    d, V = DEMO_MODEL.n_embd, len(tokenizer)
    n_blocks = non_embedding_params(up_policy)
    n_policy, n_value = n_blocks + V * d, n_blocks + d + 1
    M, T = cfg.mini_batch_size, roll.input_ids.shape[1]
    n_minibatches = cfg.ppo_epochs * cfg.batch_size // M
    tokens_rl, tokens_ptx = M * T, cfg.ptx_batch_size * cfg.ptx_block_size
    update_flops = n_minibatches * 6 * (n_policy * (tokens_rl + tokens_ptx) + n_value * tokens_rl)
    update_flops_s = update_flops / step_s["ppo_update"]
    share = update_flops_s / peak
    total_s = sum(step_s.values())

    load_after = os.getloadavg()
    print(f"PPO benchmark: GPT-2 {DEMO_MODEL.n_layer}x{DEMO_MODEL.n_embd}, {DEMO_MODEL.n_head} heads, vocab {V}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
          f"load avg {load[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'figure':<34} {'value':>14}  note")
    rows = [
        ("fp32 matmul FLOP/s", f"{peak / 1e9:.1f} G", f"{args.matmul_n}^3 matmul, median of {args.repeats}"),
        ("PPO samples/s", f"{ppo_sps:.1f}", f"{ppo_step_s:.2f} s/step, median of {len(step_times)} train_ppo steps"),
        *[(f"  {name}", f"{s * 1e3:.0f} ms", f"{100 * s / total_s:.0f} % of the four") for name, s in step_s.items()],
        ("rollout tokens/s", f"{rollout_tps:.0f}", f"batch {cfg.batch_size} x {roll.response.shape[1]} new tokens"),
        ("ppo_update FLOPs (6·N·D)", f"{update_flops / 1e9:.2f} G",
         f"{n_minibatches} minibatches of M={M} x T={T} + ptx {cfg.ptx_batch_size}x{cfg.ptx_block_size}; "
         f"N_policy={n_policy / 1e6:.2f}M, N_value={n_value / 1e6:.2f}M"),
        ("ppo_update FLOP/s", f"{update_flops_s / 1e9:.2f} G", ""),
        ("share of matmul FLOP/s", f"{100 * share:.1f} %", "~: attention FLOPs not counted"),
    ]
    for name, value, note in rows:
        print(f"{name:<34} {value:>14}  {note}")
    for name, ops in profiles.items():
        print(f"\n{name}: top operators by self CPU time")
        for op, s, calls in ops:
            print(f"  {op:<58} {s * 1e3:9.1f} ms {calls:6d} calls")
    print(json.dumps({
        "bench": "ppo", "model": {"n_layer": DEMO_MODEL.n_layer, "n_embd": d, "n_head": DEMO_MODEL.n_head, "vocab": V},
        "matmul_flops_per_s": peak, "rollout_tokens_per_s": rollout_tps,
        "ppo_samples_per_s": ppo_sps, "ppo_step_s": ppo_step_s, "ppo_step_times_s": step_times,
        "step_function_s": step_s, "update_flops": update_flops, "update_flops_per_s": update_flops_s,
        "update_matmul_share": share, "flops_formula": "n_minibatches*6*(N_policy*(M*T+P*L) + N_value*M*T)",
        "n_policy": n_policy, "n_value": n_value, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_before": load[0], "load_avg_after": load_after[0], "torch": torch.__version__,
        "machine": platform.machine(),
        "profile": {k: [{"op": op, "self_s": s, "calls": c} for op, s, c in v] for k, v in profiles.items()},
    }))


if __name__ == "__main__":
    main()
