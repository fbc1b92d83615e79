"""Benchmark: PPO samples/s on 1 and 2 CPU processes (data parallel, sharded rollouts).

The demo-size model of bench/ppo.py (random-init GPT-2 4×128, BPE trained on
``data/corpus.jsonl``; prompts from ``data/prompts.jsonl``) and its PPO config (batch 32,
minibatch 16, 2 PPO epochs, 32 new tokens, ptx_coef 0.1), run as full ``train_ppo`` steps:

  1 proc × T threads   the default single-process path (torch.multinomial sampling)
  N procs × 1 thread   ``torch.distributed`` gloo processes (as torchrun starts them): each
                       samples and scores its 32/N prompts, the rollout is gathered, each
                       takes its rows of every minibatch, DDP sums the gradients

samples/s = batch size / median step time (the first step is a warm-up and is dropped); rank 0
times the steps. "CPU s/step/proc" is rank 0's CPU time per step (``time.process_time``): the
work one process does; on a machine whose cores are busy with other jobs the processes share
what is left, and the wall time shows that rather than the split of the work. "tokens/proc" counts the tokens each process sampled in the timed run (a
forward hook on the policy's KV-cached calls): with 2 processes, half of one's. Prints a table
and, as the LAST line, one JSON object. Not part of the test suite; the machine's other load
is printed with it (a shared machine slows every row).

    .venv/bin/python bench/ppo_ddp.py [--steps 3 --procs 1,2]     (~2 min on 2 idle cores)
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ppo import DEMO_MODEL, read_texts  # noqa: E402
from instructgpt.models import build_causal_lm, load_causal_lm, save_model  # noqa: E402
from instructgpt.reward_model import RewardModel  # noqa: E402
from instructgpt.tokenizer import train_tokenizer  # noqa: E402
from instructgpt.train.ppo import PPOConfig, train_ppo  # noqa: E402


def ppo_cfg(steps: int) -> PPOConfig:
    return PPOConfig(steps=steps + 1, batch_size=32, mini_batch_size=16, ppo_epochs=2, max_new_tokens=32,
                     ptx_coef=0.1, lr=2e-5, show_progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, threads: int, port: int, model_dir: str, steps: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(threads)
    try:
        policy, tokenizer = load_causal_lm(model_dir)
        rm = RewardModel.from_causal_lm(policy, seed=1)
        corpus = read_texts(ROOT / "data/corpus.jsonl", 3000)
        prompts = read_texts(ROOT / "data/prompts.jsonl", 512)
        tokens = [0]

        def count(module, args, kwargs, output):
            if kwargs.get("use_cache"):
                tokens[0] += kwargs["input_ids"].shape[0]

        policy.register_forward_hook(count, with_kwargs=True)
        stamps: list[tuple[float, float]] = []
        t0 = (time.perf_counter(), time.process_time())
        train_ppo(policy, None, None, rm, tokenizer, prompts, corpus, ppo_cfg(steps),
                  log=lambda m, s: stamps.append((time.perf_counter(), time.process_time())))
        pairs = list(zip([t0] + stamps[:-1], stamps))[1:]  # first step = warm-up
        step_times = [b[0] - a[0] for a, b in pairs]
        cpu_times = [b[1] - a[1] for a, b in pairs]
        per_step_tokens = tokens[0] / (steps + 1)
        result = {"step_s": statistics.median(step_times) if step_times else None, "tokens": per_step_tokens,
                  "cpu_s": statistics.median(cpu_times) if cpu_times else None}
        Path(f"{out}.{rank}").write_text(json.dumps(result))
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def run(world: int, threads: int, model_dir: str, steps: int, tmp: str) -> dict:
    """Median step time (rank 0) and the tokens each process sampled per step."""
    out = f"{tmp}/res-{world}x{threads}"
    if world == 1:
        torch.set_num_threads(threads)
        _worker(0, 1, threads, 0, model_dir, steps, out)
        os.environ.pop("RANK", None)
        os.environ["WORLD_SIZE"] = "1"
    else:
        mp.spawn(_worker, args=(world, threads, _free_port(), model_dir, steps, out), nprocs=world, join=True)
    res = [json.loads(Path(f"{out}.{r}").read_text()) for r in range(world)]
    step_s = res[0]["step_s"]
    return {"procs": world, "threads": threads, "step_s": step_s, "samples_per_s": 32 / step_s,
            "cpu_s_rank0": res[0]["cpu_s"], "tokens_per_proc_step": [r["tokens"] for r in res]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3, help="timed train_ppo steps per run (plus one warm-up)")
    ap.add_argument("--procs", default="1,2", help="process counts to run with 1 thread each")
    args = ap.parse_args()
    load = os.getloadavg()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        corpus = read_texts(ROOT / "data/corpus.jsonl", 3000)
        tokenizer = train_tokenizer(corpus, vocab_size=2048)
        save_model(build_causal_lm(DEMO_MODEL, tokenizer, seed=0), tokenizer, f"{tmp}/model")
        runs = []
        if cores > 1:  # one process may use every core with threads: the fair single-process figure
            runs.append(run(1, cores, f"{tmp}/model", args.steps, tmp))
        for n in (int(x) for x in args.procs.split(",")):
            runs.append(run(n, 1, f"{tmp}/model", args.steps, tmp))
    print(f"PPO on the demo-size model (batch 32, 32 new tokens), {cores} cores, load average before "
          f"{load[0]:.2f} / after {os.getloadavg()[0]:.2f}")
    print(f"{'procs × threads':>16} {'step s':>8} {'samples/s':>10} {'CPU s/step/proc':>16} {'tokens/proc/step':>18}")
    for r in runs:
        print(f"{r['procs']:>10} × {r['threads']:<3} {r['step_s']:>8.2f} {r['samples_per_s']:>10.1f} "
              f"{r['cpu_s_rank0']:>16.2f} "
              f"{'/'.join(f'{t:.0f}' for t in r['tokens_per_proc_step']):>18}")
    print(json.dumps({"bench": "ppo_ddp", "cores": cores, "load_before": load[0], "torch": torch.__version__,
                      "runs": runs}))


if __name__ == "__main__":
    main()
