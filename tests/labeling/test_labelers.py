"""The two RankingLabelers behind label.labelers: simulated (unchanged) and human (tasks, answers)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from instructgpt.config import ConfigError
from instructgpt.labeling.agreement import pairwise_agreement
from instructgpt.labeling.config import LabelConfig
from instructgpt.labeling.formats import task_id
from instructgpt.labeling.run import label
from instructgpt.labeling.validation import PromptIndex
from tests.helpers import write_jsonl
from tests.labeling.conftest import best_first, kept_prompts, sampler


def rm_prompts(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[(frame["dataset"] == "rm") & frame["split"].isin(["train", "valid"])].reset_index(drop=True)


# -- simulated --------------------------------------------------------------------------------
def world_prompts(tiny_dir, world, n=30) -> pd.DataFrame:
    """The first ``n`` well-formed prompts of the world's raw log (it has malformed lines on purpose)."""
    known, rows = set(world.prompt_ids()), []
    for line in (tiny_dir / "prompts.jsonl").read_bytes().splitlines()[:400]:
        try:
            r = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(r, dict) and r.get("prompt_id") in known and isinstance(r.get("text"), str) and r["text"]:
            rows.append(r)
    rows = list({r["prompt_id"]: r for r in rows}.values())[:n]
    return pd.DataFrame([{**r, "dataset": "rm", "split": "valid" if i % 5 == 4 else "train"}
                         for i, r in enumerate(rows)])


def echo_sampler(texts):
    """Copy j of a prompt answers j, j mod 3 or always the same: some sets come out with fewer than
    K distinct responses, some with fewer than k_min (dropped)."""
    out, run, prev = [], 0, None
    for t in texts:
        run = run + 1 if t == prev else 0
        prev = t
        out.append(f"{t[:12]} {[0, run % 3, run, run][len(t) % 4]}")
    return out


def old_simulated_rankings(cfg, prompts, world):
    """The label stage's algorithm before instructgpt.labeling (tasks/label.py at c69b1a5), as reference."""
    if cfg.max_prompts is not None and len(prompts) > cfg.max_prompts:
        prompts = prompts.sample(n=cfg.max_prompts, random_state=cfg.seed).sort_values("prompt_id")
    rng = np.random.default_rng(cfg.seed)
    ks = rng.integers(cfg.k_min, cfg.k_max + 1, size=len(prompts))
    texts = prompts["text"].astype(str).tolist()
    flat = [t for t, k in zip(texts, ks) for _ in range(2 * int(k))]
    samples = echo_sampler(flat)
    pool = world.training_labelers()
    rows, pos, dropped = [], 0, 0
    for i, (row, k) in enumerate(zip(prompts.itertuples(index=False), ks)):
        candidates = samples[pos: pos + 2 * int(k)]
        pos += 2 * int(k)
        responses = list(dict.fromkeys(candidates))[: int(k)]
        if len(responses) < cfg.k_min:
            dropped += 1
            continue
        ranking = pool.rank(row.prompt_id, row.text, responses, seed=cfg.seed + i)
        rows.append({"prompt_id": row.prompt_id, "user_id": row.user_id, "split": row.split, "prompt": row.text,
                     "responses": responses, "ranking": list(ranking.order), "labeler_id": ranking.labeler_id})
    return rows, dropped


@pytest.mark.parametrize("max_prompts", [None, 12])
def test_simulated_labelers_rank_exactly_as_before(tiny_dir, tiny_world, max_prompts):
    prompts = world_prompts(tiny_dir, tiny_world)
    index = PromptIndex.from_frames(prompts)
    cfg = LabelConfig(k_min=2, k_max=5, max_prompts=max_prompts, overlap=0.3, seed=3)
    result = label(cfg, prompts, index, tiny_dir, sampler=echo_sampler)
    expected, dropped = old_simulated_rankings(cfg, prompts, tiny_world)
    assert dropped > 0 and len(expected) > 5  # the case covers prompts that fall short of k_min
    seen: set[str] = set()
    firsts = [r for r in result.comparisons if not (r["prompt_id"] in seen or seen.add(r["prompt_id"]))]
    assert json.dumps(firsts) == json.dumps(expected)  # each prompt's first ranking, as before
    assert result.metrics["dropped_too_few_distinct"] == dropped
    assert result.rejected == [] and result.tasks == []


