"""GPU check: does the library train correctly under bf16 on this device, and how fast is it?

    make gpu-check                        (the project's venv: .venv/bin/python bench/gpu.py)
    python bench/gpu.py [--size gpt2 --size qwen2-0.5b] [--skip-throughput] [--only sft,ppo]

On a machine without the project's venv (a lent GPU box), copy the repository and run
``python bench/gpu.py`` from its root with torch, transformers and peft installed: the script
imports only those and ``instructgpt`` (from the repository root), never MLflow, Prefect, DVC,
Great Expectations or Presidio, reads no file and downloads nothing. Models are random-init, the
tokenizer is a byte-level BPE trained here on toy text.

1. Smoke checks (PASS/FAIL; the exit code is 1 when any fails). Each runs the library the way the
   stage shells do: ``compute = resolve(ComputeConfig(precision="bf16"))``, models on
   ``compute.device``, the training call inside ONE ``compute.scope()``; the tiny model (GPT-2,
   2 layers, 32 dims), whatever the size of the throughput section.

   pretrain, sft, rm, ppo, ppo-ptx, ppo-lora   bf16 learns like fp32: the same run (same seed,
       data, config) under fp32 and under bf16, the result measured in fp32 outside the scope
       (pretraining: held-out corpus loss; SFT: held-out demonstration loss; RM: held-out K-way
       ranking loss, normalisation off; PPO, one-token responses, 512 a step: the policy's
       probability of the tokens a rule reward pays for, over fixed prompts; plain, with ptx,
       with LoRA on every linear layer). PASS when the bf16 improvement is within 10 % of the fp32
       one (and the fp32 one is real).
   lora-merge   a LoRA adapter trained under bf16 and merged inside the scope writes
       W0 + (α/r)·B·A into the base weights: the merged change is non-zero and matches B·A in
       fp32 to 1e-3 of its largest entry.
   ratio        PPO's importance ratio at step 0: the sampling pass's log-probabilities against
       the update's full forward (``rollout`` vs ``token_logprobs``), both under bf16. PASS when
       mean |r - 1| <= 0.01 and max |r - 1| < 0.2 (the clip range: no token clipped at step 0).
   rm-shared    the RM's shared-prompt forward (``prefix_rewards``, what RM training runs) against
       the plain forward, under bf16: max |Δ| <= 5 % of the rewards' standard deviation.

   ``ratio`` and ``rm-shared`` also run on each size of the throughput section (after its SFT
   run has trained the model a little, so its distributions are no longer flat).

2. Throughput, per size (all under the bf16 scope):
   matmul       the device's bf16 matmul rate (2·n³ per product; 8192³ on a GPU), the MFU reference
   sft, rm      tokens/s of ``train_sft`` / ``train_reward_model`` steps (median step time between
                the trainer's log calls, warm-up steps dropped) and MFU = 6·N·tokens/s over the
                matmul rate; N = the weights matmuls use (embedding lookups out, the tied
                unembedding in; attention's T-dependent FLOPs not counted: a lower bound)
   ppo          samples/s of whole ``train_ppo`` steps, and ``rollout`` / ``score`` /
                ``advantages`` / ``ppo_update`` each timed alone on one batch
   decode       ms per new token of ``instructgpt.generation.generate`` (time for n tokens minus
                time for one, over n - 1), per engine when ``generate`` takes an ``engine``

   sizes: tiny (CPU default), gpt2 (12 layers, 768, 12 heads, vocab 50257) and qwen2-0.5b
   (24 layers, hidden 896, 14 heads, 2 KV heads, MLP 4864, vocab 151936): the CUDA default.
   The large vocabularies are set in the model config; the toy tokenizer's ids are a subset.

Prints a table and, as the LAST line, one JSON object with every figure. The CPU run: ~25 s on 2 cores.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import inspect
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from instructgpt.data import collate_pairs, collate_prompts  # noqa: E402
from instructgpt.device import Compute, ComputeConfig, resolve  # noqa: E402
from instructgpt.evaluation import corpus_loss  # noqa: E402
from instructgpt.generation import generate  # noqa: E402
from instructgpt.lora import LoRAConfig, add_adapter, merge_adapter  # noqa: E402
from instructgpt.models import ModelConfig, build_causal_lm, fuse_activations  # noqa: E402
from instructgpt.prefix_sharing import collate_prefix, prefix_rewards, supports_shared_prefix  # noqa: E402
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.tokenizer import train_tokenizer  # noqa: E402
from instructgpt.train.ppo import (  # noqa: E402
    KLConfig,
    PPOConfig,
    advantages,
    make_ppo_optimizer,
    ppo_update,
    response_logits,
    rollout,
    score,
    train_ppo,
)
from instructgpt.train.ppo.rollout import token_logprobs  # noqa: E402
from instructgpt.train.pretrain import PretrainConfig, pretrain  # noqa: E402
from instructgpt.train.reward import Comparison, RewardConfig, evaluate_rm, train_reward_model  # noqa: E402
from instructgpt.train.sft import SFTConfig, sft_loss, train_sft  # noqa: E402

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain", "hat", "boat"]
LEARN_TOL = 0.10  # bf16's improvement within 10 % of fp32's
MERGE_TOL = 1e-3  # merged ΔW vs (α/r)·B·A in fp32, relative to its largest entry
RATIO_MEAN_TOL, RATIO_MAX_TOL = 0.01, 0.2  # |r - 1| at step 0; 0.2 = PPO's clip range
SHARED_TOL = 0.05  # |shared - plain| / std(plain)


@dataclass(frozen=True)
class Shape:
    """A model shape: the tiny one the checks train, or a real one for the throughput table."""

    arch: str  # "gpt2" or "qwen2"
    n_layer: int  # transformer blocks
    d: int  # hidden size
    n_head: int  # attention heads
    n_kv_head: int | None = None  # key/value heads (qwen2: grouped-query attention)
    d_ff: int | None = None  # MLP width (qwen2)
    vocab: int | None = None  # None: the tokenizer's
    n_positions: int = 256  # context length


SHAPES = {
    "tiny": Shape("gpt2", 2, 32, 2),
    "gpt2": Shape("gpt2", 12, 768, 12, vocab=50257, n_positions=1024),
    "qwen2-0.5b": Shape("qwen2", 24, 896, 14, n_kv_head=2, d_ff=4864, vocab=151936, n_positions=4096),
}


@dataclass(frozen=True)
class Load:
    """Batch shapes of the throughput section (GPU, or the CPU's small ones)."""

    matmul_n: int  # side of the reference bf16 matmul
    sft_batch: int  # demonstrations per SFT step
    sft_len: int  # tokens per demonstration
    rm_prompts: int  # prompts per RM step
    rm_k: int  # responses per prompt
    rm_prompt_len: int  # tokens per prompt
    rm_response_len: int  # tokens per response
    ppo_batch: int  # rollouts per PPO step (and decode batch)
    ppo_mini: int  # rollouts per minibatch
    ppo_epochs: int  # passes over each rollout batch
    prompt_len: int  # prompt tokens of a rollout
    new_tokens: int  # response tokens of a rollout
    steps: int = 8  # timed trainer steps (after 2 warm-up steps)
    repeats: int = 2  # timed calls of each PPO step function and decode (after a warm-up)


GPU_LOAD = Load(8192, 16, 512, 8, 8, 64, 64, 128, 32, 4, 64, 128)
CPU_LOAD = Load(1024, 8, 64, 4, 4, 16, 16, 16, 8, 2, 16, 16, steps=6)


# ---- toy data: words, "repeat the word w k times", K-way rankings ----

def make_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"repeat the word {w} {k} times", " ".join([w] * k))
            for w, k in ((rng.choice(WORDS), rng.randint(1, 3)) for _ in range(n))]


