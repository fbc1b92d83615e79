"""Benchmark: PPO throughput on the demo-size model, and the share of the machine's matmul FLOP/s.

Measures, on a random-init GPT-2 of the demo size (4 layers × 128, 4 heads, n_positions 256)
with a byte-level BPE of at most 2048 tokens trained on ``data/corpus.jsonl`` (as the base stage
does; the synthetic corpus saturates at ~1275 tokens, so that is the real vocabulary, as in the
demo) and prompts from ``data/prompts.jsonl`` (both only read):

  matmul     FLOP/s of a large fp32 matmul (2·n³ per product): the machine's reference peak.
  rollout    tokens/s of KV-cache sampling (``generate_ids``), batch 32, 32 new tokens.
  ppo        samples/s of full ``train_ppo`` steps with the demo config (batch 32, minibatch 16,
             2 PPO epochs, 32 new tokens, ptx_coef 0.1): rollout, scoring, GAE and updates.
  update     one PPO minibatch update as ``train_ppo`` does it (policy logits + value forward,
             PPO losses, ptx LM loss, ONE backward, clipping, AdamW step), timed alone.
             FLOPs ≈ 6·N·D (forward 2·N·D + backward 4·N·D), summed over the two networks:
               policy: N = non-embedding params + V·d (the tied unembedding), D = M·T + P·L
               value:  N = non-embedding params + d + 1 (scalar head),          D = M·T
             M rows of T = prompt + response tokens, P ptx blocks of L tokens. Attention's
             T-dependent FLOPs (~12·n_layer·T·d per token) are NOT counted, so the share is a
             lower bound; the policy's unembedding is counted on every token, though only
             response positions are unembedded (an upper-bound term): "~".

Timings are medians of repeats (the first repeat of each is a warm-up and is dropped). Prints a
table and, as the LAST line, one JSON object with the figures. Not part of the test suite.

    .venv/bin/python bench/ppo.py [--threads N --ppo-steps 2 --repeats 3]   (~1 min idle, ~3 min on 2 busy cores)
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
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt.data import collate_prompts, make_blocks  # noqa: E402
from instructgpt.generation import generate_ids  # noqa: E402
from instructgpt.losses import lm_loss, ppo_policy_loss, ppo_value_loss  # noqa: E402
from instructgpt.models import ModelConfig, RewardModel, build_causal_lm, position_ids_from_mask  # noqa: E402
from instructgpt.tokenizer import train_tokenizer  # noqa: E402
from instructgpt.train.common import make_optimizer  # noqa: E402
from instructgpt.train.ppo import PPOConfig, gather_logprobs, response_logits, train_ppo  # noqa: E402

DEMO_MODEL = ModelConfig(arch="gpt2", n_layer=4, n_embd=128, n_head=4, n_positions=256, dropout=0.0)


def read_texts(path: Path, n: int) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            out.append(json.loads(line)["text"])
            if len(out) == n:
                break
    return out


def median_time(fn, repeats: int) -> float:
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ppo-steps", type=int, default=2, help="train_ppo steps timed (plus one warm-up)")
    ap.add_argument("--corpus-docs", type=int, default=3000, help="corpus documents for the tokenizer/ptx")
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

    # 1. rollout tokens/s: KV-cache sampling, batch 32, 32 new tokens (no early stop: the EOS
    # of a random model is rare, and the loop only stops when every row has ended)
    q = collate_prompts(tokenizer, prompts[: cfg.batch_size], cfg.max_prompt_len)
    gen = torch.Generator().manual_seed(0)
    n_generated = []

    def rollout() -> None:
        r = generate_ids(policy, q.input_ids, q.attention_mask, q.position_ids, cfg.max_new_tokens, 1.0,
                         tokenizer.eos_token_id, tokenizer.pad_token_id, gen)  # (B, T_r)
        n_generated.append(r.numel())

    rollout_s = median_time(rollout, args.repeats)
    rollout_tps = n_generated[-1] / rollout_s

    # 2. PPO samples/s: full train_ppo steps, timed between the log calls that end each step
    stamps: list[float] = []
    rm = RewardModel.from_causal_lm(policy, seed=1)
    ppo_policy = copy.deepcopy(policy)
    t_start = time.perf_counter()
    train_ppo(ppo_policy, None, None, rm, tokenizer, prompts, corpus, cfg,
              log=lambda m, s: stamps.append(time.perf_counter()))
    step_times = [b - a for a, b in zip([t_start] + stamps[:-1], stamps)][1:]  # first step = warm-up
    ppo_step_s = statistics.median(step_times)
    ppo_sps = cfg.batch_size / ppo_step_s

    # 3. one PPO minibatch update, as in train_ppo step 6, on a rollout of the real shapes
    up_policy, value_model = copy.deepcopy(policy), RewardModel.from_causal_lm(policy, seed=1)
    params = list(up_policy.parameters()) + list(value_model.parameters())
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    M = cfg.mini_batch_size
    mb_q = collate_prompts(tokenizer, prompts[:M], cfg.max_prompt_len)
    query_len = mb_q.input_ids.shape[1]
    response = generate_ids(policy, mb_q.input_ids, mb_q.attention_mask, mb_q.position_ids, cfg.max_new_tokens, 1.0,
                            tokenizer.eos_token_id, tokenizer.pad_token_id, gen)  # (M, T_r)
    mb_input_ids = torch.cat([mb_q.input_ids, response], 1)  # (M, T)
    mb_attention_mask = torch.cat([mb_q.attention_mask, torch.ones_like(response)], 1)  # (M, T)
    mb_position_ids = position_ids_from_mask(mb_attention_mask)  # (M, T)
    mb_mask = torch.ones_like(response, dtype=torch.bool)  # (M, T_r)
    with torch.no_grad():
        old_logprobs = gather_logprobs(response_logits(up_policy, mb_input_ids, mb_attention_mask, mb_position_ids,
                                                       query_len, 1.0), response)  # (M, T_r)
        old_values = value_model.per_token(mb_input_ids, mb_attention_mask, mb_position_ids)[:, query_len - 1: -1]
    advantages, returns = torch.randn_like(old_logprobs), torch.randn_like(old_logprobs)  # (M, T_r)
    ptx_blocks = make_blocks(tokenizer, corpus, cfg.ptx_block_size)[: cfg.ptx_batch_size]  # (P, L)

    def update() -> None:
        mb_logprobs = gather_logprobs(response_logits(up_policy, mb_input_ids, mb_attention_mask, mb_position_ids,
                                                      query_len, 1.0), response)  # (M, T_r)
        vpred = value_model.per_token(mb_input_ids, mb_attention_mask, mb_position_ids)[:, query_len - 1: -1]
        pg_loss, _ = ppo_policy_loss(mb_logprobs, old_logprobs, advantages, mb_mask, cfg.cliprange)
        vf_loss, _ = ppo_value_loss(vpred, old_values, returns, mb_mask, cfg.cliprange_value)
        ptx_loss, _ = lm_loss(up_policy(input_ids=ptx_blocks).logits, ptx_blocks, torch.ones_like(ptx_blocks))
        loss = pg_loss + cfg.vf_coef * vf_loss + cfg.ptx_coef * ptx_loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        optimizer.step()

    update_s = median_time(update, args.repeats)
    d, V = DEMO_MODEL.n_embd, len(tokenizer)
    n_blocks = non_embedding_params(up_policy)
    n_policy, n_value = n_blocks + V * d, n_blocks + d + 1
    tokens_rl, tokens_ptx = mb_input_ids.numel(), ptx_blocks.numel()
    update_flops = 6 * (n_policy * (tokens_rl + tokens_ptx) + n_value * tokens_rl)
    update_flops_s = update_flops / update_s
    share = update_flops_s / peak

    load_after = os.getloadavg()
    print(f"PPO benchmark: GPT-2 {DEMO_MODEL.n_layer}x{DEMO_MODEL.n_embd}, {DEMO_MODEL.n_head} heads, vocab {V}, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs, "
          f"load avg {load[0]:.2f} -> {load_after[0]:.2f}")
    print(f"{'figure':<34} {'value':>14}  note")
    rows = [
        ("fp32 matmul FLOP/s", f"{peak / 1e9:.1f} G", f"{args.matmul_n}^3 matmul, median of {args.repeats}"),
        ("rollout tokens/s", f"{rollout_tps:.0f}", f"batch {cfg.batch_size} x {cfg.max_new_tokens} new tokens, "
                                                   f"{rollout_s * 1e3:.0f} ms/batch (KV cache)"),
        ("PPO samples/s", f"{ppo_sps:.1f}", f"{ppo_step_s:.2f} s/step, median of {len(step_times)} train_ppo steps"),
        ("PPO update step", f"{update_s * 1e3:.0f} ms", f"M={M} x T={mb_input_ids.shape[1]} + ptx {cfg.ptx_batch_size}"
                                                       f"x{cfg.ptx_block_size} tokens"),
        ("update FLOPs (6·N·D)", f"{update_flops / 1e9:.2f} G",
         f"N_policy={n_policy / 1e6:.2f}M, N_value={n_value / 1e6:.2f}M"),
        ("update FLOP/s", f"{update_flops_s / 1e9:.2f} G", ""),
        ("share of matmul FLOP/s", f"{100 * share:.1f} %", "~: attention FLOPs not counted"),
    ]
    for name, value, note in rows:
        print(f"{name:<34} {value:>14}  {note}")
    print(json.dumps({
        "bench": "ppo", "model": {"n_layer": DEMO_MODEL.n_layer, "n_embd": d, "n_head": DEMO_MODEL.n_head, "vocab": V},
        "matmul_flops_per_s": peak, "rollout_tokens_per_s": rollout_tps, "rollout_batch_s": rollout_s,
        "ppo_samples_per_s": ppo_sps, "ppo_step_s": ppo_step_s, "ppo_step_times_s": step_times,
        "update_step_s": update_s, "update_flops": update_flops, "update_flops_per_s": update_flops_s,
        "update_matmul_share": share, "flops_formula": "6*(N_policy*(M*T+P*L) + N_value*M*T)",
        "n_policy": n_policy, "n_value": n_value, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "load_avg_before": load[0], "load_avg_after": load_after[0], "torch": torch.__version__,
        "machine": platform.machine(),
    }))


if __name__ == "__main__":
    main()
