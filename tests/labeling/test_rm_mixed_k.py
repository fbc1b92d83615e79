"""The rm stage trains on rankings of mixed K (2..5: chosen/rejected pairs next to K-way rankings)."""

from __future__ import annotations

import json
import random
import shutil

from tasks.shell.run import main
from tests.helpers import write_jsonl
from tests.labeling.conftest import WORDS, best_first, candidates
from tests.workspace import repo_params, stage_dir, write_project


def mixed_k_comparisons(n: int, seed: int) -> list[dict]:
    """Comparisons of 'repeat the word w k times' prompts, K cycling through 2, 3, 4, 5."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        text = f"repeat the word {rng.choice(WORDS)} {rng.randint(1, 3)} times"
        k = 2 + i % 4
        responses = rng.sample(candidates(text)[:6], k)
        split = "valid" if i % 5 == 4 else "train"
        rows.append({"prompt_id": f"p{i:04d}", "user_id": f"{split}-{i % 3}", "split": split, "prompt": text,
                     "responses": responses, "ranking": best_first(text, responses), "labeler_id": f"l{i % 4}"})
    return rows


def test_rm_stage_trains_on_k_from_2_to_5(tmp_path, monkeypatch, model_dir):
    from tasks.rm import body

    params = repo_params()
    params["inputs"]["demonstrations"] = "demonstrations.jsonl"
    params["label"].update(k_min=2, k_max=5)
    params["rm"].update(epochs=4, lr=0.003, batch_size=8, max_len=48, checkpoint_every=0)
    write_project(tmp_path, params)
    comparisons = mixed_k_comparisons(100, 0)
    assert {len(c["responses"]) for c in comparisons} == {2, 3, 4, 5}
    write_jsonl(tmp_path / "outputs/label/comparisons.jsonl", comparisons)
    write_jsonl(tmp_path / "outputs/label/metrics.json", [{"agreement": {"heldout_vs_train": 0.7}}])
    write_jsonl(tmp_path / "outputs/ingest/prompts.jsonl", [
        {"prompt_id": "s1", "user_id": "u", "text": "repeat the word cat 2 times", "dataset": "sft", "split": "train"}])
    write_jsonl(tmp_path / "demonstrations.jsonl", [{"prompt_id": "s1", "labeler_id": "l", "response": "cat cat"}])
    shutil.copytree(model_dir, tmp_path / "outputs/sft/model")
    with stage_dir(tmp_path, monkeypatch):
        assert main("rm", body) == 0
    metrics = json.loads((tmp_path / "outputs/rm/metrics.json").read_text())
    assert metrics["data"]["train_comparisons"] == 80 and metrics["data"]["valid_comparisons"] == 20
    assert metrics["valid"]["accuracy"] > 0.7, metrics["valid"]
    assert (tmp_path / "outputs/rm/model").is_dir()
