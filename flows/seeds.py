"""`make seeds`: the demo's headline figures across three training seeds.

Runs the pipeline for the demo profile (seed 0, here) and for profiles ``seed1`` and ``seed2``
(``profiles/seed<N>.yaml``: the same data and pretrained base, every later stage on seed N), each
in its own workspace, then reads each workspace's metrics and prints one table: a row per figure,
a column per seed, mean ± sd (sample standard deviation). The table is also written to
``outputs/seeds/seeds.md`` and ``outputs/seeds/seeds.json``.

    python -m flows.seeds                   # run what is stale, then the table
    python -m flows.seeds --no-run          # the table from the workspaces' last runs only
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.repro import flatten
from flows.profiles import DEMO

PROFILES = (DEMO, "seed1", "seed2")

# (figure, stage whose metrics.json holds it, key or function of the flattened metrics, kind):
# kind pct is shown x100, num as it is. In evaluate's metrics "ppo" is PPO-ptx, "ppo_noptx" PPO.
Getter = str | Callable[[dict[str, Any]], float]


def _regression(model: str) -> Callable[[dict[str, Any]], float]:
    return lambda m: m[f"{model}/corpus_loss"] - m["base/corpus_loss"]


FIGURES: list[tuple[str, str, Getter, str]] = [
    ("SFT vs base", "evaluate", "win_rate/sft_vs_base", "pct"),
    ("PPO-ptx vs SFT", "evaluate", "win_rate/ppo_vs_sft", "pct"),
    ("PPO-ptx vs SFT, 95 % low end", "evaluate", "win_rate/ppo_vs_sft_low", "pct"),
    ("PPO-ptx vs few-shot base", "evaluate", "win_rate/ppo_vs_base_fewshot", "pct"),
    ("PPO-ptx vs base", "evaluate", "win_rate/ppo_vs_base", "pct"),
    ("PPO vs PPO-ptx", "evaluate", "win_rate/ppo_noptx_vs_ppo", "pct"),
    ("SFT best-of-N (by the RM) vs SFT", "evaluate", "win_rate/sft_best_of_n_vs_sft", "pct"),
    ("PPO-ptx vs SFT best-of-N", "evaluate", "win_rate/ppo_vs_sft_best_of_n", "pct"),
    ("gold helpful, SFT", "evaluate", "sft/helpful", "num"),
    ("gold helpful, PPO-ptx", "evaluate", "ppo/helpful", "num"),
    ("hallucination, SFT", "evaluate", "sft/hallucination_rate", "pct"),
    ("hallucination, PPO-ptx", "evaluate", "ppo/hallucination_rate", "pct"),
    ("well-formed, SFT", "evaluate", "sft/well_formed_rate", "pct"),
    ("well-formed, PPO-ptx", "evaluate", "ppo/well_formed_rate", "pct"),
    ("gold utility, SFT", "evaluate", "sft/gold_utility", "num"),
    ("gold utility, PPO-ptx", "evaluate", "ppo/gold_utility", "num"),
    ("gold utility, PPO", "evaluate", "ppo_noptx/gold_utility", "num"),
    ("gold utility, SFT best-of-N", "evaluate", "sft_best_of_n/gold_utility", "num"),
    ("labelers' agreement (collected pairs)", "label", "agreement/overall", "pct"),
    ("RM valid accuracy", "rm", "valid/accuracy", "pct"),
    ("RM ceiling (labelers' agreement)", "rm", "valid/agreement_ceiling", "pct"),
    ("RM ceiling (noise-free utility)", "rm", "valid/noise_free_ceiling", "pct"),
    ("RM orders demonstration over SFT (test)", "evaluate", "rm/demonstration_over_sft", "pct"),
    ("corpus-loss regression from base, PPO-ptx", "evaluate", _regression("ppo"), "num"),
    ("corpus-loss regression from base, PPO", "evaluate", _regression("ppo_noptx"), "num"),
    ("NLP-task accuracy, base", "evaluate", "base/nlp_task_accuracy", "pct"),
    ("NLP-task accuracy, PPO-ptx", "evaluate", "ppo/nlp_task_accuracy", "pct"),
    ("NLP-task accuracy, PPO", "evaluate", "ppo_noptx/nlp_task_accuracy", "pct"),
    ("PPO-ptx KL from SFT (nats)", "evaluate", "ppo/kl_from_sft", "num"),
]


def read_figures(workspace: Path) -> dict[str, float]:
    """The figures above from one workspace's outputs (absent ones left out)."""
    out: dict[str, float] = {}
    cache: dict[str, dict[str, Any]] = {}
    for name, stage, key, _ in FIGURES:
        if stage not in cache:
            path = workspace / "outputs" / stage / "metrics.json"
            cache[stage] = flatten(json.loads(path.read_text())) if path.exists() else {}
        try:
            value = key(cache[stage]) if callable(key) else cache[stage].get(key)
        except KeyError:
            value = None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def _fmt(value: float | None, kind: str) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.1f}" if kind == "pct" else f"{value:.3f}"


def summarise(per_seed: dict[str, dict[str, float]]) -> tuple[str, list[dict[str, Any]]]:
    """A markdown table (figure, each seed, mean ± sd) and its rows as records."""
    seeds = list(per_seed)
    head = "| figure | " + " | ".join(seeds) + " | mean ± sd |\n|---|" + "---|" * (len(seeds) + 1) + "\n"
    lines, records = [], []
    for name, _, _, kind in FIGURES:
        values = [per_seed[s].get(name) for s in seeds]
        present = [v for v in values if v is not None]
        mean = statistics.fmean(present) if present else None
        sd = statistics.stdev(present) if len(present) > 1 else None
        spread = f"{_fmt(mean, kind)} ± {_fmt(sd, kind)}" if sd is not None else _fmt(mean, kind)
        lines.append(f"| {name}{' (%)' if kind == 'pct' else ''} | "
                     + " | ".join(_fmt(v, kind) for v in values) + f" | {spread} |")
        records.append({"figure": name, "kind": kind, "per_seed": dict(zip(seeds, values)), "mean": mean, "sd": sd})
    return head + "\n".join(lines) + "\n", records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="only read the workspaces' last results")
    parser.add_argument("--profiles", nargs="*", default=list(PROFILES), help=f"default: {' '.join(PROFILES)}")
    args = parser.parse_args(argv)
    repo = Path.cwd()
    per_seed: dict[str, dict[str, float]] = {}
    for name in args.profiles:
        if not args.no_run:
            code = subprocess.run([sys.executable, "-m", "flows.pipeline", "--profile", name]).returncode
            if code != 0:
                print(f"seeds: profile {name} stopped with exit code {code}", file=sys.stderr)
                return code
        workspace = repo if name == DEMO else repo / "profiles" / name  # made by flows.pipeline --profile
        if not (workspace / "outputs" / "evaluate" / "metrics.json").exists():
            print(f"seeds: {workspace} has no evaluation yet (run without --no-run)", file=sys.stderr)
            return 2
        per_seed[name] = read_figures(workspace)
    table, records = summarise(per_seed)
    out = repo / "outputs" / "seeds"
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.md").write_text(table)
    (out / "seeds.json").write_text(json.dumps(records, indent=2))
    print(table)
    print(f"written to {out / 'seeds.md'} and {out / 'seeds.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
