"""A team's own Hugging Face models: loading, chat-template prompts, an RM with another tokenizer
in PPO, and where the models may live (inputs.models)."""

from __future__ import annotations

import copy
import json
import shutil

import pytest
import torch

from instructgpt.config import ConfigError
from instructgpt.data import IGNORE_INDEX, collate_sft, encode_prompt, encode_sft
from instructgpt.models import (
    check_model_path,
    load_causal_lm,
    load_tokenizer,
    same_tokenizer,
    save_model,
)
from instructgpt.reward_model import RewardModel
from instructgpt.scoring import context_length, score_pairs
from instructgpt.text import prompt_context
from tests.helpers import same_weights
from tests.workspace import repo_params, stage_dir, write_project


def _ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


# -- loading ---------------------------------------------------------------------------------------

def test_team_llama_loads_with_a_pad_token_and_its_template(team_models):
    from transformers import LlamaForCausalLM

    cfg = json.loads((team_models["policy"] / "tokenizer_config.json").read_text())
    assert "pad_token" not in cfg and "chat_template" in cfg  # as the team shipped it
    model, tok = load_causal_lm(team_models["policy"])
    assert isinstance(model, LlamaForCausalLM)
    # no pad token: its UNK becomes the pad (distinct from EOS), no embedding row is added
    assert tok.pad_token == "<unk>" and tok.pad_token_id not in (tok.eos_token_id, tok.bos_token_id)
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == 512
    assert model.config.pad_token_id == tok.pad_token_id and tok.padding_side == "left"
    assert tok.chat_template


def test_tokenizer_without_pad_or_unk_gets_a_new_pad_row_the_same_on_every_load(team_models, tmp_path):
    d = tmp_path / "no-pad"
    shutil.copytree(team_models["rm"], d)
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg.pop("pad_token")
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    torch.manual_seed(1)
    a, tok = load_causal_lm(d)
    torch.manual_seed(2)  # whatever the caller's RNG state: the new row is drawn from a fixed seed
    b, _ = load_causal_lm(d)
    assert tok.pad_token == "<|pad|>" and tok.pad_token_id == 400 and tok.pad_token_id != tok.eos_token_id
    assert a.get_input_embeddings().weight.shape[0] == 401
    assert same_weights(a, b)
    rm = RewardModel.from_causal_lm(d)  # the RM's backbone fits the same tokenizer
    assert torch.equal(rm.backbone.get_input_embeddings().weight, a.get_input_embeddings().weight)


# -- chat templates --------------------------------------------------------------------------------

def test_context_is_the_chat_template_and_bos_is_never_doubled(team_models, log_prompts):
    for key in ("policy", "rm"):
        tok = load_tokenizer(team_models[key])
        for p in log_prompts[:10]:
            want = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True)
            assert prompt_context(tok, p) == want
            ids = encode_prompt(tok, p)
            assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
            if key == "policy":  # the template writes <s> itself: its ids are exactly the template's
                assert want.startswith("<s>") and ids == _ids(tok, want)
            else:  # no BOS in this template: one is added in front
                assert ids == [tok.bos_token_id] + _ids(tok, want)


def test_chat_template_cut_keeps_the_template_and_fewshot_turns(team_models, log_prompts):
    tok = load_tokenizer(team_models["policy"])
    long = max(log_prompts, key=len)
    full = encode_prompt(tok, long)
    head = encode_prompt(tok, "")[:2]  # <s> <|user|>
    tail = _ids(tok, "\n<|assistant|>\n")
    cut = encode_prompt(tok, long, max_len=len(full) - 5)
    assert len(cut) == len(full) - 5
    assert cut[:2] == head and cut[-len(tail):] == tail and cut.count(tok.bos_token_id) == 1
    shots = [(log_prompts[0], "Sure."), (log_prompts[1], "Done.")]
    ctx = prompt_context(tok, long, shots)
    assert ctx == tok.apply_chat_template(
        [{"role": "user", "content": log_prompts[0]}, {"role": "assistant", "content": "Sure."},
         {"role": "user", "content": log_prompts[1]}, {"role": "assistant", "content": "Done."},
         {"role": "user", "content": long}], tokenize=False, add_generation_prompt=True)
    assert encode_prompt(tok, long, shots=shots) == _ids(tok, ctx)
    assert encode_prompt(tok, long, max_len=len(full), shots=shots) == full  # shots go first when too long


def test_sft_encoding_with_the_chat_template(team_models, log_prompts):
    tok = load_tokenizer(team_models["policy"])
    prompt, response = log_prompts[0], "Open Settings > API keys and click Rotate."
    ids, labels = encode_sft(tok, prompt, response, 512)
    ctx = _ids(tok, prompt_context(tok, prompt))
    assert ids == ctx + _ids(tok, response) + [tok.eos_token_id]
    assert labels == [IGNORE_INDEX] * len(ctx) + ids[len(ctx):]
    # too long: the response keeps its start, the prompt its template tokens
    ids, labels = encode_sft(tok, prompt, response * 20, 40)
    assert len(ids) == 40 and ids[:2] == ctx[:2] and tok.convert_ids_to_tokens(ids).count("<|assistant|>") == 1
    b = collate_sft(tok, [(prompt, response), (log_prompts[1], "It is a bug report.")], 512)
    assert (b.attention_mask == 0).any()  # left-padded with the pad token (UNK here)
    assert (b.input_ids[b.attention_mask == 0] == tok.pad_token_id).all()


