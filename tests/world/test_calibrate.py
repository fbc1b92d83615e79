"""Re-calibrating the labelers' noise on a label stage's samples (instructgpt.world.calibrate)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from instructgpt.world import load_world
from instructgpt.world.calibrate import recalibrate
from instructgpt.world.labelers_sim import expected_agreement, pair_diffs


def _samples(world, path: Path, n: int = 60) -> list[list]:
    """comparisons.jsonl-like rows: near-miss samples only (wrong or truncated answers, no
    garbage), so their utilities are closer than the generator's calibration mix."""
    rows, groups = [], []
    for pid in world.prompt_ids()[:n]:
        gold = world.gold(pid)
        responses = [gold, " ".join(gold.split(" ")[:-2]), gold + " " + gold]
        rows.append({"prompt_id": pid, "responses": responses, "ranking": [0, 1, 2], "labeler_id": "t00"})
        groups.append([(world.judge(pid, r), r) for r in responses])
    rows.append(dict(rows[0]))  # an overlap ranking of the same set: counted once
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return groups


def _train_agreement(world, groups) -> float:
    specs = world._training
    d = pair_diffs(groups, specs) / np.array([s.tau for s in specs])[:, None]
    return float(np.mean([expected_agreement(d[i], d[j]) for i in range(len(specs)) for j in range(i + 1, len(specs))]))


def test_recalibration_reaches_the_target_on_the_samples_and_changes_only_tau(tiny_dir: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(tiny_dir, data)
    before = load_world(data)
    groups = _samples(before, tmp_path / "comparisons.jsonl")
    assert abs(_train_agreement(before, groups) - 0.73) > 0.01  # the generator's taus miss on these samples

    report = recalibrate(data, tmp_path / "comparisons.jsonl", target=0.73)
    after = load_world(data)
    assert report["n_groups"] == 60 and abs(report["train_train"] - 0.73) < 1e-3
    assert abs(_train_agreement(after, groups) - 0.73) < 1e-3
    for old, new in zip(before._training + before._heldout, after._training + after._heldout):
        assert (old.labeler_id, old.w_helpful, old.w_length, old.variant) == (new.labeler_id, new.w_helpful,
                                                                                new.w_length, new.variant)
        assert old.tau != new.tau
    assert json.loads((data / "world" / "world.json").read_text())["agreement"]["n_groups"] == 60
    for name in ("specs.jsonl", "facts.json", "vocabulary.json"):
        assert (data / "world" / name).read_bytes() == (tiny_dir / "world" / name).read_bytes()
