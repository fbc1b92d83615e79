"""Reward-model normalisation after training: gain (the policy's samples have reward std 1), then
bias (the demonstrations have mean 0), saved with the model."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from instructgpt.reward_model import RewardModel
from instructgpt.train.reward import (
    Comparison,
    RewardConfig,
    comparison_samples,
    evaluate_rm,
    normalize_rewards,
    score_pairs,
    train_reward_model,
)

from .conftest import make_pairs, tol
from .test_train import make_comparisons

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


@pytest.fixture(scope="module")
def trained(model_dir, tokenizer):
    """An RM trained on toy rankings with the defaults (gain and bias normalised)."""
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    train, valid, demos = make_comparisons(48, 3), make_comparisons(12, 4), make_pairs(10, 9)
    cfg = RewardConfig(epochs=2, lr=3e-3, batch_size=8, max_len=64, warmup=1, show_progress=False)
    m = train_reward_model(rm, tokenizer, train, valid, demos, cfg)
    return rm, m, train, valid, demos


def test_samples_have_std_one_and_demonstrations_mean_zero(trained, tokenizer, precision):
    rm, m, train, _, demos = trained
    samples = comparison_samples(train)
    assert len(set(samples)) == len(samples) and set(samples) == {(c.prompt, r) for c in train for r in c.responses}
    scores = score_pairs(rm, tokenizer, samples, max_len=64)
    # re-scored here in this test's precision (bf16: activations rounded to 8 bits of mantissa,
    # another padding than the normalisation's batches), so the tolerance is bf16's
    assert float(scores.std(unbiased=False)) == pytest.approx(1.0, abs=tol(precision, 1e-4, 2e-3))
    assert float(score_pairs(rm, tokenizer, demos, max_len=64).mean()) == pytest.approx(
        0.0, abs=tol(precision, 1e-4, 5e-3))
    assert m["samples/std_reward"] == pytest.approx(1.0, abs=1e-4)
    assert m["demo/mean_reward"] == pytest.approx(0.0, abs=1e-4)
    assert m["gain"] == pytest.approx(float(rm.gain)) and m["bias"] == pytest.approx(float(rm.bias))
    # the map is r = gain · raw + bias, gain read from the samples, bias from the demonstrations
    raw = copy.deepcopy(rm)
    raw.gain.fill_(1.0)
    raw.bias.zero_()
    raw_samples = score_pairs(raw, tokenizer, samples, max_len=64)
    raw_demos = score_pairs(raw, tokenizer, demos, max_len=64)
    assert abs(float(raw_samples.std(unbiased=False)) - 1) > 0.05  # the gain had something to do
    # bf16: the RM was trained and normalised in fp32 (a module fixture), scored here under bf16
    assert m["gain"] == pytest.approx(1 / float(raw_samples.std(unbiased=False)), rel=tol(precision, 1e-5, 2e-3))
    assert m["bias"] == pytest.approx(-m["gain"] * float(raw_demos.mean()), abs=tol(precision, 1e-5, 5e-3))
    assert torch.allclose(scores, m["gain"] * raw_samples + m["bias"], atol=tol(precision, 1e-5, 5e-3))


def test_comparison_samples_are_the_distinct_ranked_responses():
    comps = [Comparison("p", ["a", "b", "c"], [2, 0, 1]), Comparison("q", ["a", "d"], [0, 1]),
             Comparison("p", ["b", "c", "a"], [0, 1, 2])]  # p ranked a second time (overlap)
    assert comparison_samples(comps) == [("p", "a"), ("p", "b"), ("p", "c"), ("q", "a"), ("q", "d")]


def test_normalising_keeps_the_pairwise_accuracy(trained, tokenizer):
    rm, m, train, valid, _ = trained
    raw = copy.deepcopy(rm)  # the RM as training left it
    raw.gain.fill_(1.0)
    raw.bias.zero_()
    for comps in (train, valid):
        before = evaluate_rm(raw, tokenizer, comps, 16, 64)
        after = evaluate_rm(rm, tokenizer, comps, 16, 64)
        assert after["accuracy"] == before["accuracy"]
        assert after["loss"] != pytest.approx(before["loss"])  # the scale did change the rewards
    assert m["valid/accuracy"] == evaluate_rm(rm, tokenizer, valid, 16, 64)["accuracy"]


def test_normalize_scale_false_leaves_gain_one(trained, tokenizer):
    rm, _, train, _, demos = trained
    rm = copy.deepcopy(rm)
    samples = comparison_samples(train)
    cfg = RewardConfig(max_len=64, normalize_scale=False)
    m = normalize_rewards(rm, tokenizer, samples, demos, cfg)
    assert float(rm.gain) == m["gain"]  # untouched: what it was
    rm.gain.fill_(1.0)
    m = normalize_rewards(rm, tokenizer, samples, demos, cfg)
    assert float(rm.gain) == 1.0 and m["gain"] == 1.0
    assert m["demo/mean_reward"] == pytest.approx(0.0, abs=1e-4)  # the bias is still set
    assert abs(m["samples/std_reward"] - 1) > 0.05


def test_train_with_normalize_scale_false_has_gain_one(model_dir, tokenizer):
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    cfg = RewardConfig(max_steps=1, batch_size=4, max_len=64, show_progress=False, normalize_scale=False)
    m = train_reward_model(rm, tokenizer, make_comparisons(8, 3), [], make_pairs(4, 9), cfg)
    assert m["gain"] == 1.0 and float(rm.gain) == 1.0
    assert m["demo/mean_reward"] == pytest.approx(0.0, abs=1e-4)


def test_gain_is_saved_and_an_old_directory_loads_with_gain_one(model_dir, tokenizer, tmp_path):
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    ids = torch.tensor([[tokenizer.pad_token_id, 5, 6, 7], [5, 6, 7, 8]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    with torch.no_grad():
        raw = rm(ids, mask)
        rm.gain.fill_(2.5)
        rm.bias.fill_(0.5)
        assert torch.allclose(rm(ids, mask), 2.5 * raw + 0.5)
        rm.save_pretrained(tmp_path / "rm", tokenizer)
        rm2 = RewardModel.from_pretrained(tmp_path / "rm")
        assert (rm2.gain.item(), rm2.bias.item()) == (2.5, 0.5)
        assert torch.equal(rm2(ids, mask), rm(ids, mask))
        meta = json.loads((tmp_path / "rm/reward_model.json").read_text())
        assert (meta["gain"], meta["bias"]) == (2.5, 0.5)
        # a directory written before the gain existed: no "gain" in either file
        head = load_file(str(tmp_path / "rm/reward_head.safetensors"))
        save_file({k: v for k, v in head.items() if k != "gain"}, str(tmp_path / "rm/reward_head.safetensors"))
        (tmp_path / "rm/reward_model.json").write_text(json.dumps({"kind": "reward_model", "bias": 0.5}))
        old = RewardModel.from_pretrained(tmp_path / "rm")
        assert (old.gain.item(), old.bias.item()) == (1.0, 0.5)
        assert torch.allclose(old(ids, mask), raw + 0.5)
