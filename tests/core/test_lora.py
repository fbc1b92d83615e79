"""LoRA adapters (peft) in SFT, the reward model and PPO: only the adapters (and the value and
reward heads) train, π^SFT is the policy with its adapter disabled and equals an independent copy
of the SFT model, the saved models are merged plain models, and the default (lora null) holds
the four full copies it always did."""

from __future__ import annotations

import copy

import pytest
import torch
from transformers import AutoModelForCausalLM

from instructgpt.config import ConfigError, from_dict
from instructgpt.device import weights_changed
from instructgpt.lora import LoRAConfig, add_adapter, adapter_disabled, has_adapter, held_memory, merge_adapter
from instructgpt.models import ModelConfig, build_causal_lm, save_model
from instructgpt.reward_model import RewardModel
from instructgpt.train.ppo import KLConfig, PPOConfig, advantages, ppo_update, rollout, score, train_ppo
from instructgpt.train.ppo.models import build_models, finish_models
from instructgpt.train.ppo.rollout import reference_logprobs, token_logprobs
from instructgpt.train.ppo.update import make_ppo_optimizer
from instructgpt.train.reward import RewardConfig, evaluate_rm, train_reward_model
from instructgpt.train.sft import SFTConfig, train_sft
from tests.helpers import same_weights

from .conftest import make_pairs, tol
from .test_archs import make_dir
from .test_ppo_effects import PROMPTS
from .test_train import make_comparisons

# the bf16 tier: every test here also runs inside a bf16 autocast scope (conftest.precision)
pytestmark = pytest.mark.usefixtures("precision")

LORA = LoRAConfig(r=4, alpha=8.0)


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], m: torch.nn.Module) -> set[str]:
    return {k for k, v in m.state_dict().items() if not torch.equal(before[k], v)}


def _kick(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every adapter a non-zero B (a fresh adapter computes exactly as its base)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    weights_changed()  # written in place, not by an optimizer: autocast must not serve B = 0 (bf16 tier)


def test_config_is_read_from_params_and_checked():
    cfg = from_dict(SFTConfig, {"lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"]}}, "sft")
    assert cfg.lora == LoRAConfig(r=4, alpha=8.0, target_modules=["c_attn"])
    assert from_dict(SFTConfig, {}, "sft").lora is None  # the default: full fine-tuning
    assert from_dict(RewardConfig, {"lora": None}, "rm").lora is None
    for bad, msg in (({"r": 0}, "lora.r"), ({"alpha": 0}, "lora.alpha"), ({"dropout": 1.0}, "lora.dropout"),
                     ({"target_modules": "c_attn"}, "lora.target_modules"), ({"target_modules": []}, "list")):
        with pytest.raises(ConfigError, match=msg):
            LoRAConfig(**bad)
    for cls, section in ((SFTConfig, "sft"), (RewardConfig, "rm"), (PPOConfig, "ppo")):
        with pytest.raises(ConfigError, match=f"{section}.lora=True: give a mapping"):
            from_dict(cls, {"lora": True}, section)
    with pytest.raises(ConfigError, match="ppo.lora.dropout=0.1 must be 0"):
        from_dict(PPOConfig, {"lora": {"dropout": 0.1}}, "ppo")


def test_a_target_the_model_lacks_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError, match=r"sft.lora.target_modules=\['q_proj'\] does not fit this gpt2"):
        add_adapter(tiny_model, LoRAConfig(target_modules=["q_proj"]), where="sft.lora")


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gpt_neox", "qwen2"])
def test_merged_weights_reload_with_plain_transformers(arch, tokenizer, tmp_path, precision):
    """Per architecture (peft's default targets): a fresh adapter changes nothing, a disabled one
    gives the base, the merged model saved and reloaded by plain transformers gives the adapted
    model's logits, and the KV-cache sampling pass still matches a full forward."""
    make_dir(arch, tokenizer, tmp_path / "base")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base").eval()
    base = copy.deepcopy(model)
    x = torch.randint(3, len(tokenizer), (2, 12))
    adapter = add_adapter(model, LoRAConfig(r=4))
    assert has_adapter(model) and type(model) is type(base)
    with torch.no_grad():
        assert torch.equal(model(x).logits, base(x).logits)  # B = 0
        _kick(model)
        adapted = model(x).logits
        assert (adapted - base(x).logits).abs().max() > 1e-3
        with adapter_disabled(model):
            assert torch.equal(model(x).logits, base(x).logits)
        cfg = PPOConfig(batch_size=3, mini_batch_size=3, max_new_tokens=8, temperature=0.7)
        roll = rollout(model, tokenizer, PROMPTS[:3], cfg, torch.Generator().manual_seed(0))
        full = token_logprobs(model, roll, cfg.temperature)
        assert (full - roll.logprobs)[roll.mask].abs().max() < tol(precision, 1e-5, 5e-3)
    assert merge_adapter(adapter) is model and not has_adapter(model)
    save_model(model, tokenizer, tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    assert set(reloaded.state_dict()) == set(base.state_dict())
    with torch.no_grad():
        # bf16: W·x + B·(A·x) and (W + B·A)·x round differently
        assert torch.allclose(reloaded(x).logits.float(), adapted.float(), atol=tol(precision, 1e-5, 2e-2))


def test_sft_with_lora_trains_the_adapter_and_returns_the_merged_model(tiny_model, tokenizer):
    before = _state(tiny_model)
    cfg = SFTConfig(epochs=3, lr=3e-2, batch_size=16, warmup=2, dropout=0.1, max_len=64, show_progress=False,
                    lora=LoRAConfig(r=4, alpha=8.0, dropout=0.1))
    m = train_sft(tiny_model, tokenizer, make_pairs(64, 1), make_pairs(16, 2), cfg)
    # measured 5.70 -> 5.55: rank-4 updates of the attention alone, on a random tiny model
    assert m["valid/loss"] < m["valid/loss_before"] - 0.1
    assert not has_adapter(tiny_model) and set(tiny_model.state_dict()) == set(before)
    # only the adapted projections moved (merged into them); embeddings, MLPs, norms untouched
    assert _changed(before, tiny_model) == {f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)}
    assert all(p.requires_grad for p in tiny_model.parameters())
    assert tiny_model.config.resid_pdrop == 0.0


