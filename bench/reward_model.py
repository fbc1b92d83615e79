"""Benchmark: K-way batched reward-model training vs the same data as C(K,2) separate pairs.

Paper section 3.5: putting all C(K,2) comparisons of a prompt in one batch element needs K
forward passes per prompt instead of 2·C(K,2) (9 vs 72 at K = 9). Both methods here start from
the SAME model, see the SAME comparisons and make the SAME number of optimizer updates per epoch:

  kway      one update = B prompts; their B·K responses in ONE forward pass; K-way ranking loss.
  pairwise  the epoch's pairs shuffled (as a chosen/rejected dataset would be) into as many
            updates; one update = B·C(K,2) pairs, a forward pass for the chosen and one for the
            rejected responses (2 passes a pair); loss −log σ(r_w − r_l) averaged over pairs.

Prints a table and, as the LAST line, one JSON object with the figures.
Data: synthetic, deterministic toy rankings (no files needed); model: a random causal LM of the
demo size (4 layers, 128 dims) unless told otherwise.

    .venv/bin/python bench/reward_model.py [--k 9 --prompts 32 --batch-prompts 4 --epochs 1]

``--vs-trl``: the project against TRL 1.16.0's RewardTrainer instead. The twin scripts in
``bench/peers/`` (``rm_trl.py`` in the peer's own environment, created in ``.peers/trl116`` when
missing: python3.11 venv, torch==2.13.0, then trl==1.16.0 datasets accelerate; ``rm_project.py``
in the project's) build the same tiny GPT-2 (4 layers, 256 dims), word-level tokenizer and random
ranked data (N prompts, K responses of W words) and time one epoch, the same number of updates
over the same pairs (TRL: C(K,2) chosen/rejected pairs per step; the project: one prompt with its
K responses). They run alternately, ``--repeats`` times each; the ratio is the median over the
back-to-back pairs of runs, of wall-clock epoch time (``ratio``) and of the process's CPU time
(``cpu_ratio``: with one thread, far less disturbed by other work on the machine).

    .venv/bin/python bench/reward_model.py --vs-trl [--prompts 32 --k 9 --words 24 --repeats 3 --threads 1]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEER_VENV = ROOT / ".peers" / "trl116"  # git-ignored

from instructgpt.data import collate_pairs  # noqa: E402
from instructgpt.models import ModelConfig, build_causal_lm  # noqa: E402
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.tokenizer import train_tokenizer  # noqa: E402
from instructgpt.train.reward import Comparison, evaluate_rm, kway_forward  # noqa: E402

WORDS = ["cat", "dog", "red", "blue", "sun", "tree", "fish", "bird", "milk", "rain", "hat", "boat"]


def toy_comparisons(n: int, k: int, seed: int) -> list[Comparison]:
    """'repeat the word w n times' with K responses; more wrong words rank lower."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        w, reps = rng.choice(WORDS), rng.randint(2, 6)
        good = [w] * reps
        responses = [" ".join(good)] + [
            " ".join(good + [rng.choice(WORDS) for _ in range(j + 1)]) for j in range(k - 1)
        ]
        order = list(range(k))
        rng.shuffle(order)
        shuffled = [responses[i] for i in order]
        ranking = sorted(range(k), key=lambda i: order[i])
        out.append(Comparison(f"repeat the word {w} {reps} times", shuffled, ranking))
    return out


def expand_pairs(comparisons: list[Comparison]) -> list[tuple[str, str, str]]:
    """(prompt, chosen, rejected) for every one of the C(K,2) pairs of every prompt."""
    pairs = []
    for c in comparisons:
        ranked = [c.responses[i] for i in c.ranking]
        pairs += [(c.prompt, ranked[i], ranked[j]) for i in range(len(ranked)) for j in range(i + 1, len(ranked))]
    return pairs


def pairwise_update(rm, tokenizer, batch, max_len, device):
    chosen = collate_pairs(tokenizer, [(p, c) for p, c, _ in batch], max_len)
    rejected = collate_pairs(tokenizer, [(p, r) for p, _, r in batch], max_len)
    r_w = rm(**{k: v.to(device) for k, v in chosen.model_inputs().items()})  # (P,) forward pass 1
    r_l = rm(**{k: v.to(device) for k, v in rejected.model_inputs().items()})  # (P,) forward pass 2
    return -F.logsigmoid(r_w - r_l).mean()