def make_corpus(n: int, seed: int, lo: int = 5, hi: int = 10) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) + " ." for _ in range(n)]


def make_comparisons(n: int, seed: int) -> list[Comparison]:
    """The right repetition is best, then answers with more and more wrong words (K = 4..6)."""
    rng = random.Random(seed)
    out = []
    for prompt, good in make_pairs(n, seed):
        k = rng.randint(4, 6)
        responses = [" ".join(good.split() + [rng.choice(WORDS)] * j) for j in range(k)]
        order = list(range(k))
        rng.shuffle(order)
        out.append(Comparison(prompt, [responses[i] for i in order], sorted(range(k), key=order.__getitem__)))
    return out


def preferred(ids: torch.Tensor) -> torch.Tensor:
    return ids % 10 == 7


class PrefersTokens(nn.Module):
    """A reward with a known direction: r(x, y) = the number of tokens whose id ends in 7."""

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        return (preferred(input_ids) & attention_mask.bool()).sum(1).float()  # (B,)


def build_model(shape: Shape, tokenizer, seed: int = 0) -> nn.Module:
    """A random-init causal LM: ``build_causal_lm`` for the tiny shape, the Hugging Face config
    itself for the real ones (their vocabulary is larger than the toy tokenizer's)."""
    if shape.vocab is None:
        return build_causal_lm(ModelConfig(arch=shape.arch, n_layer=shape.n_layer, n_embd=shape.d,
                                           n_head=shape.n_head, n_positions=shape.n_positions), tokenizer, seed)
    common = dict(vocab_size=shape.vocab, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id)
    if shape.arch == "gpt2":
        cfg = transformers.GPT2Config(n_layer=shape.n_layer, n_embd=shape.d, n_head=shape.n_head,
                                      n_positions=shape.n_positions, resid_pdrop=0.0, embd_pdrop=0.0,
                                      attn_pdrop=0.0, **common)
    else:
        cfg = transformers.Qwen2Config(num_hidden_layers=shape.n_layer, hidden_size=shape.d,
                                       num_attention_heads=shape.n_head, num_key_value_heads=shape.n_kv_head,
                                       intermediate_size=shape.d_ff, max_position_embeddings=shape.n_positions,
                                       rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True, **common)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fuse_activations(transformers.AutoModelForCausalLM.from_config(cfg).float())