def test_rm_with_lora_trains_the_adapter_and_head_and_saves_merged(model_dir, tokenizer, tmp_path):
    rm = RewardModel.from_causal_lm(model_dir)
    before = _state(rm)
    train, valid = make_comparisons(24, 3), make_comparisons(8, 4)
    cfg = RewardConfig(epochs=2, lr=2e-2, batch_size=4, max_len=64, show_progress=False, lora=LORA)
    m = train_reward_model(rm, tokenizer, train, valid, make_pairs(6, 9), cfg)
    assert m["steps"] == 12 and m["valid/accuracy"] > 0.7  # measured 0.76 (0.38 before training)
    assert abs(m["demo/mean_reward"]) < 1e-4  # normalised after the merge: on what is saved
    assert not has_adapter(rm)
    changed = _changed(before, rm)
    assert {"head.weight", "head.bias"} <= changed
    assert {k for k in changed if k.startswith("backbone.")} == {f"backbone.h.{i}.attn.c_attn.weight"
                                                                 for i in range(2)}
    rm.save_pretrained(tmp_path / "rm", tokenizer)
    again = RewardModel.from_pretrained(tmp_path / "rm")
    assert evaluate_rm(again, tokenizer, valid, 8, 64) == pytest.approx(evaluate_rm(rm, tokenizer, valid, 8, 64))


def _ppo_cfg(**kw) -> PPOConfig:
    base = dict(steps=2, batch_size=8, mini_batch_size=4, ppo_epochs=2, lr=1e-2, max_new_tokens=6,
                no_eos_penalty=None, kl=KLConfig(kl_coef=0.1), show_progress=False, seed=0, lora=LORA)
    return PPOConfig(**{**base, **kw})


def test_lora_ppo_reference_is_the_frozen_base_and_only_adapters_train(tiny_model, tokenizer, model_dir, precision):
    """The step functions by hand for three PPO iterations: π^SFT (the policy module, adapter
    disabled) gives an independent copy's log-probabilities, r_θ (the value model's backbone,
    adapter disabled) an independent RM's rewards, while the adapters and the value head move."""
    cfg = _ppo_cfg()
    sft_copy, rm_copy = copy.deepcopy(tiny_model).eval(), RewardModel.from_causal_lm(model_dir, seed=1).eval()
    policy, rm = copy.deepcopy(tiny_model), RewardModel.from_causal_lm(model_dir, seed=1)
    models = build_models(policy, None, None, rm, None, cfg, torch.device("cpu"))
    assert models.ref_policy is policy and models.value_model.backbone is rm.backbone  # no second copy
    p_before, v_before = _state(policy), _state(models.value_model)
    optimizer = make_ppo_optimizer(policy, models.value_model, cfg)
    gen = torch.Generator().manual_seed(0)
    for step in range(3):
        roll = rollout(policy, tokenizer, PROMPTS[:8], cfg, gen)
        scored = score(roll, models.ref_policy, models.value_model, rm, tokenizer, cfg, 0.1)
        with torch.no_grad():
            assert torch.allclose(scored.ref_logprobs, token_logprobs(sft_copy, roll, cfg.temperature), atol=1e-6)
            assert torch.allclose(scored.rm_scores, rm_copy(roll.input_ids, roll.attention_mask,
                                                            roll.position_ids), atol=1e-6)
            # the sampling pass (KV cache through the LoRA layers) matches a full forward
            full = token_logprobs(policy, roll, cfg.temperature)
            assert (full - roll.logprobs)[roll.mask].abs().max() < tol(precision, 1e-5, 5e-3)
        adv, returns = advantages(scored.values, scored.rewards, roll.mask, cfg)
        ppo_update(policy, models.value_model, optimizer, roll, scored.values, adv, returns, cfg, step)
    with torch.no_grad():  # the policy has moved away from π^SFT, which has not moved
        assert (reference_logprobs(policy, roll, 1.0) - token_logprobs(policy, roll, 1.0)).abs().max() > 1e-3
    assert _changed(p_before, policy) and all("lora_" in k for k in _changed(p_before, policy))
    v_changed = _changed(v_before, models.value_model)
    assert {"head.weight", "head.bias"} <= v_changed and all(k.startswith("head.") or "lora_" in k
                                                             for k in v_changed)
    finish_models(models)
    assert not has_adapter(policy) and not has_adapter(rm)
    assert same_weights(rm, rm_copy)  # RM is itself


