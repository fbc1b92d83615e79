"""Tokenizer, data rules, models, reward model and sampling on tiny random models."""

from __future__ import annotations

import math

import pytest
import torch

from instructgpt.data import IGNORE_INDEX, collate_prompts, collate_sft, encode_prompt, make_blocks
from instructgpt.evaluation import choice_accuracy, corpus_loss
from instructgpt.generation import generate, generate_ids, sample
from instructgpt.models import (
    ModelConfig,
    build_causal_lm,
    load_causal_lm,
    save_model,
    set_dropout,
)
from instructgpt.reward_model import RewardModel
from instructgpt.text import format_prompt
from tests.helpers import same_weights

from .conftest import tol

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")


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
    n_resp = len(tokenizer(" x", add_special_tokens=False)["input_ids"]) + 1  # the plain format's lead space
    assert int((b.labels[1] != IGNORE_INDEX).sum()) == n_resp
    assert int(b.attention_mask[1].sum()) == n_prompt + n_resp


def test_make_blocks(tokenizer):
    texts = ["the cat sat on the mat", "a dog", "repeat the word cat 2 times", "red blue", "the dog ran and ran"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    docs = [[bos] + tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in texts]
    n_tokens = sum(len(d) for d in docs)
    assert 0 < n_tokens % 8 < len(docs[-1])  # the case tested: the last document does not fit
    blocks = make_blocks(tokenizer, texts, block_size=8)
    assert blocks.dtype == torch.long and blocks.shape == (n_tokens // 8, 8)  # only the short tail is dropped
    # the documents in order, each [BOS] text [EOS], running on across block boundaries
    flat, found, start = blocks.flatten().tolist(), [], 0
    for i, tok in enumerate(flat):
        if tok == eos:
            assert flat[start] == bos
            found.append(tokenizer.decode(flat[start + 1: i]))
            start = i + 1
    assert found == texts[:-1]
    assert flat[start:] == docs[-1][: len(flat) - start]  # the cut document's head ends the last block
    with pytest.raises(ValueError, match="fewer than one block"):
        make_blocks(tokenizer, ["hi"], block_size=64)


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox"])
def test_archs_build_save_load_sample(arch, tokenizer, tmp_path):
    cfg = ModelConfig(arch=arch, n_layer=2, n_embd=32, n_head=2, n_positions=64, dropout=0.1)
    model = build_causal_lm(cfg, tokenizer, seed=3)
    again = build_causal_lm(cfg, tokenizer, seed=3)
    assert same_weights(model, again)
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
    # loading gives back the saved model
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(**b.model_inputs()).logits, loaded(**b.model_inputs()).logits)
    # reward model from the causal-LM directory: the LM's own backbone (not a fresh one) under the
    # scalar head, read at the last real token (the last column of a left-padded batch)
    rm = RewardModel.from_causal_lm(tmp_path / "m").eval()
    with torch.no_grad():
        hidden = loaded.base_model(**b.model_inputs()).last_hidden_state  # (B, T, d)
        r = rm(b.input_ids, b.attention_mask)
        with torch.autocast("cpu", enabled=False):  # the scalar head runs in fp32, in a bf16 scope too
            head = rm.head(hidden.float()).squeeze(-1)  # (B, T)
        assert torch.allclose(rm.per_token(b.input_ids, b.attention_mask), head, atol=1e-5)
        assert torch.allclose(r, head[:, -1], atol=1e-5)


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


def test_batched_sampling_matches_one_prompt_at_a_time(tiny_model, tokenizer, precision):
    """The sampler's shortcuts (repeated prompts run once, batches of similar length, rows leaving
    the batch after their EOS) change nothing a row sees: greedy answers equal those of each prompt
    alone, and the sampling pass's log-probabilities equal a full forward over prompt + answer."""
    eos = tokenizer.eos_token_id

    def eos_after_some_tokens(module, args, kwargs, out):  # rows end at different steps, or never
        ids = kwargs["input_ids"][:, -out["logits"].shape[1]:]  # the positions whose logits are kept
        out["logits"][..., eos] += 100.0 * (ids % 7 == 0)
        return out

    tiny_model.register_forward_hook(eos_after_some_tokens, with_kwargs=True)
    prompts = ["repeat the word cat 2 times", "hi", "repeat the word cat 2 times", "sun",
               "repeat the word dog 1 times and the cat sat on the mat", "hi", "hi", "blue bird"]
    batched = sample(tiny_model, tokenizer, prompts, max_new_tokens=12, temperature=0.0, batch_size=8, seed=0)
    alone = [sample(tiny_model, tokenizer, [p], max_new_tokens=12, temperature=0.0, seed=0)[0] for p in prompts]
    assert [s.prompt for s in batched] == prompts
    assert [s.response_ids for s in batched] == [s.response_ids for s in alone]
    assert {s.ended_with_eos for s in batched} == {True, False}  # some rows left the batch early
    b = collate_prompts(tokenizer, prompts)
    g = generate(tiny_model, b.input_ids, b.attention_mask, b.position_ids, 12, 1.0, tokenizer.eos_token_id,
                 tokenizer.pad_token_id, torch.Generator().manual_seed(3))
    for i in range(len(prompts)):
        ids = g.response[i].tolist()
        n = ids.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in ids else len(ids)
        assert all(t == tokenizer.pad_token_id for t in ids[n:])  # padding after the EOS
        assert (g.logprobs[i, n:] == 0).all()
        seq = torch.tensor([encode_prompt(tokenizer, prompts[i]) + ids[:n]])
        with torch.no_grad():
            logits = tiny_model(input_ids=seq).logits[0, -n - 1:-1]  # (n, V)
        full = torch.log_softmax(logits.float(), -1).gather(1, torch.tensor(ids[:n])[:, None]).squeeze(1)
        assert torch.allclose(g.logprobs[i, :n], full, atol=tol(precision, 1e-5, 5e-3))


def bigram_model(model, tokenizer, table: dict[str, dict[str, float]]):
    """Turn ``model`` into a known bigram LM: p(next | previous token) from ``table`` (single-token
    words; the rest of each row's mass spread evenly), uniform after any other token. Returns
    (log-probability matrix (V, V), hook handle)."""
    V = len(tokenizer)

    def tid(word: str) -> int:
        [i] = tokenizer(word, add_special_tokens=False)["input_ids"]
        return i

    logp = torch.full((V, V), -math.log(V))
    for prev, nexts in table.items():
        row = torch.full((V,), (1.0 - sum(nexts.values())) / (V - len(nexts)))
        for word, p in nexts.items():
            row[tid(word)] = p
        logp[tid(prev)] = row.log()

    def replace_logits(module, args, kwargs, out):
        out["logits"] = logp[kwargs["input_ids"]]  # log-probabilities are logits that need no normalising
        return out

    return logp, model.register_forward_hook(replace_logits, with_kwargs=True)


BIGRAMS = {" cat": {" times": 0.6, " word": 0.3}, " dog": {" word": 0.6, " times": 0.3},
           " times": {" 1": 0.6}, " 1": {" 2": 0.6}}


def test_corpus_loss_is_the_token_weighted_nll_of_bos_text_eos(tiny_model, tokenizer):
    logp, hook = bigram_model(tiny_model, tokenizer, BIGRAMS)
    texts = ["the cat times 1 2", "the dog word", "the cat word the dog"]  # different lengths: token-weighted
    loss = corpus_loss(tiny_model, tokenizer, texts, batch_size=2)
    hook.remove()
    nll, n = 0.0, 0
    for t in texts:
        seq = [tokenizer.bos_token_id] + tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        nll -= sum(float(logp[a, b]) for a, b in zip(seq, seq[1:]))  # BOS is context only, EOS a target
        n += len(seq) - 1
    assert loss == pytest.approx(nll / n, rel=1e-5)


def test_choice_accuracy_sums_choice_logprobs_given_the_context(tiny_model, tokenizer):
    _, hook = bigram_model(tiny_model, tokenizer, BIGRAMS)
    items = [
        # the context decides: " times" after cat, " word" after dog (wrong with the context ignored,
        # or with the scored positions shifted by one into the context: single-token choices tie)
        {"context": "the cat", "choices": [" word", " times"], "answer": 1},
        {"context": "the dog", "choices": [" word", " times", " the"], "answer": 0},
        # TOTAL log-likelihood: 0.6^3 = 0.216 < 0.3, although the per-token mean prefers the long choice
        {"context": "the cat", "choices": [" times 1 2", " word"], "answer": 1},
        # a labelled answer the model disagrees with: counted wrong
        {"context": "the cat", "choices": [" times", " word"], "answer": 1},
    ]
    acc = choice_accuracy(tiny_model, tokenizer, items, batch_size=3)  # batches cut across items
    hook.remove()
    assert acc == 0.75


def test_choice_accuracy_of_no_items_is_no_figure(tiny_model, tokenizer):
    """Issue 22: with no items it returned 0.0, which the report showed as a measured 0.0 %."""
    with pytest.raises(ValueError, match="at least one item"):
        choice_accuracy(tiny_model, tokenizer, [])


def test_set_dropout(tokenizer):
    m = build_causal_lm(ModelConfig(n_layer=2, n_embd=32, n_head=2, n_positions=32, dropout=0.3), tokenizer)
    set_dropout(m, 0.2)
    assert {mod.p for mod in m.modules() if isinstance(mod, torch.nn.Dropout)} == {0.2}
    assert m.config.resid_pdrop == 0.2