def matmul_params(model: nn.Module) -> int:
    """Weights that matmuls read per token: all but the input and position embeddings (lookups),
    the tied unembedding counted once. Works for a causal LM and a ``RewardModel``."""
    lm = model.backbone if isinstance(model, RewardModel) else model
    seen = {id(p): p for p in model.parameters()}
    n = sum(p.numel() for p in seen.values())
    emb = lm.get_input_embeddings().weight
    out = lm.get_output_embeddings() if hasattr(lm, "get_output_embeddings") else None
    tied = out is not None and out.weight is emb
    n -= 0 if tied else emb.numel()
    n -= sum(m.weight.numel() for name, m in lm.named_modules() if name.endswith("wpe"))
    return n


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class StepClock:
    """A trainer's ``log`` callback that stamps each step (the trainers log every step here)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.stamps, self.metrics = device, [time.perf_counter()], []

    def __call__(self, metrics: dict[str, float], step: int) -> None:
        sync(self.device)
        self.stamps.append(time.perf_counter())
        self.metrics.append(metrics)

    def step_s(self, warmup: int = 2) -> float:
        """Median seconds between stamps after the first ``warmup`` steps."""
        gaps = [b - a for a, b in zip(self.stamps, self.stamps[1:])]
        return statistics.median(gaps[warmup:] or gaps)


# ---- 1. smoke checks ----

@dataclass
class Check:
    """One row of the smoke table."""

    name: str  # e.g. "ppo-lora", "ratio (gpt2)"
    passed: bool
    figure: str  # what was measured, for the table
    tolerance: str  # what PASS needs, for the table
    values: dict[str, float] = field(default_factory=dict)  # the figures, for the JSON
    seconds: float = 0.0


def learned(name: str, what: str, fp32: float, bf16: float) -> Check:
    """PASS when bf16's improvement is within ``LEARN_TOL`` of fp32's, and fp32's is real."""
    rel = abs(bf16 - fp32) / abs(fp32) if fp32 else float("inf")
    return Check(name, fp32 > 1e-3 and rel <= LEARN_TOL,
                 f"{what}: bf16 {bf16:.3f}, fp32 {fp32:.3f} ({100 * rel:.1f} %)",
                 f"within {100 * LEARN_TOL:.0f} % of fp32", {"fp32": fp32, "bf16": bf16, "rel_diff": rel})


