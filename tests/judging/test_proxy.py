"""Proxy figures on tiny models: KL from SFT, RM score with the RM's own tokenizer, demonstration
loss, lengths and EOS rate."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from instructgpt.data import encode_prompt
from instructgpt.generation import sample
from instructgpt.judging import proxy
from instructgpt.models import ModelConfig, build_causal_lm
from instructgpt.reward_model import RewardModel
from instructgpt.tokenizer import train_tokenizer
from instructgpt.train.sft import sft_loss

PROMPTS = ["repeat the word cat 2 times", "list three colors .", "repeat the word sun 1 times",
           "write a story about a dog ."] * 3
CFG = ModelConfig(arch="gpt2", n_layer=1, n_embd=32, n_head=2, n_positions=64)


@pytest.fixture(scope="module")
def tokenizer():
    texts = ["repeat the word cat 2 times\ncat cat", "list three colors .\nred , blue , green .",
             "write a story about a dog .\nthe dog ran ."] * 20
    return train_tokenizer(texts, vocab_size=300)


def manual_logprob(model, tokenizer, prompt: str, ids: list[int], temperature: float) -> float:
    """One sequence, no padding: Σ log softmax(logits / T)[y_t] over the response tokens."""
    p = encode_prompt(tokenizer, prompt)
    x = torch.tensor([p + ids])
    with torch.no_grad():
        logits = model(input_ids=x).logits[0, len(p) - 1: -1].float() / temperature
    return float(F.log_softmax(logits, -1).gather(1, torch.tensor(ids)[:, None]).sum())


def test_kl_from_sft(tokenizer):
    sft = build_causal_lm(CFG, tokenizer, seed=0)
    policy = build_causal_lm(CFG, tokenizer, seed=1)
    samples = sample(policy, tokenizer, PROMPTS, max_new_tokens=6, temperature=0.7, batch_size=5, seed=0)
    # the same weights: exactly zero
    assert proxy.kl_from_reference(sft, copy.deepcopy(sft), tokenizer, samples, 0.7) == 0.0
    # another model: the mean of log π − log π_SFT over its own samples, batched with left padding
    got = proxy.kl_from_reference(policy, sft, tokenizer, samples, 0.7, batch_size=5)
    want = sum(manual_logprob(policy, tokenizer, s.prompt, s.response_ids, 0.7)
               - manual_logprob(sft, tokenizer, s.prompt, s.response_ids, 0.7) for s in samples) / len(samples)
    assert got == pytest.approx(want, abs=1e-4) and got != 0.0
    assert proxy.eos_rate(samples) == sum(s.ended_with_eos for s in samples) / len(samples)


def test_rm_score_uses_the_reward_models_own_tokenizer(tokenizer, tmp_path):
    # an RM on another tokenizer (other vocabulary): text is re-tokenized for it
    rm_tok = train_tokenizer(["completely different words for another model"] * 30 + ["cat dog red"] * 30,
                             vocab_size=270)
    assert rm_tok.get_vocab() != tokenizer.get_vocab()
    rm = RewardModel.from_causal_lm(build_causal_lm(CFG, rm_tok, seed=3), seed=1)
    rm.save_pretrained(tmp_path / "rm", rm_tok)
    responses = ["cat cat", "red , blue , green .", "sun", ""] * 3
    got = proxy.score_texts(tmp_path / "rm", PROMPTS, responses)
    loaded = RewardModel.from_pretrained(tmp_path / "rm").eval()
    for p, r, g in zip(PROMPTS, responses, got):
        # the plain format: the response with its lead space, as the RM's own tokenizer spells it
        ids = encode_prompt(rm_tok, p) + rm_tok(" " + r if r else r, add_special_tokens=False)["input_ids"] + [
            rm_tok.eos_token_id]
        with torch.no_grad():
            want = float(loaded(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long)))
        assert g == pytest.approx(want, abs=1e-5)


def test_demonstration_loss_and_lengths(tokenizer):
    model = build_causal_lm(CFG, tokenizer, seed=0)
    pairs = [("repeat the word cat 2 times", "cat cat"), ("list three colors .", "red , blue , green .")]
    assert proxy.demonstration_loss(model, tokenizer, pairs) == pytest.approx(sft_loss(model, tokenizer, pairs, 64))
    assert proxy.response_words(["a b c", "", "d"]) == pytest.approx(4 / 3)
