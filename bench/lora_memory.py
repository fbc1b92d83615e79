"""Benchmark: what PPO's four networks hold in memory with and without LoRA (``ppo.lora``), and the
time of a PPO step either way.

The networks are built exactly as ``train_ppo`` builds them (``instructgpt.train.ppo.models``)
from the demo's base model (``models/demo-base``, GPT-2 4×128: pulled with ``dvc pull`` or made
with ``make demo-base``; without it, a random model of that shape, vocabulary 1274, and no
timing), the RM being that model's backbone with a scalar head, as the rm stage makes it.
Counted once per tensor however many networks share it (``instructgpt.lora.held_memory``):

  weights   parameters and buffers of policy, π^SFT, value model and RM
  grads     one copy of every trainable parameter (what backward allocates)
  adam      AdamW's two moments of every trainable parameter
  copies    each figure in multiples of one full model's weights

Prints a table and, as the LAST line, one JSON object. Not part of the test suite.

    .venv/bin/python bench/lora_memory.py [--model models/demo-base --r 8 --steps 2]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, GPT2Config  # noqa: E402

from instructgpt.lora import LoRAConfig, held_memory  # noqa: E402
from instructgpt.models import load_causal_lm  # noqa: E402
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.train.ppo import KLConfig, PPOConfig, train_ppo  # noqa: E402
from instructgpt.train.ppo.models import build_models  # noqa: E402

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain"]


def demo_cfg(lora: LoRAConfig | None, steps: int) -> PPOConfig:
    """params.yaml's ppo section (demo profile), with ``lora``."""
    return PPOConfig(steps=steps, batch_size=32, mini_batch_size=16, ppo_epochs=2, lr=2e-5, max_new_tokens=32,
                     ptx_coef=0.0, kl=KLConfig(kl_coef=0.02), show_progress=False, seed=0, lora=lora)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models/demo-base"), help="a local HF causal-LM directory")
    ap.add_argument("--r", type=int, default=8, help="LoRA rank")
    ap.add_argument("--targets", nargs="*", default=None, help="LoRA target modules (default: peft's)")
    ap.add_argument("--steps", type=int, default=2, help="PPO steps timed per variant (0 = no timing)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenizer = None
    if (Path(args.model) / "config.json").is_file():
        sft, tokenizer = load_causal_lm(args.model, dropout=0.0)
    else:
        print(f"{args.model} not found: a random GPT-2 of the demo's shape, no timing", file=sys.stderr)
        sft = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=1274, n_layer=4, n_embd=128, n_head=4,
                                                          n_positions=256))
    lora = LoRAConfig(r=args.r, alpha=2.0 * args.r, target_modules=args.targets)
    rows = {}
    for name, variant in (("full", None), ("lora", lora)):
        rm = RewardModel(copy.deepcopy(sft.base_model))
        models = build_models(copy.deepcopy(sft), None, None, rm, None, demo_cfg(variant, 1), torch.device("cpu"))
        m = held_memory([models.policy, models.ref_policy, models.value_model, models.reward_model], unit=sft)
        if tokenizer is not None and args.steps:
            prompts = [f"repeat the word {WORDS[i % 10]} {1 + i % 3} times" for i in range(64)]
            t0 = time.perf_counter()
            train_ppo(copy.deepcopy(sft), None, None, RewardModel(copy.deepcopy(sft.base_model)), tokenizer,
                      prompts, [], demo_cfg(variant, args.steps))
            m["seconds_per_step"] = (time.perf_counter() - t0) / args.steps
        rows[name] = m
    one = held_memory([sft])["weights_bytes"]
    print(f"one model: {one / 2**20:.2f} MiB ({sum(p.numel() for p in sft.parameters()):,} parameters)")
    print(f"{'':6} {'weights':>14} {'trainable':>12} {'grads+adam':>14} {'total':>14} {'s/step':>8}")
    for name, m in rows.items():
        print(f"{name:6} {m['weights_bytes'] / 2**20:8.2f} MiB ({m['weights_copies']:.2f}x) "
              f"{int(m['trainable_params']):>12,} {(m['grad_bytes'] + m['adam_bytes']) / 2**20:10.2f} MiB "
              f"{m['total_bytes'] / 2**20:8.2f} MiB ({m['total_copies']:.2f}x) "
              f"{m.get('seconds_per_step', float('nan')):8.2f}")
    print(json.dumps({"one_model_bytes": one, **{f"{k}/{n}": v for k, m in rows.items() for n, v in m.items()}}))


if __name__ == "__main__":
    main()
