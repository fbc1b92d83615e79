"""Raw inputs come from params.yaml: a Parquet prompt log works at stage level, and DVC tracks
whatever path `inputs.prompts` names."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from ruamel.yaml import YAML

from tests.e2e.conftest import make_workspace, run

pytestmark = pytest.mark.e2e


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
