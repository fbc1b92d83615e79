"""A real Label Studio round trip: export tasks, push, annotate through the API, pull, train.

Starts Label Studio 1.23.2 from ``.labelstudio/venv`` (created here when missing, about a
minute from the package index) on a free port of 127.0.0.1 with a temporary data directory.
Skipped, with the reason printed, only when that venv cannot be created. Deselect with
``-m 'not labelstudio'``.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from instructgpt.labeling import service
from instructgpt.judging.human import read_judgements
from instructgpt.labeling.formats import write_jsonl
from instructgpt.labeling.run import label
from instructgpt.labeling.studio import Studio, choice_result, pull, push, ranking_result
from instructgpt.labeling.validation import PromptIndex
from instructgpt.stages import LabelConfig
from tests.labeling.conftest import best_first, kept_prompts, quarantine, sampler

pytestmark = pytest.mark.labelstudio
REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-legacy-token-0123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def studio_url(tmp_path_factory):
    t0 = time.time()
    try:
        service.ensure_venv(REPO / ".labelstudio" / "venv")
    except service.ServiceError as exc:
        print(f"\nSKIP: cannot create the Label Studio venv (no package registry?): {exc}")
        pytest.skip(f"cannot create the Label Studio venv: {str(exc)[-300:]}")
    installed = time.time() - t0
    port, data = free_port(), tmp_path_factory.mktemp("ls-data")
    log = data / "server.log"
    t1 = time.time()
    proc = service.start(port, data, "admin@example.com", "test-password-1", TOKEN, venv=REPO / ".labelstudio/venv",
                         log=log)
    print(f"\nLabel Studio: venv ready in {installed:.1f} s, server up in {time.time() - t1:.1f} s")
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except Exception:  # noqa: BLE001 - a stuck server is killed rather than left behind
        proc.kill()


def test_server_listens_on_loopback_only_and_both_token_kinds_work(studio_url):
    port = int(studio_url.rsplit(":", 1)[1])
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [line.split()[1] for line in listening if line.split()[3] == "0A"]  # state LISTEN
    assert f"0100007F:{port:04X}" in local and f"00000000:{port:04X}" not in local
    legacy = Studio(studio_url, TOKEN)
    assert legacy.whoami()["email"] == "admin@example.com"
    pat = legacy.request("POST", "/api/token/")["token"]  # a personal access token (JWT refresh token)
    assert Studio(studio_url, pat).whoami()["email"] == "admin@example.com"


def test_ranking_round_trip_trains_a_reward_model(studio_url, tmp_path, tokenizer, model_dir):
    from instructgpt.models import RewardModel
    from instructgpt.train.reward import Comparison, RewardConfig, evaluate_rm, train_reward_model

    studio = Studio(studio_url, TOKEN)
    prompts = kept_prompts(n=40)
    index = PromptIndex.from_frames(prompts, quarantine())
    rm_prompts = prompts[(prompts["dataset"] == "rm") & prompts["split"].isin(["train", "valid"])]
    answers, outbox = tmp_path / "labels/rankings", tmp_path / "labels/outbox"
    answers.mkdir(parents=True)
    cfg = LabelConfig(labelers="human", k_min=2, k_max=5, overlap=0.25, max_prompts=None)

    # 1. the label stage's step exports ranking tasks (K = 2..5; the overlap share wants two labelers)
    first = label(cfg, rm_prompts, index, answers, sampler=sampler)
    write_jsonl(outbox / "rank_tasks.jsonl", first.tasks)
    assert {len(t["responses"]) for t in first.tasks} == {2, 3, 4, 5}
    overlap = {t["task_id"] for t in first.tasks if t["labelers_needed"] == 2}
    assert 0 < len(overlap) < len(first.tasks)

    # 2. push: one project, every task imported once, the overlap tasks set to two annotators
    report = push(studio, outbox)["rank_tasks"]
    assert report["imported"] == len(first.tasks) and report["overlap"] == len(overlap)
    assert push(studio, outbox)["rank_tasks"]["imported"] == 0  # pushing again adds nothing
    assert json.loads((outbox / "studio.json").read_text())["projects"]["rank_tasks"] == report["project"]

    # 3. two labelers annotate through the API: alice every task, bob the overlap ones (he swaps the
    #    two best); Label Studio keeps an overlap task open until both did
    alice = studio.create_user("alice@example.com", "alice")
    bob = studio.create_user("bob@example.com", "bob")
    tasks = studio.export(report["project"], all_tasks=True)
    for t in tasks:
        order = best_first(t["data"]["prompt"], t["data"]["responses"])
        studio.annotate(t["id"], ranking_result(order), completed_by=alice)
        if t["data"]["task_id"] in overlap:
            assert studio.request("GET", f"/api/tasks/{t['id']}/")["is_labeled"] is False
            studio.annotate(t["id"], ranking_result([order[1], order[0], *order[2:]]), completed_by=bob)
        assert studio.request("GET", f"/api/tasks/{t['id']}/")["is_labeled"] is True

    # 4. pull writes the export where the pipeline reads rankings; the label step now has them all
    pulled = pull(studio, outbox, tmp_path)["rank_tasks"]
    assert pulled["annotations"] == len(first.tasks) + len(overlap)
    assert (answers / "label_studio.json").exists()
    second = label(cfg, rm_prompts, index, answers, sampler=sampler)
    assert second.tasks == [] and second.rejected == []
    for c in second.comparisons:  # what the labelers submitted, best first, not reversed or shuffled
        order = best_first(c["prompt"], c["responses"])
        assert c["ranking"] == (order if c["labeler_id"] == f"label-studio:{alice}" else [order[1], order[0], *order[2:]])
    assert len(second.comparisons) == len(first.tasks) + len(overlap)
    assert second.metrics["agreement/labeler/label-studio:%d" % alice] == second.metrics["agreement/overall"] < 1
    assert f"agreement/labeler/label-studio:{bob}" in second.metrics

    # 5. a tiny reward model trained on them (real optimizer steps) ranks these pairs above chance
    comparisons = [Comparison(c["prompt"], c["responses"], c["ranking"]) for c in second.comparisons
                   if c["labeler_id"] == f"label-studio:{alice}"]
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    rm_cfg = RewardConfig(epochs=4, lr=3e-3, batch_size=8, max_len=48, warmup=1, show_progress=False)
    before = evaluate_rm(rm, tokenizer, comparisons, 16, 48)["accuracy"]
    metrics = train_reward_model(rm, tokenizer, comparisons, comparisons, [("repeat the word cat 1 times", "cat")],
                                 rm_cfg)
    assert metrics["valid/accuracy"] > 0.75 and metrics["valid/accuracy"] > before + 0.15, (before, metrics)


def test_judge_round_trip(studio_url, tmp_path):
    studio = Studio(studio_url, TOKEN)
    outbox = tmp_path / "labels/outbox"
    judge_tasks = [{"task_id": f"j{i}", "prompt_id": f"p{i:04d}", "prompt": f"question {i}", "a": f"answer a{i}",
                    "b": f"answer b{i}"} for i in range(4)]
    write_jsonl(outbox / "judge_tasks.jsonl", judge_tasks)
    report = push(studio, outbox)
    assert report["judge_tasks"]["imported"] == 4 and "rank_tasks" not in report
    judge = studio.create_user("judge@example.com", "judge")
    picked = {"j0": "a", "j1": "b", "j2": "tie"}
    for t in studio.export(report["judge_tasks"]["project"], all_tasks=True):
        if t["data"]["task_id"] in picked:
            studio.annotate(t["id"], choice_result(picked[t["data"]["task_id"]]), completed_by=judge)
    pull(studio, outbox, tmp_path)
    # read as the evaluate stage reads inputs.judgements (the human judge), not by a reader no stage calls
    judgements, ignored = read_judgements(tmp_path / "labels/judgements")
    assert ignored == [] and [j.problem for j in judgements] == [None] * 3
    assert sorted((j.task_id, j.choice, j.judge_id) for j in judgements) == [
        ("j0", "a", f"label-studio:{judge}"), ("j1", "b", f"label-studio:{judge}"),
        ("j2", "tie", f"label-studio:{judge}")]
