"""`make seeds`: the seed profiles change only the seeds after ingest and base, and the table reads
each workspace's metrics into per-seed columns with mean ± sd."""

import json
import statistics
from pathlib import Path

import yaml

from flows.profiles import apply_profile
from flows.seeds import FIGURES, main, read_figures, summarise

REPO = Path(__file__).resolve().parents[2]


def _leaves(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_seed_profiles_change_only_the_seeds_after_base(tmp_path):
    shipped = _leaves(yaml.safe_load((REPO / "params.yaml").read_text()))
    for n in (1, 2):
        params = tmp_path / f"params{n}.yaml"
        params.write_text((REPO / "params.yaml").read_text())
        apply_profile(f"seed{n}", params, REPO / "profiles")
        merged = _leaves(yaml.safe_load(params.read_text()))
        changed = {k for k in shipped if merged[k] != shipped[k]}
        # ingest and base keep seed 0: DVC restores them from the run cache, the same data and base
        assert changed == {"sft.seed", "label.seed", "rm.seed", "ppo.seed", "evaluate.seed"}
        assert all(merged[k] == n for k in changed)


def _workspace(root: Path, name: str, evaluate: dict, rm: dict, label: dict) -> Path:
    ws = root / name
    for stage, metrics in (("evaluate", evaluate), ("rm", rm), ("label", label)):
        (ws / "outputs" / stage).mkdir(parents=True)
        (ws / "outputs" / stage / "metrics.json").write_text(json.dumps(metrics))
    return ws


def test_table_has_a_column_per_seed_and_mean_and_sd(tmp_path):
    spaces = []
    for i, (win, ppo_loss) in enumerate([(0.70, 1.0), (0.80, 1.2), (0.75, 1.4)]):
        spaces.append(_workspace(
            tmp_path, f"s{i}",
            {"win_rate": {"sft_vs_base": win, "ppo_vs_sft": 0.6}, "base": {"corpus_loss": 0.5},
             "ppo": {"corpus_loss": ppo_loss, "well_formed_rate": 0.9}},
            {"valid": {"accuracy": 0.68, "agreement_ceiling": 0.73}},
            {"agreement": {"overall": 0.74}}))
    per_seed = {ws.name: read_figures(ws) for ws in spaces}
    assert per_seed["s1"]["SFT vs base"] == 0.80
    assert per_seed["s2"]["corpus-loss regression from base, PPO-ptx"] == 1.4 - 0.5  # derived from two keys
    assert "PPO vs PPO-ptx" not in per_seed["s0"]  # absent in the metrics: left out, not 0
    table, records = summarise(per_seed)
    row = next(r for r in records if r["figure"] == "SFT vs base")
    assert row["mean"] == statistics.fmean([0.70, 0.80, 0.75])
    assert row["sd"] == statistics.stdev([0.70, 0.80, 0.75])
    assert "| SFT vs base (%) | 70.0 | 80.0 | 75.0 | 75.0 ± 5.0 |" in table
    assert "| PPO vs PPO-ptx (%) | – | – | – | – |" in table
    assert len(table.strip().splitlines()) == 2 + len(FIGURES)


def test_no_run_reads_existing_workspaces_and_says_when_one_is_missing(tmp_path, monkeypatch, capsys):
    metrics = ({"win_rate": {"sft_vs_base": 0.7}}, {"valid": {"accuracy": 0.6}}, {"agreement": {"overall": 0.7}})
    _workspace(tmp_path, ".", *metrics)
    (tmp_path / "profiles").mkdir(exist_ok=True)
    _workspace(tmp_path / "profiles", "seed1", *metrics)
    monkeypatch.chdir(tmp_path)
    assert main(["--no-run", "--profiles", "demo", "seed1"]) == 0
    assert "| SFT vs base (%) | 70.0 | 70.0 | 70.0 ± 0.0 |" in (tmp_path / "outputs/seeds/seeds.md").read_text()
    assert main(["--no-run", "--profiles", "demo", "seed2"]) == 2
    assert "has no evaluation yet" in capsys.readouterr().err