class Smoke:
    """The tiny model, its data and the bf16 and fp32 computes on ``device`` (``ComputeConfig.device``);
    each ``check_*`` returns a ``Check``."""

    def __init__(self, device: str) -> None:
        self.bf16 = resolve(ComputeConfig(device=device, precision="bf16"))
        self.fp32 = resolve(ComputeConfig(device=device, precision="fp32"))
        texts = [f"{p}\n{r}" for p, r in make_pairs(200, 0)] + make_corpus(200, 9)
        self.tok = train_tokenizer(texts, vocab_size=300)
        self.base = self.fp32.place(build_model(SHAPES["tiny"], self.tok))
        self.sft_train, self.sft_valid = make_pairs(64, 3), make_pairs(32, 4)
        # the SFT policy PPO starts from (fp32, as a stage would load it)
        self.policy = self.place(copy.deepcopy(self.base))
        train_sft(self.policy, self.tok, self.sft_train, [], self.sft_cfg())

    def place(self, m: nn.Module) -> nn.Module:
        return self.fp32.place(m)

    def sft_cfg(self) -> SFTConfig:
        return SFTConfig(epochs=4, lr=3e-3, batch_size=8, max_len=48, dropout=0.0, warmup=5, selection="last",
                         show_progress=False)

    def both(self, run: Callable[[Compute], float]) -> tuple[float, float]:
        return run(self.fp32), run(self.bf16)

    def check_pretrain(self) -> Check:
        train, held = make_corpus(400, 1), make_corpus(50, 2)
        before = corpus_loss(self.base, self.tok, held)

        def run(compute: Compute) -> float:
            m = copy.deepcopy(self.base)
            with compute.scope():
                pretrain(m, self.tok, train, [], PretrainConfig(lr=3e-3, batch_size=8, block_size=32, warmup=5,
                                                                show_progress=False))
            return before - corpus_loss(m, self.tok, held)

        return learned("pretrain", "held-out loss drop", *self.both(run))

    def check_sft(self) -> Check:
        before = sft_loss(self.base, self.tok, self.sft_valid, 48)

        def run(compute: Compute) -> float:
            m = copy.deepcopy(self.base)
            with compute.scope():
                train_sft(m, self.tok, self.sft_train, self.sft_valid, self.sft_cfg())
            return before - sft_loss(m, self.tok, self.sft_valid, 48)

        return learned("sft", "held-out loss drop", *self.both(run))

    def check_rm(self) -> Check:
        train, valid = make_comparisons(48, 5), make_comparisons(24, 6)
        rm0 = self.place(RewardModel.from_causal_lm(self.policy, seed=3))
        before = evaluate_rm(rm0, self.tok, valid, 16, 48)["loss"]
        cfg = RewardConfig(epochs=3, lr=1e-3, batch_size=4, max_len=48, warmup=3, normalize_bias=False,
                           normalize_scale=False, show_progress=False)

        def run(compute: Compute) -> float:
            rm = copy.deepcopy(rm0)
            with compute.scope():
                train_reward_model(rm, self.tok, train, [], [], cfg)
            return before - evaluate_rm(rm, self.tok, valid, 16, 48)["loss"]

        return learned("rm", "held-out ranking loss drop", *self.both(run))

    def preferred_mass(self, model: nn.Module, roll) -> float:
        """Mean probability of the rewarded tokens at the response positions of ``roll`` (fp32)."""
        with torch.no_grad():
            logits = response_logits(model, roll.input_ids, roll.attention_mask, roll.position_ids,
                                     roll.query_len, 1.0)  # (B, T_r, V)
            ids = torch.arange(logits.shape[-1], device=logits.device)
            mass = torch.softmax(logits, -1)[..., preferred(ids)].sum(-1)  # (B, T_r)
        return float(mass[roll.mask].mean())

    def check_ppo(self, name: str, ptx_coef: float = 0.0, lora: LoRAConfig | None = None) -> Check:
        """One-token responses (a bandit) and 512 rollouts a step: PPO's outcome then hardly depends
        on which tokens were sampled, so the bf16 and fp32 runs, which part at their first
        differently sampled token, stay within ~3 % of each other (longer responses and smaller
        batches: 5-20 %, as different seeds do)."""
        prompts = [p for p, _ in make_pairs(16, 1)]
        cfg = PPOConfig(steps=8, batch_size=512, mini_batch_size=128, ppo_epochs=2, lr=1e-3 if lora is None else 3e-3,
                        max_new_tokens=1, no_eos_penalty=None, kl=KLConfig(kl_coef=0.05), ptx_coef=ptx_coef,
                        ptx_batch_size=16, ptx_block_size=16, lora=lora, show_progress=False, seed=0)
        gen = torch.Generator(device=self.fp32.device).manual_seed(1)
        contexts = rollout(self.policy.eval(), self.tok, prompts, cfg, gen)  # fixed contexts, fp32
        before = self.preferred_mass(self.policy, contexts)
        value0 = self.place(RewardModel.from_causal_lm(self.policy, seed=3))

        def run(compute: Compute) -> float:
            policy = copy.deepcopy(self.policy)
            with compute.scope():
                train_ppo(policy, None, copy.deepcopy(value0), PrefersTokens(), self.tok, prompts,
                          make_corpus(60, 7), cfg)
            return self.preferred_mass(policy, contexts) - before

        return learned(name, "rewarded-token probability gain", *self.both(run))

    def check_lora_merge(self) -> Check:
        m = copy.deepcopy(self.policy)
        adapter = add_adapter(m, LoRAConfig(r=4, alpha=8.0), seed=0, where="gpu.lora")
        layers = {n: mod for n, mod in m.named_modules() if hasattr(mod, "lora_A") and "default" in mod.lora_A}
        w0 = {n: mod.base_layer.weight.detach().clone() for n, mod in layers.items()}
        with self.bf16.scope():
            pretrain(m, self.tok, make_corpus(200, 8), [], PretrainConfig(lr=1e-2, batch_size=8, block_size=32,
                                                                          warmup=2, show_progress=False))
            with torch.autocast(self.bf16.device.type, enabled=False), torch.no_grad():
                expected = {}
                for n, mod in layers.items():
                    delta = (mod.lora_B["default"].weight @ mod.lora_A["default"].weight) * mod.scaling["default"]
                    expected[n] = delta.T if mod.fan_in_fan_out else delta
            merge_adapter(adapter)  # inside the scope, as train_sft / train_ppo merge
        changed = max(float((m.get_submodule(n).weight.detach() - w0[n]).abs().max()) for n in layers)
        scale = max(float(e.abs().max()) for e in expected.values())
        err = max(float((m.get_submodule(n).weight.detach() - w0[n] - expected[n]).abs().max())
                  for n in layers)
        rel = err / scale if scale else float("inf")
        return Check("lora-merge", changed > 0 and rel <= MERGE_TOL,
                     f"max |ΔW| {changed:.2e}, |ΔW - (α/r)·B·A| {rel:.1e} of max",
                     f"ΔW ≠ 0, ≤ {MERGE_TOL:.0e}",
                     {"max_delta_w": changed, "max_expected": scale, "rel_err": rel})


