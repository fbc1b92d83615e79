"""Tokenizer, data rules, models, reward model and sampling on tiny random models."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.data import IGNORE_INDEX, collate_prompts, collate_sft, encode_prompt, make_blocks
from instructgpt.evaluation import choice_accuracy, corpus_loss
from instructgpt.generation import generate_ids, sample
from instructgpt.models import (
    ModelConfig,
    RewardModel,
    build_causal_lm,
    load_causal_lm,
    save_model,
    set_dropout,
)
from instructgpt.text import format_prompt


def test_tokenizer_specials(tokenizer, tmp_path):
    ids = {tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id}
    assert None not in ids and len(ids) == 4
    assert tokenizer.padding_side == "left"
    text = "repeat the word cat 2 times\ncat cat"
    assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text
    tokenizer.save_pretrained(tmp_path)
    from instructgpt.models import load_tokenizer

    t2 = load_tokenizer(tmp_path)
    assert t2.pad_token_id == tokenizer.pad_token_id and t2.padding_side == "left"


def test_prompt_batch_left_padded_with_positions(tokenizer):
    b = collate_prompts(tokenizer, ["repeat the word cat 1 times", "hi"])
    short = encode_prompt(tokenizer, "hi")
    T = b.input_ids.shape[1]
    assert b.input_ids[1, T - len(short):].tolist() == short
    assert b.input_ids[1, : T - len(short)].eq(tokenizer.pad_token_id).all()
    assert b.attention_mask[1].tolist() == [0] * (T - len(short)) + [1] * len(short)
    assert b.position_ids[1, T - len(short):].tolist() == list(range(len(short)))
    assert b.position_ids[0].tolist() == list(range(T))
    assert short[0] == tokenizer.bos_token_id
    assert tokenizer.decode(short[1:]) == format_prompt("hi")


def test_sft_labels_only_on_response_and_eos(tokenizer):
    b = collate_sft(tokenizer, [("repeat the word cat 2 times", "cat cat"), ("hi", "x")], max_len=64)
    for row in range(2):
        ids, labels = b.input_ids[row], b.labels[row]
        real = labels != IGNORE_INDEX
        assert labels[real].tolist()[-1] == tokenizer.eos_token_id
        assert ids[real].tolist() == labels[real].tolist()
    n_prompt = len(encode_prompt(tokenizer, "hi"))
    n_resp = len(tokenizer("x", add_special_tokens=False)["input_ids"]) + 1
    assert int((b.labels[1] != IGNORE_INDEX).sum()) == n_resp
    assert int(b.attention_mask[1].sum()) == n_prompt + n_resp


def test_make_blocks(tokenizer):
    blocks = make_blocks(tokenizer, ["the cat sat on the mat"] * 10, block_size=16)
    assert blocks.shape[1] == 16 and blocks.dtype == torch.long


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox"])
def test_archs_build_save_load_sample(arch, tokenizer, tmp_path):
    cfg = ModelConfig(arch=arch, n_layer=2, n_embd=32, n_head=2, n_positions=64, dropout=0.1)
    model = build_causal_lm(cfg, tokenizer, seed=3)
    again = build_causal_lm(cfg, tokenizer, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    save_model(model, tokenizer, tmp_path / "m")
    assert list((tmp_path / "m").glob("*.safetensors"))
    loaded, tok = load_causal_lm(tmp_path / "m", dropout=0.0)
    assert not any(m.p for m in loaded.modules() if isinstance(m, torch.nn.Dropout))
    # KV-cache greedy decoding == recomputing the full sequence each step
    b = collate_prompts(tok, ["repeat the word cat 2 times", "hi"])
    loaded.eval()
    fast = generate_ids(loaded, b.input_ids, b.attention_mask, b.position_ids, 6, 0.0, -1, tok.pad_token_id)
    ids, mask = b.input_ids, b.attention_mask
    slow = []
    with torch.no_grad():
        for _ in range(6):
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            nxt = loaded(input_ids=ids, attention_mask=mask, position_ids=pos).logits[:, -1].argmax(-1)
            slow.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], 1)
            mask = torch.cat([mask, torch.ones_like(mask[:, :1])], 1)
    assert fast.tolist() == torch.stack(slow, 1).tolist()
    # reward model from the causal-LM directory
    rm = RewardModel.from_causal_lm(tmp_path / "m")
    r = rm(b.input_ids, b.attention_mask)
    assert r.shape == (2,)
    assert rm.per_token(b.input_ids, b.attention_mask).shape == b.input_ids.shape


def test_load_errors_on_non_model_dir(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Hugging Face model directory"):
        load_causal_lm(tmp_path)


def test_reward_model_reads_last_real_token_and_roundtrips(model_dir, tokenizer, tmp_path):
    rm = RewardModel.from_causal_lm(model_dir, seed=0)
    d = rm.backbone.config.hidden_size
    assert rm.head.weight.std().item() == pytest.approx(1 / math.sqrt(d + 1), rel=0.5)
    ids = torch.tensor([[tokenizer.pad_token_id, 5, 6, 7], [5, 6, 7, 8]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    # a right-padded row (response padding after EOS) must read the last real token, not the last column
    ids_r = torch.tensor([[5, 6, 7, tokenizer.pad_token_id]])
    mask_r = torch.tensor([[1, 1, 1, 0]])
    with torch.no_grad():
        per_tok = rm.per_token(ids_r, mask_r)
        assert rm(ids_r, mask_r).item() == pytest.approx(per_tok[0, 2].item())
        left = rm(ids, mask)
        assert left[0].item() == pytest.approx(rm(ids[:1, 1:], mask[:1, 1:]).item(), abs=1e-5)
        rm.bias.fill_(0.5)
        rm.save_pretrained(tmp_path / "rm", tokenizer)
        rm2 = RewardModel.from_pretrained(tmp_path / "rm")
        assert torch.allclose(rm2(ids, mask), rm(ids, mask))
        assert rm2.bias.item() == 0.5


def test_sample_deterministic_and_eos_stripped(tiny_model, tokenizer):
    prompts = ["repeat the word cat 2 times", "hi", "repeat the word dog 1 times"]
    a = sample(tiny_model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, batch_size=2, seed=7)
    b = sample(tiny_model, tokenizer, prompts, max_new_tokens=8, temperature=1.0, batch_size=2, seed=7)
    assert [s.response_ids for s in a] == [s.response_ids for s in b]
    for s in a:
        assert tokenizer.eos_token_id not in s.response_ids[:-1]
        assert s.ended_with_eos == (s.response_ids[-1] == tokenizer.eos_token_id)
        assert tokenizer.pad_token_id not in s.response_ids
    # a model that always says EOS first
    with torch.no_grad():
        tiny_model.lm_head.weight.zero_()
        bias = torch.zeros(len(tokenizer))
        bias[tokenizer.eos_token_id] = 100.0
    hook = tiny_model.lm_head.register_forward_hook(lambda m, i, o: o + bias)
    s = sample(tiny_model, tokenizer, ["hi"], max_new_tokens=5, seed=0)[0]
    hook.remove()
    assert s.ended_with_eos and s.response == "" and s.response_ids == [tokenizer.eos_token_id]


def test_corpus_loss_and_choice_accuracy(tiny_model, tokenizer):
    loss = corpus_loss(tiny_model, tokenizer, ["the cat sat", "the dog ran on the mat"], batch_size=2)
    assert math.log(len(tokenizer)) * 0.5 < loss < math.log(len(tokenizer)) * 2
    items = [{"context": "the cat", "choices": [" sat", " ran"], "answer": 0},
             {"context": "the dog", "choices": [" sat", " ran", " x"], "answer": 2}]
    acc = choice_accuracy(tiny_model, tokenizer, items)
    assert acc in (0.0, 0.5, 1.0)


def test_set_dropout(tokenizer):
    m = build_causal_lm(ModelConfig(n_layer=2, n_embd=32, n_head=2, n_positions=32, dropout=0.3), tokenizer)
    set_dropout(m, 0.2)
    assert {mod.p for mod in m.modules() if isinstance(mod, torch.nn.Dropout)} == {0.2}
    assert m.config.resid_pdrop == 0.2
