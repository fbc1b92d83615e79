"""Raw inputs come from params.yaml: a Parquet prompt log works at stage level, and DVC tracks
whatever path `inputs.prompts` names (a team's own logs: `make test-acceptance`)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from ruamel.yaml import YAML

from tests.workspace import make_workspace, run

pytestmark = [pytest.mark.e2e, pytest.mark.acceptance]


def _set_prompts(ws, path: str) -> None:
    y = YAML()
    doc = y.load((ws / "params.yaml").read_text())
    doc["inputs"]["prompts"] = path
    with open(ws / "params.yaml", "w") as f:
        y.dump(doc, f)


def test_parquet_log_through_dvc_repro(tmp_path):
    ws = make_workspace(tmp_path / "ws")
    rows = []
    with open(ws / "data/prompts.jsonl", encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if isinstance(row, dict) and all(isinstance(row.get(k), str) for k in ("prompt_id", "user_id", "text")):
                rows.append({k: row.get(k) for k in ("prompt_id", "user_id", "text", "timestamp", "source", "style")})
            if len(rows) == 600:
                break
    frame = pd.DataFrame(rows)
    (ws / "logs").mkdir()
    frame.to_json(ws / "logs/prompts.jsonl", orient="records", lines=True, force_ascii=False)
    frame.to_parquet(ws / "logs/prompts.parquet", index=False)

    kept = {}
    for name in ("prompts.jsonl", "prompts.parquet"):
        _set_prompts(ws, f"logs/{name}")
        proc = run(ws, "dvc", "repro", "ingest")
        assert "Running stage 'ingest'" in proc.stdout
        lock = yaml.safe_load((ws / "dvc.lock").read_text())
        data_deps = [d["path"] for d in lock["stages"]["ingest"]["deps"] if not d["path"].endswith(".py")]
        assert f"logs/{name}" in data_deps and "data/prompts.jsonl" not in data_deps
        kept[name] = pd.read_json(ws / "outputs/ingest/prompts.jsonl", lines=True, dtype=False)
        report = json.loads((ws / "outputs/ingest/report.json").read_text())
        assert report["rows_in"] == len(frame)
    assert kept["prompts.jsonl"].equals(kept["prompts.parquet"])
    assert len(kept["prompts.parquet"]) > 300


def test_partition_directory_with_own_column_names_through_dvc_repro(tmp_path):
    """A directory of daily partitions (Parquet and JSONL) under the team's column names: DVC
    tracks the directory, so a new day's partition re-runs ingest and adds its rows."""
    ws = make_workspace(tmp_path / "ws")
    names = {"prompt_id": "request_id", "user_id": "account", "text": "input", "timestamp": "created_at"}
    frame = pd.read_json(ws / "data/prompts.jsonl", lines=True, dtype=False, nrows=1500)
    frame = frame.dropna(subset=list(names)).rename(columns=names)
    logs = ws / "logs"
    logs.mkdir()
    frame.iloc[:300].to_parquet(logs / "2024-01-01.parquet", index=False)
    frame.iloc[300:600].to_json(logs / "2024-01-02.jsonl", orient="records", lines=True, force_ascii=False)
    (logs / "README.md").write_text("one file per day\n")
    y = YAML()
    doc = y.load((ws / "params.yaml").read_text())
    doc["inputs"]["prompts"] = "logs"
    doc["ingest"]["columns"] = names
    doc["ingest"]["limit_rows"] = None  # the tiny profile's 800 would cut the third day
    with open(ws / "params.yaml", "w") as f:
        y.dump(doc, f)

    def ingest() -> dict:
        proc = run(ws, "dvc", "repro", "ingest")
        assert "Running stage 'ingest'" in proc.stdout, proc.stdout[-2000:]
        return json.loads((ws / "outputs/ingest/report.json").read_text())

    report = ingest()
    assert report["rows_by_partition"] == {"logs/2024-01-01.parquet": 300, "logs/2024-01-02.jsonl": 300}
    assert report["ignored_files"] == ["logs/README.md"] and report["accounting_ok"]
    lock = yaml.safe_load((ws / "dvc.lock").read_text())
    deps = {d["path"] for d in lock["stages"]["ingest"]["deps"]}
    assert {"logs", "data/demonstrations.jsonl", "data/world"} <= deps
    frame.iloc[600:900].to_json(logs / "2024-01-03.jsonl", orient="records", lines=True, force_ascii=False)
    again = ingest()
    assert again["rows_in"] == 900 and again["kept"] > report["kept"]
