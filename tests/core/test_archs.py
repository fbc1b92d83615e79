"""The whole library on tiny random GPT-2, Llama, GPT-NeoX and Qwen2 directories.

Qwen2 is built straight from its Hugging Face config (not by ``build_causal_lm``) to stand for
"any local AutoModelForCausalLM directory"."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from instructgpt.data import collate_prompts
from instructgpt.evaluation import choice_accuracy, corpus_loss
from instructgpt.generation import sample
from instructgpt.models import ModelConfig, build_causal_lm, load_causal_lm, save_model
from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo import PPOConfig, train_ppo
from instructgpt.train.reward import RewardConfig, score_pairs, train_reward_model
from instructgpt.train.sft import SFTConfig, sft_loss, train_sft
from tests.helpers import same_weights

from .conftest import make_pairs, tol
from .test_train import make_comparisons

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


def make_dir(arch: str, tokenizer, path):
    if arch == "qwen2":
        cfg = Qwen2Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                          bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                          pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(cfg)
    else:
        model = build_causal_lm(ModelConfig(arch=arch, n_layer=2, n_embd=32, n_head=2, n_positions=128), tokenizer)
    save_model(model, tokenizer, path)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_recipe_on_arch(arch, tokenizer, tmp_path):
    make_dir(arch, tokenizer, tmp_path / "base")
    # step 1: SFT; the saved model is the selected one
    policy, tok = load_causal_lm(tmp_path / "base", dropout=0.2)
    valid = make_pairs(8, 2)
    sft = train_sft(policy, tok, make_pairs(32, 1), valid,
                    SFTConfig(epochs=2, lr=3e-3, batch_size=16, max_len=64, show_progress=False))
    assert sft["valid/loss"] < sft["valid/loss_before"]
    save_model(policy, tok, tmp_path / "sft")
    assert sft_loss(load_causal_lm(tmp_path / "sft")[0], tok, valid, 64) == pytest.approx(sft["valid/loss"], rel=1e-5)
    # step 2: RM on the SFT backbone (its hidden states, not a fresh network), K-way loss, bias
    # normalisation, round trip
    rm = RewardModel.from_causal_lm(tmp_path / "sft")
    b = collate_prompts(tok, ["hi", "repeat the word cat 2 times"])
    with torch.no_grad():
        assert torch.allclose(rm.backbone(**b.model_inputs()).last_hidden_state,
                              policy.base_model(**b.model_inputs()).last_hidden_state, atol=1e-5)
    demos = make_pairs(6, 9)
    m = train_reward_model(rm, tok, make_comparisons(16, 3), make_comparisons(4, 4), demos,
                           RewardConfig(epochs=1, lr=1e-3, batch_size=4, max_len=64, show_progress=False))
    assert abs(m["demo/mean_reward"]) < 1e-4
    rm.save_pretrained(tmp_path / "rm", tok)
    scores = score_pairs(rm, tok, valid, max_len=64)
    rm = RewardModel.from_pretrained(tmp_path / "rm")
    assert torch.allclose(score_pairs(rm, tok, valid, max_len=64), scores, atol=1e-5)  # head and bias kept
    # step 3: one PPO-ptx step
    policy, tok = load_causal_lm(tmp_path / "sft", dropout=0.0)
    ref, _ = load_causal_lm(tmp_path / "sft", dropout=0.0)
    before = copy.deepcopy(policy.state_dict())
    cfg = PPOConfig(steps=1, batch_size=4, mini_batch_size=2, ppo_epochs=1, lr=1e-3, max_new_tokens=5,
                    ptx_coef=1.0, ptx_batch_size=2, ptx_block_size=16, show_progress=False)
    out = train_ppo(policy, ref, RewardModel.from_pretrained(tmp_path / "rm"), rm, tok,
                    [p for p, _ in make_pairs(4, 5)], [f"{p}\n{r}" for p, r in make_pairs(10, 6)], cfg)
    assert out["ppo/objective/kl"] == pytest.approx(0.0, abs=1e-4)
    assert not same_weights(before, policy)
    # evaluation helpers: left padding and position ids must not change any result, so a row
    # scores (and greedily decodes) the same alone as next to a longer one
    prompts = ["hi", "repeat the word cat 2 times please"]
    together = sample(policy, tok, prompts, max_new_tokens=6, temperature=0.0, batch_size=2)
    alone = [sample(policy, tok, [p], max_new_tokens=6, temperature=0.0)[0] for p in prompts]
    assert [s.response_ids for s in together] == [s.response_ids for s in alone]
    texts = ["the cat sat", "repeat the word dog 3 times\ndog dog dog"]
    assert corpus_loss(policy, tok, texts, batch_size=2) == pytest.approx(
        corpus_loss(policy, tok, texts, batch_size=1), rel=1e-5)
    items = [{"context": f"repeat the word {w} 1 times\n", "choices": [" cat", " dog dog", " red"], "answer": i % 3}
             for i, w in enumerate(["cat", "dog", "red", "blue", "sun", "tree"])]
    assert choice_accuracy(policy, tok, items, batch_size=4) == choice_accuracy(policy, tok, items, batch_size=1)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_rollout_logprobs_match_full_forward(arch, tokenizer, tmp_path, precision):
    """KV-cache sampling from left-padded prompts and the PPO full forward (with position ids
    and EOS truncation) give the same temperature-scaled log-probabilities."""
    from instructgpt.data import collate_prompts
    from instructgpt.generation import generate_ids
    from instructgpt.models import position_ids_from_mask
    from instructgpt.train.ppo import gather_logprobs, response_logits, response_mask

    make_dir(arch, tokenizer, tmp_path / "m")
    model, tok = load_causal_lm(tmp_path / "m", dropout=0.0)
    model.eval()
    q = collate_prompts(tok, ["hi", "repeat the word cat 2 times please", "x"])
    g = torch.Generator().manual_seed(0)
    response, sampled_logprobs = generate_ids(model, q.input_ids, q.attention_mask, q.position_ids, 8, 0.7,
                                              tok.eos_token_id, tok.pad_token_id, g, return_logprobs=True)
    mask, _ = response_mask(response, tok.eos_token_id)
    ids = torch.cat([q.input_ids, response], 1)
    am = torch.cat([q.attention_mask, mask.long()], 1)
    with torch.no_grad():
        logits = response_logits(model, ids, am, position_ids_from_mask(am), q.input_ids.shape[1], 0.7)
    logprobs = gather_logprobs(logits, response)
    assert torch.allclose(logprobs[mask], sampled_logprobs[mask], atol=tol(precision, 1e-4, 5e-3))
