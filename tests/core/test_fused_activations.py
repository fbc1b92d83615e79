"""GPT-2's composite tanh-GELU is swapped for torch's fused kernel of the same function."""

from __future__ import annotations

import copy

import torch
from transformers import AutoModelForCausalLM, GPT2Config
from transformers.activations import NewGELUActivation

from instructgpt.models import GELUTanh, fuse_activations, load_causal_lm, save_model
from instructgpt.reward_model import RewardModel
from tests.helpers import same_weights


def gelus(model: torch.nn.Module) -> list[type]:
    return [type(m) for m in model.modules() if type(m) in (NewGELUActivation, GELUTanh)]


def test_same_function_fused_kernel():
    x = torch.linspace(-6, 6, 1001)
    assert torch.allclose(GELUTanh()(x), NewGELUActivation()(x), atol=1e-6, rtol=0)


def test_models_from_the_library_use_the_fused_gelu(tokenizer, tmp_path):
    cfg = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                     pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    hf = AutoModelForCausalLM.from_config(cfg).eval()
    assert gelus(hf) == [NewGELUActivation] * 2  # what Hugging Face builds for "gelu_new"
    save_model(hf, tokenizer, tmp_path / "m")
    ours, _ = load_causal_lm(tmp_path / "m")
    assert gelus(ours) == [GELUTanh] * 2 and ours.config.activation_function == "gelu_new"
    assert gelus(RewardModel(copy.deepcopy(hf).base_model)) == [GELUTanh] * 2
    ids = torch.randint(0, len(tokenizer), (2, 12))
    with torch.no_grad():
        assert torch.allclose(ours(input_ids=ids).logits, hf(input_ids=ids).logits, atol=1e-5, rtol=0)
    # nothing saved changes: same weights, same config
    fused = fuse_activations(copy.deepcopy(hf))
    assert same_weights(fused, hf)