def test_simulated_overlap_measures_agreement_with_a_different_second_labeler(tiny_dir, tiny_world):
    prompts = world_prompts(tiny_dir, tiny_world, n=60)
    cfg = LabelConfig(k_min=4, k_max=6, max_prompts=None, overlap=0.5, seed=0)
    result = label(cfg, prompts, PromptIndex.from_frames(prompts), tiny_dir, sampler=echo_sampler)
    m = result.metrics
    assert 10 < m["overlap_sets"] < 50 and m["agreement/sets"] == m["overlap_sets"] == m["agreement/pairs"]
    assert m["agreement/overall"] == pytest.approx(m["agreement/train_vs_train"])
    assert 0.0 < m["agreement/heldout_vs_train"] < 1.0
    per = {k: v for k, v in m.items() if k.startswith("agreement/labeler/")}
    assert len(per) >= 4 and all(k.split("/")[-1].startswith("t") for k in per)  # training labelers only
    # both training labelers' rankings of an overlap set are training data (as in the human
    # path); the held-out labeler's is not
    by_prompt: dict[str, list[dict]] = {}
    for r in result.comparisons:
        by_prompt.setdefault(r["prompt_id"], []).append(r)
    twice = [rs for rs in by_prompt.values() if len(rs) == 2]
    assert len(twice) == m["overlap_sets"] and m["comparisons"] == len(by_prompt) + m["overlap_sets"]
    assert all(a["labeler_id"] != b["labeler_id"] and a["responses"] == b["responses"] for a, b in twice)
    assert all(r["labeler_id"].startswith("t") for r in result.comparisons)
    assert max(len(rs) for rs in by_prompt.values()) == 2


def test_noise_free_ceiling_counts_the_pairs_the_truth_orders_as_the_labels(tiny_dir, tiny_world):
    from instructgpt.labeling.simulated import ceiling_metrics

    prompts = world_prompts(tiny_dir, tiny_world, n=60)
    ids = dict(zip(prompts["text"], prompts["prompt_id"]))

    def world_sampler(texts):  # responses of mixed quality, as a weak policy samples them
        runs = [(t, len(list(g))) for t, g in __import__("itertools").groupby(texts)]
        return [r for t, n in runs for r in tiny_world.candidates(ids[t], n, seed=0)]

    cfg = LabelConfig(k_min=4, k_max=6, max_prompts=None, overlap=0.5, seed=0)
    result = label(cfg, prompts, PromptIndex.from_frames(prompts), tiny_dir, sampler=world_sampler)
    m = result.metrics
    assert len(result.comparisons) > 40
    assert 0.5 < m["ceiling/noise_free"] < 1.0  # the labelers are noisy, and better than chance
    assert set(m) >= {f"ceiling/noise_free_{s}" for s in {r["split"] for r in result.comparisons}}
    utility = tiny_world.training_labelers().utility
    truth = [{**r, "ranking": sorted(range(len(r["responses"])), key=lambda i: -utility(r["prompt_id"],
                                                                                      r["responses"][i]))}
             for r in result.comparisons]
    pairs = [(utility(r["prompt_id"], r["responses"][i]), utility(r["prompt_id"], r["responses"][j]))
             for r in truth for i in range(len(r["responses"])) for j in range(i)]
    ties = sum(a == b for a, b in pairs) / len(pairs)  # a tie counts half, either way
    assert ceiling_metrics(utility, truth)["ceiling/noise_free"] == pytest.approx(1.0 - ties / 2)
    flipped = [{**r, "ranking": r["ranking"][::-1]} for r in truth]
    assert ceiling_metrics(utility, flipped)["ceiling/noise_free"] == pytest.approx(ties / 2)
    one = [{"prompt_id": "p", "split": "valid", "responses": ["a", "b", "c"], "ranking": [2, 0, 1]}]
    u = {"a": 1.0, "b": 0.0, "c": 2.0}
    # pairs (c, a) right, (c, b) right, (a, b) right; then a tie counts half
    assert ceiling_metrics(lambda pid, r: u[r], one) == {"ceiling/noise_free_valid": 1.0, "ceiling/noise_free": 1.0}
    u["a"] = 0.0
    assert ceiling_metrics(lambda pid, r: u[r], one)["ceiling/noise_free_valid"] == pytest.approx(2.5 / 3)


