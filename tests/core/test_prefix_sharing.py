"""Each prompt run once for its K responses (instructgpt.prefix_sharing) gives the plain forward's
rewards and gradients, on every architecture it is used for; others take the plain forward."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModel, OPTConfig

from instructgpt.data import collate_pairs
from instructgpt.prefix_sharing import (
    SHARED_PREFIX_ARCHS,
    collate_prefix,
    pair_rewards,
    prefix_rewards,
    supports_shared_prefix,
)
from instructgpt.reward_model import RewardModel

from .conftest import tol
from .test_archs import make_dir

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")

# prompts of different lengths (so they are left-padded differently), responses of different
# lengths (right-padded), two prompts with several responses
PAIRS = [
    ("hi", "cat"),
    ("repeat the word cat 2 times please", "cat cat"),
    ("hi", "dog dog dog red blue"),
    ("repeat the word cat 2 times please", "x"),
    ("a much longer prompt with many many words in it here", "blue sun tree"),
    ("hi", "milk"),
]


def plain(rm: RewardModel, tokenizer, pairs, max_len: int) -> torch.Tensor:
    return rm(**collate_pairs(tokenizer, pairs, max_len).model_inputs())


def with_nonzero_buffers(rm: RewardModel) -> RewardModel:
    """The RM's own buffers (bias, ...) away from their defaults, so a path that forgot one differs."""
    with torch.no_grad():
        for buf in rm.buffers(recurse=False):
            buf.add_(0.37)
    return rm


@pytest.fixture(scope="module", params=SHARED_PREFIX_ARCHS)
def arch_rm(request, tokenizer, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / "m"
    make_dir(request.param, tokenizer, path)
    return request.param, path


def test_collate_groups_responses_by_prompt(tokenizer):
    b = collate_prefix(tokenizer, PAIRS, 64)
    assert b.owner.tolist() == [0, 1, 0, 1, 2, 0]
    assert b.prompt_ids.shape[0] == 3 and b.response_ids.shape[0] == len(PAIRS)
    # left-padded prompts, right-padded responses; prompt + response = the plain sequence
    assert b.prompt_mask[:, -1].all() and b.response_mask[:, 0].all()
    full = collate_pairs(tokenizer, PAIRS, 64)
    for n in range(len(PAIRS)):
        joined = torch.cat([b.prompt_ids[b.owner[n]][b.prompt_mask[b.owner[n]].bool()],
                            b.response_ids[n][b.response_mask[n].bool()]])
        assert joined.tolist() == full.input_ids[n][full.attention_mask[n].bool()].tolist()


def test_rewards_match_the_plain_forward(arch_rm, tokenizer, precision):
    arch, path = arch_rm
    rm = with_nonzero_buffers(RewardModel.from_causal_lm(path, seed=3)).eval()
    with torch.no_grad():
        shared = prefix_rewards(rm, collate_prefix(tokenizer, PAIRS, 64))
        ref = plain(rm, tokenizer, PAIRS, 64)
    assert supports_shared_prefix(rm)
    # bf16: measured up to 1.0e-3 on rewards of ~2 (the head runs in fp32; the backbone's rounding)
    assert torch.allclose(shared, ref, atol=tol(precision, 1e-5, 5e-3), rtol=0), (arch, (shared - ref).abs().max())
    assert ref.std() > 1e-3  # the rewards differ from pair to pair: the comparison means something


def test_truncated_pairs_keep_their_own_prompt(arch_rm, tokenizer, precision):
    """max_len cuts long pairs: a cut prompt is another prompt, and rewards still match."""
    arch, path = arch_rm
    rm = RewardModel.from_causal_lm(path, seed=3).eval()
    pairs = [("repeat the word cat 2 times please", "cat"),
             ("repeat the word cat 2 times please", " ".join(["dog"] * 12))]
    b = collate_prefix(tokenizer, pairs, 16)
    assert b.prompt_ids.shape[0] == 2  # the long response cut the prompt of the second pair
    with torch.no_grad():
        assert torch.allclose(prefix_rewards(rm, b), plain(rm, tokenizer, pairs, 16), atol=tol(precision, 1e-5, 5e-3),
                              rtol=0)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_gradients_match_the_plain_forward(arch, tokenizer, tmp_path, precision):
    """Training through the cache: the prompt's gradient is the sum over its responses."""
    make_dir(arch, tokenizer, tmp_path / "m")
    grads = []
    for fn in (lambda rm: prefix_rewards(rm, collate_prefix(tokenizer, PAIRS, 64)),
               lambda rm: plain(rm, tokenizer, PAIRS, 64)):
        rm = RewardModel.from_causal_lm(tmp_path / "m", seed=3).train()  # dropout 0: deterministic
        weights = torch.linspace(-1.0, 1.0, len(PAIRS))
        (fn(rm) * weights).sum().backward()
        grads.append({n: p.grad for n, p in rm.named_parameters()})
    shared, ref = grads
    assert shared.keys() == ref.keys() and all(g is not None for g in ref.values())
    for name in ref:
        assert torch.allclose(shared[name], ref[name], atol=tol(precision, 1e-5, 2e-2),
                              rtol=tol(precision, 1e-4, 5e-2)), (name, (shared[name] - ref[name]).abs().max())


def test_other_architectures_take_the_plain_forward(tokenizer):
    cfg = OPTConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, ffn_dim=64,
                    num_attention_heads=2, max_position_embeddings=128, word_embed_proj_dim=32,
                    pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    rm = RewardModel(AutoModel.from_config(cfg)).eval()
    assert not supports_shared_prefix(rm)
    with torch.no_grad():
        assert torch.equal(pair_rewards(rm, tokenizer, PAIRS, 64), plain(rm, tokenizer, PAIRS, 64))


def test_pair_rewards_takes_the_shared_path(tokenizer, tiny_model):
    rm = RewardModel.from_causal_lm(tiny_model, seed=1).eval()
    with torch.no_grad():
        assert torch.equal(pair_rewards(rm, tokenizer, PAIRS, 64),
                           prefix_rewards(rm, collate_prefix(tokenizer, PAIRS, 64)))


def test_gradient_checkpointing_takes_the_plain_forward(tokenizer, tiny_model):
    rm = RewardModel.from_causal_lm(tiny_model, seed=1)
    enable = getattr(rm.backbone, "activation_checkpointing_enable", None) or rm.backbone.gradient_checkpointing_enable
    enable()  # it turns the KV cache off
    assert not supports_shared_prefix(rm)
    rm.train()
    torch.manual_seed(0)
    rewards = pair_rewards(rm, tokenizer, PAIRS, 64)
    torch.manual_seed(0)
    assert torch.equal(rewards, plain(rm, tokenizer, PAIRS, 64))