def run(method, rm, tokenizer, train, valid, args, device) -> dict[str, float]:
    opt = torch.optim.AdamW(rm.parameters(), lr=args.lr)
    g = torch.Generator().manual_seed(args.seed)
    updates = math.ceil(len(train) / args.batch_prompts)
    n_seq, losses, elapsed = 0, [], 0.0
    for _ in range(args.epochs):
        if method == "kway":
            order = torch.randperm(len(train), generator=g).tolist()
            batches = [[train[i] for i in order[u * args.batch_prompts:(u + 1) * args.batch_prompts]]
                       for u in range(updates)]
        else:
            pairs = expand_pairs(train)
            order = torch.randperm(len(pairs), generator=g).tolist()
            per = math.ceil(len(pairs) / updates)
            batches = [[pairs[i] for i in order[u * per:(u + 1) * per]] for u in range(updates)]
        rm.train()
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for batch in batches:
            if method == "kway":
                loss, _ = kway_forward(rm, tokenizer, batch, args.max_len)
                n_seq += sum(len(c.responses) for c in batch)
            else:
                loss = pairwise_update(rm, tokenizer, batch, args.max_len, device)
                n_seq += 2 * len(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed += time.perf_counter() - t0
    val = evaluate_rm(rm, tokenizer, valid, args.batch_prompts, args.max_len)
    return {
        "epoch_s": elapsed / args.epochs,
        "updates_per_epoch": updates,
        "sequences_per_epoch": n_seq / args.epochs,
        "sequences_per_s": n_seq / elapsed,
        "final_train_loss": sum(losses[-max(1, updates // 4):]) / max(1, updates // 4),
        "valid_accuracy": val["accuracy"],
        "valid_loss": val["loss"],
    }


def peer_python() -> Path:
    """The peer's interpreter; creates its environment (``PEER_VENV``) when missing."""
    py = PEER_VENV / "bin" / "python"
    if not py.exists():
        print(f"creating the peer environment {PEER_VENV} (torch 2.13.0, trl 1.16.0) ...", flush=True)
        subprocess.run(["python3.11", "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "torch==2.13.0"], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", "trl==1.16.0", "datasets", "accelerate"],
                       check=True)
    return py


def vs_trl(args: argparse.Namespace) -> None:
    """TRL's RewardTrainer and the project's RM on the same work, alternately; table + JSON."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    shape = [str(args.prompts), str(args.k), str(args.words)]
    twins = {"trl": [str(peer_python()), str(ROOT / "bench/peers/rm_trl.py")],
             "project": [sys.executable, str(ROOT / "bench/peers/rm_project.py")]}
    runs: dict[str, list[dict]] = {name: [] for name in twins}
    for _ in range(args.repeats or 3):
        for name, cmd in twins.items():
            out = subprocess.run(cmd + shape, env=env, cwd=ROOT, capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{name} twin failed:\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
    secs = {name: [r["epoch_s"] for r in rs] for name, rs in runs.items()}
    cpu = {name: [r["epoch_cpu_s"] for r in rs] for name, rs in runs.items()}
    ratios = [t / p for t, p in zip(secs["trl"], secs["project"])]  # back-to-back pairs
    cpu_ratios = [t / p for t, p in zip(cpu["trl"], cpu["project"])]
    pairs = runs["project"][0]["pairs"]
    threads = runs["project"][0]["torch_threads"]
    print(f"reward model vs TRL {runs['trl'][0]['trl']} RewardTrainer: {args.prompts} prompts, K={args.k} "
          f"({pairs} pairs), {args.words} words, threads={threads}, {len(ratios)} alternating run(s) each")
    print(f"{'twin':<10} {'epoch_s':>8} {'cpu_s':>8} {'pairs/s':>8}  epoch_s of each run")
    for name, s in secs.items():
        med = statistics.median(s)
        print(f"{name:<10} {med:>8.2f} {statistics.median(cpu[name]):>8.2f} {pairs / med:>8.1f}  {s}")
    ratio, cpu_ratio = statistics.median(ratios), statistics.median(cpu_ratios)
    print(f"project epoch {ratio:.2f}x faster than TRL's (median of the back-to-back ratios "
          f"{[round(r, 2) for r in ratios]}); in CPU time {cpu_ratio:.2f}x")
    print(json.dumps({
        "bench": "reward_model_vs_trl", "trl": runs["trl"][0]["trl"], "prompts": args.prompts, "k": args.k,
        "words": args.words, "pairs": pairs, "threads": threads,
        "trl_epoch_s": statistics.median(secs["trl"]), "project_epoch_s": statistics.median(secs["project"]),
        "ratio": ratio, "cpu_ratio": cpu_ratio, "ratios": ratios, "cpu_ratios": cpu_ratios,
        "trl_epoch_s_all": secs["trl"], "project_epoch_s_all": secs["project"],
        "trl_cpu_s_all": cpu["trl"], "project_cpu_s_all": cpu["project"],
    }))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vs-trl", action="store_true", help="against TRL's RewardTrainer (bench/peers/)")
    ap.add_argument("--words", type=int, default=24, help="--vs-trl: words per response (prompts: half)")
    ap.add_argument("--k", type=int, default=9)
    ap.add_argument("--prompts", type=int, default=32, help="training prompts (each with K responses)")
    ap.add_argument("--valid-prompts", type=int, default=16)
    ap.add_argument("--batch-prompts", type=int, default=4, help="prompts per K-way update")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--arch", default="gpt2")
    ap.add_argument("--n-layer", type=int, default=4)
    ap.add_argument("--n-embd", type=int, default=128)
    ap.add_argument("--n-head", type=int, default=4)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=0,
                    help="runs per method; epoch_s is the median (default 1; --vs-trl: 3)")
    args = ap.parse_args()
    if args.vs_trl:
        return vs_trl(args)
    args.repeats = args.repeats or 1
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    train = toy_comparisons(args.prompts, args.k, args.seed)
    valid = toy_comparisons(args.valid_prompts, args.k, args.seed + 1)
    texts = [f"{c.prompt}\n{r}" for c in train for r in c.responses]
    tokenizer = train_tokenizer(texts, vocab_size=512)
    lm = build_causal_lm(ModelConfig(arch=args.arch, n_layer=args.n_layer, n_embd=args.n_embd,
                                     n_head=args.n_head, n_positions=max(64, args.max_len)), tokenizer, args.seed)
    base = RewardModel.from_causal_lm(lm, seed=args.seed).to(device)
    # warm up kernels/allocator once so neither method pays first-call costs
    warm = copy.deepcopy(base)
    kway_forward(warm, tokenizer, train[: args.batch_prompts], args.max_len)[0].backward()
    del warm

    runs: dict[str, list[dict[str, float]]] = {"kway": [], "pairwise": []}
    for _ in range(args.repeats):  # alternate so that machine load drifts hit both methods alike
        for method in runs:
            torch.manual_seed(args.seed)
            runs[method].append(run(method, copy.deepcopy(base), tokenizer, train, valid, args, device))
    results = {}
    for method, rs in runs.items():
        times = sorted(r["epoch_s"] for r in rs)
        med = times[len(times) // 2]
        results[method] = dict(rs[0], epoch_s=med, sequences_per_s=rs[0]["sequences_per_epoch"] / med,
                               epoch_s_all=[round(t, 4) for t in times])

    n_pairs = math.comb(args.k, 2)
    speedup = results["pairwise"]["epoch_s"] / results["kway"]["epoch_s"]
    print(f"reward model, K={args.k} (C(K,2)={n_pairs} pairs/prompt), {args.prompts} prompts, "
          f"{args.batch_prompts} prompts/update, {args.arch} {args.n_layer}x{args.n_embd}, device={device}, "
          f"threads={torch.get_num_threads()}, median of {args.repeats} run(s)")
    print(f"{'method':<10} {'epoch_s':>9} {'updates':>8} {'seqs/epoch':>11} {'seqs/s':>9} "
          f"{'train_loss':>11} {'valid_acc':>10} {'valid_loss':>11}")
    for method, r in results.items():
        print(f"{method:<10} {r['epoch_s']:>9.2f} {r['updates_per_epoch']:>8d} {r['sequences_per_epoch']:>11.0f} "
              f"{r['sequences_per_s']:>9.1f} {r['final_train_loss']:>11.4f} {r['valid_accuracy']:>10.3f} "
              f"{r['valid_loss']:>11.4f}")
    print(f"K-way is {speedup:.2f}x faster per epoch; sequences per prompt {args.k} vs {2 * n_pairs} "
          f"({2 * n_pairs / args.k:.1f}x fewer; K-way also runs each prompt once for its K responses)")
    print(json.dumps({
        "bench": "reward_model", "k": args.k, "pairs_per_prompt": n_pairs, "prompts": args.prompts,
        "batch_prompts": args.batch_prompts, "epochs": args.epochs, "repeats": args.repeats,
        "arch": args.arch, "n_layer": args.n_layer,
        "n_embd": args.n_embd, "device": str(device), "threads": torch.get_num_threads(),
        "torch": torch.__version__, "machine": platform.machine(),
        "kway": results["kway"], "pairwise": results["pairwise"],
        "speedup_epoch_time": speedup, "forward_ratio_ideal": 2 * n_pairs / args.k,
    }))


if __name__ == "__main__":
    main()