# -- an RM with another tokenizer in PPO -----------------------------------------------------------

def _ppo_cfg(**kw):
    from instructgpt.train.ppo import PPOConfig

    return PPOConfig(**{**dict(steps=1, batch_size=4, mini_batch_size=2, ppo_epochs=1, lr=1e-3, max_new_tokens=6,
                               no_eos_penalty=None, sample_every=1, show_progress=False), **kw})


def test_ppo_step_scores_rollout_text_with_the_rm_tokenizer(team_models, log_prompts):
    from instructgpt.train.ppo import train_ppo

    policy, tok = load_causal_lm(team_models["policy"], dropout=0.0)
    before = copy.deepcopy(policy.state_dict())
    rm_tok = load_tokenizer(team_models["rm"])
    rm = RewardModel.from_causal_lm(team_models["rm"], seed=0).eval()
    assert not same_tokenizer(tok, rm_tok)
    seen = []
    out = train_ppo(policy, None, None, rm, tok, log_prompts[:4], [], _ppo_cfg(),
                    sample_log=lambda samples, step: seen.extend(samples), monitor_prompts=log_prompts[4:6],
                    reward_tokenizer=rm_tok)
    assert out["ppo/reward_retokenised"] == 1.0
    assert not same_weights(before, policy)  # a real step
    # each score is the RM's score of (prompt, decoded response) in the RM's own format
    # (the monitor's samples: step 0 and the last, two prompts each)
    assert len(seen) == 4
    pairs = [(s["prompt"], s["response"]) for s in seen]
    want = score_pairs(rm, rm_tok, pairs, max_len=context_length(rm))
    assert torch.allclose(torch.tensor([s["rm_score"] for s in seen]), want, atol=1e-5)


def test_same_tokenizer_reads_the_rollout_ids_as_before(team_models, log_prompts):
    """An RM whose tokenizer tokenizes like the policy's: no re-encoding, the value model is the
    RM's copy, results identical to passing no RM tokenizer at all (the demo's path)."""
    from instructgpt.train.ppo import train_ppo

    results = []
    for rm_tok in (None, load_tokenizer(team_models["policy"])):
        policy, tok = load_causal_lm(team_models["policy"], dropout=0.0)
        rm = RewardModel.from_causal_lm(team_models["policy"], seed=0)
        out = train_ppo(policy, None, None, rm, tok, log_prompts[:4], [], _ppo_cfg(), reward_tokenizer=rm_tok)
        results.append((out, policy.state_dict()))
    (a, wa), (b, wb) = results
    assert a == b and b["ppo/reward_retokenised"] == 0.0
    assert same_weights(wa, wb)


def test_stage_starts_the_value_model_from_the_policy_when_tokenizers_differ(team_models, tmp_path, monkeypatch):
    from tasks.ppo import load_models

    monkeypatch.chdir(tmp_path)
    policy, tok = load_causal_lm(team_models["policy"])
    save_model(policy, tok, tmp_path / "outputs/sft/model")
    for rm_dir, different in ((team_models["rm"], True), (tmp_path / "outputs/sft/model", False)):
        rm = RewardModel.from_causal_lm(rm_dir, seed=3)
        rm.save_pretrained(tmp_path / "outputs/rm/model", load_tokenizer(rm_dir))
        _, _, value, reward, _, rm_tok = load_models(seed=0)
        assert (rm_tok is not None) == different
        want = policy.base_model.state_dict() if different else rm.backbone.state_dict()
        got = value.backbone.state_dict()
        assert same_weights(got, want)
        assert torch.equal(value.head.weight, rm.head.weight) != different  # fresh head vs the RM's


# -- where the models live -------------------------------------------------------------------------

def test_model_paths_must_lie_inside_inputs_models(team_models, tmp_path):
    models = team_models["models"]
    assert check_model_path(team_models["rm"], models, "rm.model_path") == team_models["rm"]
    with pytest.raises(ConfigError, match=r"rm.model_path=.* lies outside inputs.models=.*put the model there"):
        check_model_path(team_models["rm"], tmp_path / "models", "rm.model_path")
    (tmp_path / "models/empty").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a Hugging Face model directory"):
        check_model_path(tmp_path / "models/empty", tmp_path / "models", "base.model_path")


@pytest.mark.parametrize("stage", ["base", "rm"])
def test_stage_refuses_a_model_outside_inputs_models(stage, team_models, tmp_path, monkeypatch, capsys):
    """Exit code 2 (bad params) with the message, before the stage reads anything else."""
    import importlib

    from tasks.shell.run import EXIT_CONFIG, main

    params = repo_params()
    params["inputs"]["models"] = "models"
    params[stage]["model_path"] = str(team_models["rm"])  # a real model, but elsewhere
    write_project(tmp_path, params)
    (tmp_path / "models").mkdir()
    with stage_dir(tmp_path, monkeypatch):
        code = main(stage, importlib.import_module(f"tasks.{stage}").body)
    assert code == EXIT_CONFIG
    err = capsys.readouterr()
    assert f"{stage}.model_path=" in err.out + err.err and "inputs.models='models'" in err.out + err.err
    assert not (tmp_path / "outputs" / stage).exists()