def test_demonstrations_join_the_candidates_of_sft_prompts_and_labelers_rank_them(tiny_dir, tiny_world):
    from instructgpt.ingest.labeled import read_demonstrations

    prompts = world_prompts(tiny_dir, tiny_world, n=120)
    demos = read_demonstrations(tiny_dir / "demonstrations.jsonl").drop_duplicates("prompt_id")
    demonstrated = prompts.merge(demos[["prompt_id", "response"]], on="prompt_id")
    rm = prompts.iloc[:30]
    sft = demonstrated[~demonstrated["prompt_id"].isin(rm["prompt_id"])].iloc[:40]
    assert len(sft) == 40 and not set(rm["prompt_id"]) & set(sft["prompt_id"])
    ids = dict(zip(prompts["text"], prompts["prompt_id"]))

    def world_sampler(texts):
        runs = [(t, len(list(g))) for t, g in __import__("itertools").groupby(texts)]
        return [r for t, n in runs for r in tiny_world.candidates(ids[t], n, seed=1)]

    cfg = LabelConfig(k_min=4, k_max=6, max_prompts=None, overlap=0.0, seed=0, demonstration_prompts=25)
    index = PromptIndex.from_frames(prompts)
    result = label(cfg, rm, index, tiny_dir, sampler=world_sampler, demonstrated=sft)
    with_demo = [r for r in result.comparisons if r["prompt_id"] in set(sft["prompt_id"])]
    demo_of = dict(zip(sft["prompt_id"], sft["response"]))
    assert len(with_demo) == result.metrics["sets_with_demonstration"] == 25  # at most demonstration_prompts
    assert all(r["responses"].count(demo_of[r["prompt_id"]]) == 1 and 4 <= len(r["responses"]) <= 6
               for r in with_demo)
    places = {r["responses"].index(demo_of[r["prompt_id"]]) for r in with_demo}
    assert len(places) > 2  # not always in the same place
    # the labelers see that the demonstration is better than the samples: it comes first most often
    first = sum(r["responses"][r["ranking"][0]] == demo_of[r["prompt_id"]] for r in with_demo)
    assert first / len(with_demo) > 0.5
    # the RM prompts' sets are what they were without demonstrations
    plain = label(LabelConfig(k_min=4, k_max=6, max_prompts=None, overlap=0.0, seed=0), rm, index, tiny_dir,
                  sampler=world_sampler)
    assert [r for r in result.comparisons if r not in with_demo] == plain.comparisons


# -- human ------------------------------------------------------------------------------------
HUMAN = dict(labelers="human", k_min=2, k_max=5, overlap=0.3, max_prompts=None, seed=0)


def answer(tasks, labeler, flip=False):
    """Rankings answering ``tasks`` as a careful labeler would (``flip``: swap the two best)."""
    out = []
    for t in tasks:
        order = best_first(t["prompt"], t["responses"])
        if flip:
            order[0], order[1] = order[1], order[0]
        out.append({"task_id": t["task_id"], "prompt_id": t["prompt_id"], "responses": t["responses"],
                    "ranking": order, "labeler_id": labeler})
    return out