def test_lora_ppo_runs_and_returns_the_merged_policy(tiny_model, tokenizer, model_dir, tmp_path):
    policy, rm = copy.deepcopy(tiny_model), RewardModel.from_causal_lm(model_dir, seed=1)
    before, rm_before = _state(policy), _state(rm)
    logged: list[dict] = []
    samples: list[list[dict]] = []
    # with the EMA on: it averages the adapter alone (0.9·w + 0.1·w would nudge the frozen weights)
    m = train_ppo(policy, None, None, rm, tokenizer, PROMPTS, [], _ppo_cfg(steps=3, sample_every=1, ema_decay=0.9),
                  lambda d, s: logged.append(d), sample_log=lambda s, step: samples.append(s),
                  monitor_prompts=PROMPTS[:4])
    assert m["ppo/steps"] == 3 and len(samples) == 4  # step 0 (the SFT policy), then every step
    assert logged[0]["ppo/objective/kl"] == pytest.approx(0.0, abs=1e-5)  # first rollout: π == π^SFT
    assert logged[-1]["ppo/objective/kl"] > 1e-3
    assert not has_adapter(policy) and set(policy.state_dict()) == set(before)
    assert _changed(before, policy) == {f"transformer.h.{i}.attn.c_attn.weight" for i in range(2)}
    assert not _changed(rm_before, rm) and not has_adapter(rm)
    save_model(policy, tokenizer, tmp_path / "ppo")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "ppo")
    assert same_weights(reloaded, policy)


def test_ppo_memory_with_and_without_lora(tokenizer):
    """At the demo's shape (GPT-2 4×128): four full copies and two trained networks without LoRA;
    two copies and adapters + a value head with it."""
    shape = ModelConfig(arch="gpt2", n_layer=4, n_embd=128, n_head=4, n_positions=256)
    sft = build_causal_lm(shape, tokenizer)

    def held(lora: LoRAConfig | None) -> dict[str, float]:
        rm = RewardModel(copy.deepcopy(sft.base_model))
        models = build_models(copy.deepcopy(sft), None, None, rm, None, _ppo_cfg(lora=lora), torch.device("cpu"))
        return held_memory([models.policy, models.ref_policy, models.value_model, models.reward_model], unit=sft)

    full, lora = held(None), held(LoRAConfig(r=8))
    assert full["weights_copies"] == pytest.approx(4.0, abs=0.05)
    assert lora["weights_copies"] == pytest.approx(2.0, abs=0.05)
    assert lora["trainable_params"] < 0.05 * full["trainable_params"]
    assert lora["total_copies"] < 0.25 * full["total_copies"]


def test_lora_ppo_resumes_from_a_checkpoint_onto_the_same_weights(tiny_model, tokenizer, model_dir, tmp_path):
    """Checkpoints hold the policy and value model with their adapters: a run stopped after step 2
    and resumed lands on the uninterrupted run's merged policy."""
    def run(steps: int, ckpt) -> torch.nn.Module:
        policy = copy.deepcopy(tiny_model)
        train_ppo(policy, None, None, RewardModel.from_causal_lm(model_dir, seed=1), tokenizer, PROMPTS, [],
                  _ppo_cfg(steps=steps, checkpoint_dir=ckpt, checkpoint_every=1 if ckpt else 0))
        return policy

    straight = run(3, None)
    run(2, str(tmp_path / "ckpt"))
    resumed = run(3, str(tmp_path / "ckpt"))
    assert same_weights(resumed, straight)
    assert not torch.equal(straight.state_dict()["transformer.h.0.attn.c_attn.weight"],
                           tiny_model.state_dict()["transformer.h.0.attn.c_attn.weight"])
