"""Re-calibrate the simulated labelers' noise on the outputs the pipeline really produces.

`generate` calibrates tau on `World.candidates`, a fixed mix of gold, wrong, truncated, toxic and
empty answers. The label stage, though, asks labelers to rank K samples of the SFT policy, whose
quality spread is whatever that policy makes of the prompts: two labelers agree more often on a
gold answer against garbage than on two near-misses. The paper's 72.6 % is agreement on the
comparisons labelers actually made, so this command scales both pools' tau (multiplicatively,
wording habits and weights untouched) until training labelers agree with each other, and held-out
labelers with training labelers, on `target` of the pairs of a label stage's samples:

    python -m instructgpt.world.calibrate --data data --samples outputs/label/comparisons.jsonl
    dvc add data && dvc push      # a new version of the demo world

It rewrites `world/labelers.json` and the `agreement` of `world/world.json` (with what it was
calibrated on); nothing else of the world changes. Only the samples' texts are read (not their
rankings), each distinct (prompt, K responses) set once.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from instructgpt.world.labelers_sim import TARGET_AGREEMENT, calibrate
from instructgpt.world.world import load_world


def sample_groups(samples: Path) -> list[tuple[str, list[str]]]:
    """Distinct (prompt_id, responses) sets of a comparisons.jsonl, in file order."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    groups = []
    with samples.open(encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            key = (str(rec["prompt_id"]), tuple(rec["responses"]))
            if key not in seen and len(key[1]) > 1:
                seen.add(key)
                groups.append((key[0], list(key[1])))
    return groups


def recalibrate(data: Path, samples: Path, target: float = TARGET_AGREEMENT) -> dict[str, float]:
    """Rewrite ``data/world/labelers.json`` with taus calibrated on ``samples``; returns the
    agreement report (train_train, train_heldout, n_pairs, n_groups)."""
    world = load_world(data)
    groups = sample_groups(samples)
    if not groups:
        raise SystemExit(f"{samples}: no prompt with two or more responses to calibrate on")
    judged = [[(world.judge(pid, r), r) for r in responses] for pid, responses in groups]
    pools = json.loads((data / "world" / "labelers.json").read_text(encoding="utf-8"))
    from instructgpt.world.labelers_sim import LabelerSpec

    train = [LabelerSpec(**s) for s in pools["training"]]
    heldout = [LabelerSpec(**s) for s in pools["heldout"]]
    train, heldout, agreement = calibrate(judged, train, heldout, target)
    agreement = {**agreement, "n_groups": len(groups), "calibrated_on": str(samples)}
    (data / "world" / "labelers.json").write_text(json.dumps(
        {"training": [asdict(s) for s in train], "heldout": [asdict(s) for s in heldout],
         "agreement": agreement}, indent=1) + "\n", encoding="utf-8")
    meta_path = data / "world" / "world.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["agreement"] = agreement
    meta_path.write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return agreement


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("data"), help="the world's data directory (holds world/)")
    p.add_argument("--samples", type=Path, required=True, help="a label stage's comparisons.jsonl")
    p.add_argument("--target", type=float, default=TARGET_AGREEMENT, help="pairwise agreement to reach")
    args = p.parse_args(argv)
    report = recalibrate(args.data, args.samples, args.target)
    print(json.dumps(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