def test_human_labelers_export_tasks_then_use_the_answers(tmp_path, index):
    prompts = rm_prompts(kept_prompts())
    answers = tmp_path / "rankings"
    answers.mkdir()
    first = label(LabelConfig(**HUMAN), prompts, index, answers, sampler=sampler)
    tasks = first.tasks
    assert len(tasks) == len(prompts) and first.comparisons == []
    assert all(t["task_id"] == task_id(t["prompt_id"], t["responses"]) for t in tasks)
    assert all(2 <= len(t["responses"]) <= 5 and len(set(t["responses"])) == len(t["responses"]) for t in tasks)
    overlap = [t for t in tasks if t["labelers_needed"] == 2]
    assert 0 < len(overlap) < len(tasks) and first.metrics["tasks/pending"] == len(tasks)

    # alice answers everything: the overlap tasks still wait for a second, different labeler
    write_jsonl(answers / "alice.jsonl", answer(tasks, "alice"))
    second = label(LabelConfig(**HUMAN), prompts, index, answers, sampler=sampler)
    assert [t["task_id"] for t in second.tasks] == [t["task_id"] for t in overlap]
    assert all(t["answered_by"] == ["alice"] for t in second.tasks)
    assert second.metrics["tasks/answered"] == len(tasks) - len(overlap)
    assert second.metrics["rankings/used"] == len(tasks) and len(second.comparisons) == len(tasks)

    # alice again does not count as the second labeler; bob does (he swaps the two best)
    write_jsonl(answers / "alice2.jsonl", answer(overlap, "alice"))
    write_jsonl(answers / "bob.jsonl", answer(overlap, "bob", flip=True))
    third = label(LabelConfig(**HUMAN), prompts, index, answers, sampler=sampler)
    assert third.tasks == [] and third.metrics["tasks/pending"] == 0
    assert third.metrics["rejected/duplicate_ranking"] == len(overlap)
    assert len(third.comparisons) == len(tasks) + len(overlap)  # both rankings of an overlap task train
    expected = np.mean([pairwise_agreement(list(range(len(t["responses"]))),
                                           [1, 0, *range(2, len(t["responses"]))]) for t in overlap])
    assert third.metrics["agreement/overall"] == pytest.approx(expected)
    assert third.metrics["agreement/labeler/alice"] == pytest.approx(expected)
    assert third.metrics["agreement/labeler/bob"] == pytest.approx(expected)
    row = third.comparisons[0]
    assert list(row) == ["prompt_id", "user_id", "split", "prompt", "responses", "ranking", "labeler_id"]


def test_rankings_brought_along_label_their_prompt_and_other_datasets_count(tmp_path, index):
    prompts = rm_prompts(kept_prompts())
    answers = tmp_path / "rankings"
    write_jsonl(answers / "ours.jsonl", [
        {"prompt_id": "p0000", "responses": ["own a", "own b"], "ranking": [1, 0], "labeler_id": "zed"},
        {"prompt_id": "s0001", "responses": ["sun sun", "sun"], "ranking": [0, 1], "labeler_id": "zed"},
        {"prompt_id": "t0001", "responses": ["cat", "dog"], "ranking": [0, 1], "labeler_id": "zed"},
    ])
    result = label(LabelConfig(**{**HUMAN, "overlap": 0.0}), prompts, index, answers, sampler=sampler)
    assert "p0000" not in {t["prompt_id"] for t in result.tasks}
    assert len(result.tasks) == len(prompts) - 1
    # a prompt ranked already is not even sampled (no SFT samples, no task)
    assert result.metrics["tasks/skipped_ranked_already"] == 1
    assert result.metrics["tasks/total"] == len(prompts) - 1
    assert result.metrics["rankings/used_other_dataset"] == 1
    assert [r["reason"] for r in result.rejected] == ["test_split"]
    assert [c["prompt_id"] for c in result.comparisons] == ["p0000", "s0001"]


def test_human_labelers_refuse_the_world_or_a_missing_directory(tmp_path, tiny_dir, index):
    prompts = rm_prompts(kept_prompts())
    with pytest.raises(ConfigError, match="is the simulated world"):
        label(LabelConfig(**HUMAN), prompts, index, tiny_dir, sampler=sampler)
    with pytest.raises(ConfigError, match="does not exist"):
        label(LabelConfig(**HUMAN), prompts, index, tmp_path / "nope", sampler=sampler)
    with pytest.raises(ConfigError, match="holds no simulated world"):
        label(LabelConfig(k_min=2, k_max=5), prompts, index, tmp_path, sampler=sampler)


def test_label_config_bounds():
    with pytest.raises(ConfigError, match="labelers"):
        LabelConfig(labelers="crowd")
    with pytest.raises(ConfigError, match="k_max <= 9"):
        LabelConfig(k_min=2, k_max=10)
    with pytest.raises(ConfigError, match="2 <= k_min"):
        LabelConfig(k_min=1, k_max=4)
    with pytest.raises(ConfigError, match="overlap"):
        LabelConfig(overlap=1.5)
    assert LabelConfig(k_min=2, k_max=2).k_min == 2


