"""Benchmark: the project's PPO against TRL 0.29.1's PPOTrainer (the last TRL release with PPO) on
the same work.

The twins in ``bench/peers/`` build the same tiny GPT-2 (policy, reference, value model and reward
model), word-level tokenizer and random prompts, and run the same episodes, batch, response length,
PPO epochs (4, one optimizer step per epoch) and KL coefficient: ``ppo_trl029.py`` in the peer's
own virtual environment, ``ppo_project_same.py`` with the project's ``train_ppo``. This script

  1. creates the peer's venv if missing: ``.peers/trl029`` (git-ignored, apart from the
     project's pins): ``python3.11 -m venv``, ``pip install torch==2.13.0`` (with
     ``$TORCH_PIP_ARGS``, e.g. PyTorch's CPU wheel index, as the Makefile), then
     ``trl==0.29.1 datasets accelerate``;
  2. runs the two twins back to back ``--repeats`` times, alternating which goes first, so that a
     change in the machine's load hits both alike;
  3. prints a table and, as its LAST line, one JSON object: samples/s of each (medians), the
     ratio project/peer (median of the back-to-back pairs' ratios) and the CPU-time ratio.

Compare ratios from one invocation on one machine, never absolute times across runs. On a busy
machine ``--threads 1`` is steadier (no thread waits for a descheduled sibling).

    .venv/bin/python bench/ppo_vs_trl.py [--repeats 3 --threads 0] [PROMPTS BATCH RESPONSE_LEN N_LAYER N_EMBD]
    (defaults 256 64 32 4 256; ~1 min per pair on 2 idle cores; make bench-peers)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
TRL_VERSION = "0.29.1"
TORCH_VERSION = "2.13.0"


def ensure_peer_venv(venv: Path, python: str) -> Path:
    """The peer venv's python, installing torch and TRL there first when missing."""
    marker = venv / f".installed-trl-{TRL_VERSION}"
    exe = venv / "bin" / "python"
    if marker.exists() and exe.exists():
        return exe
    pip = [str(exe), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    steps = [[python, "-m", "venv", "--clear", str(venv)],
             pip + [f"torch=={TORCH_VERSION}", *shlex.split(os.environ.get("TORCH_PIP_ARGS", ""))],
             pip + [f"trl=={TRL_VERSION}", "datasets", "accelerate"]]
    for cmd in steps:
        print("+", " ".join(cmd), file=sys.stderr, flush=True)
        subprocess.run(cmd, check=True)
    marker.touch()
    return exe


def run_twin(python: Path, script: str, shape: list[str], threads: int, project: bool) -> dict:
    """One twin's JSON line (its last line of output)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", DO_NOT_TRACK="true")
    if project:
        env["PYTHONPATH"] = str(ROOT)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    out = subprocess.run([str(python), str(PEERS / script), *shape], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("shape", nargs="*", default=["256", "64", "32", "4", "256"],
                    help="PROMPTS BATCH RESPONSE_LEN N_LAYER N_EMBD (the twins' arguments)")
    ap.add_argument("--repeats", type=int, default=3, help="back-to-back pairs")
    ap.add_argument("--threads", type=int, default=0, help="OMP_NUM_THREADS of both twins (0 = torch's default)")
    ap.add_argument("--venv", default=str(ROOT / ".peers" / "trl029"), help="the peer's virtual environment")
    ap.add_argument("--python", default=os.environ.get("PEER_PYTHON", "python3.11"), help="creates the peer venv")
    args = ap.parse_args()
    peer_python = ensure_peer_venv(Path(args.venv), args.python)
    load = os.getloadavg()

    pairs = []
    for i in range(args.repeats):
        order = ["peer", "project"] if i % 2 == 0 else ["project", "peer"]
        got = {}
        for who in order:
            if who == "peer":
                got[who] = run_twin(peer_python, "ppo_trl029.py", args.shape, args.threads, project=False)
            else:
                got[who] = run_twin(Path(sys.executable), "ppo_project_same.py", args.shape, args.threads,
                                    project=True)
        pairs.append({**got, "first": order[0], "ratio": got["project"]["samples_per_s"] / got["peer"]["samples_per_s"],
                      "cpu_ratio": got["peer"]["cpu_seconds"] / got["project"]["cpu_seconds"]})
        print(f"pair {i + 1}/{args.repeats} ({order[0]} first): TRL {got['peer']['samples_per_s']:.2f}, "
              f"project {got['project']['samples_per_s']:.2f} samples/s -> {pairs[-1]['ratio']:.2f}x",
              file=sys.stderr, flush=True)
    load_after = os.getloadavg()

    def med(who: str, key: str) -> float:
        return statistics.median(p[who][key] for p in pairs)

    ratio = statistics.median(p["ratio"] for p in pairs)
    cpu_ratio = statistics.median(p["cpu_ratio"] for p in pairs)
    first = pairs[0]["project"]
    print(f"PPO vs TRL {TRL_VERSION}: {first['episodes']} episodes, batch {first['batch']}, response "
          f"{first['response_len']} tokens, GPT-2 {first['n_layer']}x{first['n_embd']}, {first['ppo_epochs']} PPO "
          f"epochs; {first['threads']} torch threads, {os.cpu_count()} CPUs, load avg {load[0]:.2f} -> "
          f"{load_after[0]:.2f}")
    print(f"{'pair':<6} {'first':<8} {'TRL samples/s':>14} {'project samples/s':>18} {'ratio':>7} {'CPU-time ratio':>15}")
    for i, p in enumerate(pairs, 1):
        print(f"{i:<6} {p['first']:<8} {p['peer']['samples_per_s']:>14.2f} {p['project']['samples_per_s']:>18.2f} "
              f"{p['ratio']:>6.2f}x {p['cpu_ratio']:>14.2f}x")
    print(f"{'median':<15} {med('peer', 'samples_per_s'):>14.2f} {med('project', 'samples_per_s'):>18.2f} "
          f"{ratio:>6.2f}x {cpu_ratio:>14.2f}x")
    print(json.dumps({
        "bench": "ppo_vs_trl", "peer": f"trl-{TRL_VERSION}", "shape": dict(zip(
            ["prompts", "batch", "response_len", "n_layer", "n_embd"], map(int, args.shape))),
        "trl_samples_per_s": med("peer", "samples_per_s"), "project_samples_per_s": med("project", "samples_per_s"),
        "ratio": ratio, "cpu_time_ratio": cpu_ratio, "pairs": pairs, "threads": first["threads"],
        "cpus": os.cpu_count(), "load_avg_before": load[0], "load_avg_after": load_after[0],
    }))


if __name__ == "__main__":
    main()