def check_ratio(name: str, compute: Compute, policy: nn.Module, tok, prompts: list[str], cfg: PPOConfig) -> Check:
    """PPO's ratio exp(logprobs_update - logprobs_rollout) at step 0, both passes under ``compute``."""
    policy.eval()
    gen = torch.Generator(device=compute.device).manual_seed(0)
    with compute.scope(), torch.no_grad():
        roll = rollout(policy, tok, prompts, cfg, gen)
        new = token_logprobs(policy, roll, cfg.temperature)  # (B, T_r)
    dev = (new - roll.logprobs.float())[roll.mask].exp().sub(1).abs()
    mean, mx = float(dev.mean()), float(dev.max())
    return Check(name, mean <= RATIO_MEAN_TOL and mx < RATIO_MAX_TOL,
                 f"|r - 1| mean {mean:.1e}, max {mx:.1e} over {dev.numel()} tokens",
                 f"mean ≤ {RATIO_MEAN_TOL}, max < {RATIO_MAX_TOL}", {"mean_abs": mean, "max_abs": mx})


def check_shared(name: str, compute: Compute, rm: RewardModel, tok, comparisons: list[Comparison],
                 max_len: int) -> Check:
    """The shared-prompt reward forward against the plain one, both under ``compute``."""
    pairs = [(c.prompt, r) for c in comparisons for r in c.responses]
    batch = collate_prefix(tok, pairs, max_len)
    if batch is None or not supports_shared_prefix(rm):
        return Check(name, False, "the shared-prompt path does not apply to these pairs", "", {})
    rm.eval()
    with compute.scope(), torch.no_grad():
        shared = prefix_rewards(rm, batch).float()
        inputs = collate_pairs(tok, pairs, max_len).model_inputs()
        plain = rm(**{k: v.to(compute.device) for k, v in inputs.items()}).float()
    rel = float((shared - plain).abs().max() / plain.std().clamp(min=1e-12))
    return Check(name, rel <= SHARED_TOL, f"max |Δ| {rel:.1e} of the rewards' sd over {len(pairs)} pairs",
                 f"≤ {SHARED_TOL:.0%} of sd", {"rel_max_diff": rel, "reward_sd": float(plain.std())})


# ---- 2. throughput ----