def test_the_sft_sampler_takes_a_prompts_copies_at_its_temperatures_in_turn(model_dir):
    from instructgpt.generation import sample
    from instructgpt.labeling.sampling import sft_sampler
    from instructgpt.models import load_causal_lm

    texts = ["the cat"] * 4 + ["the dog"] * 3
    one = sft_sampler(str(model_dir), 8, 1.0, 8, seed=0)(texts)
    model, tok = load_causal_lm(str(model_dir))
    assert one == [s.response for s in sample(model, tok, texts, max_new_tokens=8, temperature=1.0, batch_size=8,
                                              seed=0)]  # one temperature: as before
    mixed = sft_sampler(str(model_dir), 8, [1.0, 1e-4], 8, seed=0)(texts)
    greedy = {t: s.response for t, s in zip(texts, sample(model, tok, texts, max_new_tokens=8, temperature=1e-4,
                                                            batch_size=8, seed=0))}
    # copies 1 and 3 of a prompt at T 1e-4 (greedy): its greedy answer; copies 0 and 2 at T 1
    assert [mixed[i] for i in (1, 3, 5)] == [greedy["the cat"]] * 2 + [greedy["the dog"]]
    hot = [s.response for s in sample(model, tok, [texts[i] for i in (0, 2, 4, 6)], max_new_tokens=8,
                                      temperature=1.0, batch_size=8, seed=0)]
    assert [mixed[i] for i in (0, 2, 4, 6)] == hot
    assert len(set(hot)) > 1  # T 1 does vary, so the check above tells the temperatures apart


def test_the_mixed_sampler_interleaves_the_policy_and_sft_copies_of_a_prompt():
    """Round 2's candidate sets: a prompt's copies alternate between the round-1 policy and SFT at
    rounds.policy_share, each model answering its rows in one call, in order."""
    from instructgpt.labeling.sampling import mixed_sampler

    calls = []

    def fake(name):
        def answer(texts):
            calls.append((name, list(texts)))
            return [f"{name}:{t}:{i}" for i, t in enumerate(texts)]
        return answer

    texts = ["a"] * 4 + ["b"] * 3
    out = mixed_sampler(fake("policy"), fake("sft"), 0.5)(texts)
    assert [o.split(":")[0] for o in out] == ["sft", "policy", "sft", "policy", "sft", "policy", "sft"]
    assert calls == [("policy", ["a", "a", "b"]), ("sft", ["a", "a", "b", "b"])]
    assert out[1] == "policy:a:0" and out[5] == "policy:b:2" and out[6] == "sft:b:3"
    calls.clear()
    assert all(o.startswith("policy") for o in mixed_sampler(fake("policy"), fake("sft"), 1.0)(texts))
    assert [name for name, _ in calls] == ["policy"]  # SFT never asked
    third = mixed_sampler(fake("policy"), fake("sft"), 1 / 3)(["c"] * 6)
    assert sum(o.startswith("policy") for o in third) == 2


def test_round_two_answers_live_in_their_own_subdirectory_that_round_one_never_reads(tmp_path, index):
    """rounds.n: 2 with people: round 2's tasks are answered in inputs.rankings/round2/; round 1's
    comparisons stay what they were (else its label stage would re-train every RM on round 2's
    answers), round 2 reads only those, and a missing round2/ means no answers yet, not an error."""
    from instructgpt.labeling.formats import ROUND2_DIR
    from instructgpt.labeling.human import HumanLabelers

    prompts = rm_prompts(kept_prompts())
    answers = tmp_path / "rankings"
    write_jsonl(answers / "alice.jsonl", [
        {"prompt_id": "p0000", "responses": ["own a", "own b"], "ranking": [1, 0], "labeler_id": "alice"}])
    config = LabelConfig(**{**HUMAN, "overlap": 0.0})
    second = HumanLabelers(answers / ROUND2_DIR, index, config.k_min, config.k_max, missing_ok=True)
    waiting = label(config, prompts, index, answers, sampler=sampler, labelers=second)
    assert waiting.comparisons == [] and len(waiting.tasks) == len(prompts)  # nothing answered in round 2 yet
    write_jsonl(answers / ROUND2_DIR / "bob.jsonl", answer(waiting.tasks, "bob"))
    round1 = label(config, prompts, index, answers, sampler=sampler)
    assert [c["labeler_id"] for c in round1.comparisons] == ["alice"]  # bob's round-2 answers not read
    round2 = label(config, prompts, index, answers, sampler=sampler, labelers=second)
    assert round2.tasks == [] and {c["labeler_id"] for c in round2.comparisons} == {"bob"}
    assert len(round2.comparisons) == len(prompts)