def words(n: int, rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def throughput(size: str, compute: Compute, load: Load, tok, checks: list[Check]) -> dict[str, float]:
    """The figures of one model size (and its ``ratio`` / ``rm-shared`` checks, into ``checks``)."""
    device, rng, out = compute.device, random.Random(0), {}
    model = compute.place(build_model(SHAPES[size], tok))
    fresh = copy.deepcopy(model)  # PPO and decode run the random init: no EOS, full-length responses
    out["params"] = float(sum(p.numel() for p in model.parameters()))
    out["matmul_params"] = float(matmul_params(model))

    # 0. the reference: a big bf16 matmul
    n = load.matmul_n
    a, b = (torch.randn(n, n, device=device, dtype=torch.bfloat16) for _ in range(2))
    out["matmul_flops_per_s"] = peak = 2 * n**3 / median_time(lambda: a @ b, 10, device)
    del a, b

    # 1. SFT steps (examples longer than sft_len, cut to it: every step sft_batch × sft_len tokens)
    T = load.sft_len
    pairs = [(words(T, rng), words(T, rng)) for _ in range(load.sft_batch * (load.steps + 2))]
    clock = StepClock(device)
    with compute.scope():
        train_sft(model, tok, pairs, [], SFTConfig(epochs=1, lr=3e-4, batch_size=load.sft_batch, max_len=T, warmup=0,
                                                   dropout=0.0, selection="last", log_every=1, show_progress=False),
                  log=clock)
    out["sft_step_s"] = clock.step_s()
    out["sft_tokens_per_s"] = load.sft_batch * T / out["sft_step_s"]
    out["sft_mfu"] = 6 * out["matmul_params"] * out["sft_tokens_per_s"] / peak
    ratio_cfg = PPOConfig(batch_size=load.ppo_mini, mini_batch_size=load.ppo_mini, max_new_tokens=load.new_tokens,
                          max_prompt_len=load.prompt_len)
    ppo_prompts = [words(load.prompt_len + 8, rng) for _ in range(load.ppo_batch)]
    checks.append(check_ratio(f"ratio ({size})", compute, model, tok, ppo_prompts[: load.ppo_mini], ratio_cfg))

    # 2. RM steps: rm_prompts prompts × K responses, each prompt run once (prefix sharing)
    L = load.rm_prompt_len + load.rm_response_len
    comparisons = [Comparison(words(L, rng), [words(L, rng) for _ in range(load.rm_k)], list(range(load.rm_k)))
                   for _ in range(load.rm_prompts * (load.steps + 2))]
    first = collate_prefix(tok, [(c.prompt, r) for c in comparisons[: load.rm_prompts] for r in c.responses], L)
    rm_tokens = float(first.prompt_mask.sum() + first.response_mask.sum())
    rm = compute.place(RewardModel.from_causal_lm(model, seed=1))
    del model
    clock = StepClock(device)
    with compute.scope():
        train_reward_model(rm, tok, comparisons, [], [], RewardConfig(
            epochs=1, lr=1e-5, batch_size=load.rm_prompts, max_len=L, warmup=0, log_every=1, normalize_bias=False,
            normalize_scale=False, show_progress=False), log=clock)
    out["rm_step_s"] = clock.step_s()
    out["rm_tokens_per_s"] = rm_tokens / out["rm_step_s"]
    out["rm_mfu"] = 6 * matmul_params(rm) * out["rm_tokens_per_s"] / peak
    checks.append(check_shared(f"rm-shared ({size})", compute, rm, tok, comparisons[:2], L))
    del rm

    # 3. PPO: whole train_ppo steps, then the four step functions alone on one batch
    cfg = PPOConfig(steps=3, batch_size=load.ppo_batch, mini_batch_size=load.ppo_mini, ppo_epochs=load.ppo_epochs,
                    max_new_tokens=load.new_tokens, max_prompt_len=load.prompt_len, lr=1e-6, show_progress=False)
    reward_model = compute.place(RewardModel.from_causal_lm(fresh, seed=1))
    clock = StepClock(device)
    with compute.scope():
        train_ppo(copy.deepcopy(fresh), None, None, reward_model, tok, ppo_prompts, [], cfg, log=clock)
    out["ppo_step_s"] = clock.step_s(warmup=1)
    out["ppo_samples_per_s"] = cfg.batch_size / out["ppo_step_s"]
    policy, ref_policy = copy.deepcopy(fresh), copy.deepcopy(fresh)
    value_model = copy.deepcopy(reward_model)
    for m in (policy, ref_policy, value_model, reward_model):
        m.eval()
    optimizer = make_ppo_optimizer(policy, value_model, cfg)
    gen = torch.Generator(device=device).manual_seed(0)
    with compute.scope():
        roll = rollout(policy, tok, ppo_prompts, cfg, gen)
        scored = score(roll, ref_policy, value_model, reward_model, tok, cfg, cfg.kl.kl_coef)
        b_adv, b_ret = advantages(scored.values, scored.rewards, roll.mask, cfg)
        steps = {"rollout": lambda: rollout(policy, tok, ppo_prompts, cfg, gen),
                 "score": lambda: score(roll, ref_policy, value_model, reward_model, tok, cfg, cfg.kl.kl_coef),
                 "advantages": lambda: advantages(scored.values, scored.rewards, roll.mask, cfg),
                 "ppo_update": lambda: ppo_update(policy, value_model, optimizer, roll, scored.values, b_adv, b_ret,
                                                  cfg, step=0)}
        for name, fn in steps.items():
            out[f"{name}_s"] = median_time(fn, load.repeats, device)
    out["response_tokens"] = float(roll.response.shape[1])
    del policy, ref_policy, value_model, reward_model, optimizer, roll, scored

    # 4. decode: ms per new token of generate, (time for n tokens - time for 1) / (n - 1)
    q = collate_prompts(tok, ppo_prompts, load.prompt_len)
    ids, mask, pos = (t.to(device) for t in (q.input_ids, q.attention_mask, q.position_ids))
    engines = ["dynamic", "auto"] if "engine" in inspect.signature(generate).parameters else [None]
    fresh.eval()
    for engine in engines:
        kw = {} if engine is None else {"engine": engine}
        made = {}

        def run(k: int) -> None:
            made[k] = generate(fresh, ids, mask, pos, k, 1.0, tok.eos_token_id, tok.pad_token_id, gen, **kw)

        with compute.scope():
            one = median_time(lambda: run(1), load.repeats, device)
            full = median_time(lambda: run(load.new_tokens), load.repeats, device)
        n_new = made[load.new_tokens].response.shape[1]
        out[f"decode_ms_per_token_{engine or 'dynamic'}"] = 1e3 * (full - one) / max(n_new - 1, 1)
    out["decode_batch"] = float(len(ppo_prompts))
    del fresh
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


# ---- 3. the report ----

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def count(n: float) -> str:
    return f"{n / 1e6:.1f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def print_report(env: dict, checks: list[Check], figures: dict[str, dict[str, float]], load: Load) -> None:
    print(f"GPU check: {env['device_name']} ({env['device']}), torch {env['torch']}, transformers "
          f"{env['transformers']}, peft {env['peft']}, Python {env['python']}, {env['threads']} threads, {env['date']}")
    print(f"\n{'smoke check (bf16)':<18} {'result':<6} {'time':>6}  {'figure':<64} tolerance")
    for c in checks:
        print(f"{c.name:<18} {'PASS' if c.passed else 'FAIL':<6} {c.seconds:5.1f}s  {c.figure:<64} {c.tolerance}")
    for size, f in figures.items():
        print(f"\nthroughput, {size} ({count(f['params'])} parameters, {count(f['matmul_params'])} in matmuls), "
              "bf16 autocast")
        keys = sorted(k for k in f if k.startswith("decode_ms_per_token_"))
        rows = [
            ("bf16 matmul", f"{f['matmul_flops_per_s'] / 1e12:.3f} TFLOP/s", f"{load.matmul_n}^3, median of 10"),
            ("SFT", f"{f['sft_tokens_per_s']:,.0f} tokens/s", f"MFU {100 * f['sft_mfu']:.1f} %, "
             f"batch {load.sft_batch} x {load.sft_len}, {f['sft_step_s'] * 1e3:.0f} ms/step"),
            ("RM", f"{f['rm_tokens_per_s']:,.0f} tokens/s", f"MFU {100 * f['rm_mfu']:.1f} %, "
             f"{load.rm_prompts} prompts x K={load.rm_k} ({load.rm_prompt_len}+{load.rm_response_len} tokens), "
             f"{f['rm_step_s'] * 1e3:.0f} ms/step"),
            ("PPO", f"{f['ppo_samples_per_s']:,.1f} samples/s", f"{f['ppo_step_s']:.2f} s/step: batch "
             f"{load.ppo_batch}, {load.prompt_len}-token prompts, {load.new_tokens} new, {load.ppo_epochs} epochs, "
             f"minibatch {load.ppo_mini}"),
            *[(f"  {k}", f"{f[f'{k}_s'] * 1e3:,.1f} ms", "alone, one batch")
              for k in ("rollout", "score", "advantages", "ppo_update")],
            *[(f"decode ({k.removeprefix('decode_ms_per_token_')})", f"{f[k]:.2f} ms/token",
               f"generate, batch {int(f['decode_batch'])}") for k in keys],
        ]
        for name, value, note in rows:
            print(f"  {name:<22} {value:>24}  {note}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    ap.add_argument("--size", action="append", choices=sorted(SHAPES),
                    help="throughput model size (repeatable); default gpt2 and qwen2-0.5b on CUDA, tiny elsewhere")
    ap.add_argument("--skip-throughput", action="store_true", help="the smoke checks only")
    ap.add_argument("--only", default="", help="comma-separated: pretrain, sft, rm, ppo, ppo-ptx, ppo-lora, "
                    "lora-merge, ratio, rm-shared, throughput (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    names = ("pretrain", "sft", "rm", "ppo", "ppo-ptx", "ppo-lora", "lora-merge", "ratio", "rm-shared", "throughput")
    only = {s.strip() for s in args.only.split(",") if s.strip()} or set(names)
    if only - set(names):
        ap.error(f"--only: unknown {sorted(only - set(names))}; choose from {', '.join(names)}")
    wanted = only - ({"throughput"} if args.skip_throughput else set())

    t_start = time.perf_counter()
    smoke = Smoke(args.device)
    device = smoke.bf16.device
    import peft

    env = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
           "transformers": transformers.__version__, "peft": peft.__version__, "python": platform.python_version(),
           "threads": torch.get_num_threads(), "date": datetime.datetime.now().isoformat(timespec="seconds")}
    runs: dict[str, Callable[[], Check]] = {
        "pretrain": smoke.check_pretrain, "sft": smoke.check_sft, "rm": smoke.check_rm,
        "ppo": lambda: smoke.check_ppo("ppo"), "ppo-ptx": lambda: smoke.check_ppo("ppo-ptx", ptx_coef=1.0),
        "ppo-lora": lambda: smoke.check_ppo("ppo-lora",
                                            lora=LoRAConfig(r=8, alpha=16.0, target_modules=["all-linear"])),
        "lora-merge": smoke.check_lora_merge,
        "ratio": lambda: check_ratio("ratio", smoke.bf16, smoke.policy, smoke.tok,
                                     [p for p, _ in make_pairs(32, 11)], PPOConfig(max_new_tokens=16)),
        "rm-shared": lambda: check_shared("rm-shared", smoke.bf16,
                                          smoke.place(RewardModel.from_causal_lm(smoke.policy, seed=3)), smoke.tok,
                                          make_comparisons(8, 12), 48),
    }
    checks = []
    for name, run in runs.items():
        if name in wanted:
            t0 = time.perf_counter()
            checks.append(run())
            checks[-1].seconds = time.perf_counter() - t0
    smoke_s = time.perf_counter() - t_start

    figures: dict[str, dict[str, float]] = {}
    load = GPU_LOAD if device.type == "cuda" else CPU_LOAD
    if "throughput" in wanted:
        sizes = args.size or (["gpt2", "qwen2-0.5b"] if device.type == "cuda" else ["tiny"])
        for size in sizes:
            size_checks: list[Check] = []
            figures[size] = throughput(size, smoke.bf16, load, smoke.tok, size_checks)
            checks += [c for c in size_checks if c.name.split(" ")[0] in wanted]
    total_s = time.perf_counter() - t_start

    print_report(env, checks, figures, load)
    passed = all(c.passed for c in checks)
    print(f"\n{sum(c.passed for c in checks)}/{len(checks)} smoke checks passed; "
          f"smoke {smoke_s:.0f} s, total {total_s:.0f} s")
    print(json.dumps({
        "bench": "gpu", **env, "passed": passed, "smoke_s": smoke_s, "total_s": total_s,
        "smoke": {c.name: {"pass": c.passed, **c.values} for c in checks},
        "throughput": figures, "load": load.__dict__,
    }))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
