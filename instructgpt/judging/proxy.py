"""Proxy figures: what can be computed from the models alone, whatever the judge.

None of them is a judgement of quality; each stands in for one (and can be gamed: PPO raises the
reward-model score by construction). They are always reported, labelled as proxies:

- ``rm_score``: the reward model's score of the model's test responses (a proxy: the RM was
  trained on the training labelers' rankings and is what PPO optimises);
- ``kl_from_sft``: KL(model || SFT) per response on the model's own test responses, at the
  evaluation's sampling temperature (mean of log π(y|x) − log π_SFT(y|x) over sampled y, the
  estimator PPO's penalty uses): how far the model moved from the SFT model;
- ``response_words``: mean response length in words; ``eos_rate``: share of responses that
  ended with EOS within ``max_new_tokens``;
- ``demo_loss``: per-token loss on held-out demonstrations (those of the evaluation's
  test-split prompts: users never seen by any training stage; SFT trains on sft/train and
  selects on sft/valid);
- ``corpus_loss`` and ``nlp_task_accuracy`` (``instructgpt.evaluation``): the alignment tax.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.generation import Sample

SOURCES = {
    "rm_score": "proxy: reward-model score (trained on the training labelers' rankings; PPO maximises it)",
    "kl_from_sft": "proxy: KL(model || SFT) per response, nats, on the model's own test responses",
    "response_words": "proxy: mean response length, words",
    "eos_rate": "proxy: share of responses that ended with EOS",
    "demo_loss": "proxy: per-token loss on held-out demonstrations (test-split prompts)",
    "corpus_loss": "proxy: held-out corpus loss (alignment tax)",
    "nlp_task_accuracy": "proxy: public NLP task accuracy (alignment tax)",
}


def load_reward_scorer(path: str | os.PathLike):
    """(reward model, ITS OWN tokenizer) from a reward-model directory: the RM may have another
    base model and tokenizer than the policy, so text is always re-tokenized for it."""
    from instructgpt.models import load_tokenizer
    from instructgpt.reward_model import RewardModel

    rm = RewardModel.from_pretrained(path)
    tokenizer = load_tokenizer(path)
    if tokenizer.pad_token_id is None:  # padding is masked: any id will do for scoring
        tokenizer.pad_token = tokenizer.eos_token
    rm.eval()
    return rm, tokenizer


def rm_scores(rm, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], responses: Sequence[str],
              batch_size: int = 16, max_len: int | None = None) -> list[float]:
    """r(x, y) (bias included) of each (prompt, response) string pair, tokenized with ``tokenizer``
    (the RM's own). ``max_len`` defaults to the RM's context length."""
    from instructgpt.train.reward import score_pairs

    if max_len is None:
        cfg = rm.backbone.config
        max_len = getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or 256
    with torch.no_grad():
        return [float(x) for x in score_pairs(rm, tokenizer, list(zip(prompts, responses)), batch_size, max_len)]


def score_texts(rm_path: str | os.PathLike, prompts: Sequence[str], responses: Sequence[str],
                batch_size: int = 16) -> list[float]:
    """Reward-model scores of prompt and response STRINGS, with the RM's own tokenizer."""
    rm, tokenizer = load_reward_scorer(rm_path)
    return rm_scores(rm, tokenizer, prompts, responses, batch_size)


@torch.no_grad()
def response_logprobs(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                      response_ids: Sequence[Sequence[int]], temperature: float, max_prompt_len: int | None = None,
                      batch_size: int = 32) -> list[float]:
    """Σ_t log softmax(logits / temperature)[y_t] of each response (its generated token ids, EOS
    included when it ended) given its prompt, the prompt encoded as for sampling."""
    from instructgpt.data import collate_prompts
    from instructgpt.models import position_ids_from_mask
    from instructgpt.train.ppo import gather_logprobs, response_logits

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    out: list[float] = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start: start + batch_size])
        ids = [list(r) for r in response_ids[start: start + batch_size]]
        q = collate_prompts(tokenizer, chunk, max_prompt_len)
        T = max(1, max(len(r) for r in ids))
        resp = torch.full((len(ids), T), tokenizer.pad_token_id, dtype=torch.long)  # (B, T_r) right-padded
        mask = torch.zeros(len(ids), T, dtype=torch.long)
        for i, r in enumerate(ids):
            resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, : len(r)] = 1
        input_ids = torch.cat([q.input_ids, resp], 1).to(device)
        attention = torch.cat([q.attention_mask, mask], 1).to(device)
        logits = response_logits(model, input_ids, attention, position_ids_from_mask(attention),
                                 q.input_ids.shape[1], temperature)  # (B, T_r, V)
        lp = gather_logprobs(logits, resp.to(device)) * mask.to(device)  # (B, T_r)
        out += lp.sum(1).tolist()
    model.train(was_training)
    return out


def kl_from_reference(model: PreTrainedModel, reference: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                      samples: Sequence[Sample], temperature: float, max_prompt_len: int | None = None,
                      batch_size: int = 32) -> float:
    """Mean over ``samples`` (drawn from ``model``) of log π(y|x) − log π_ref(y|x), at ``temperature``:
    a sample estimate of KL(π || π_ref) per response, in nats."""
    if not samples:
        return 0.0
    prompts = [s.prompt for s in samples]
    ids = [s.response_ids for s in samples]
    own = response_logprobs(model, tokenizer, prompts, ids, temperature, max_prompt_len, batch_size)
    ref = response_logprobs(reference, tokenizer, prompts, ids, temperature, max_prompt_len, batch_size)
    return sum(a - b for a, b in zip(own, ref)) / len(samples)


def response_words(texts: Sequence[str]) -> float:
    """Mean length in whitespace-separated words."""
    return sum(len(t.split()) for t in texts) / max(len(texts), 1)


def eos_rate(samples: Sequence[Sample]) -> float:
    """Share of samples that ended with EOS."""
    return sum(s.ended_with_eos for s in samples) / max(len(samples), 1)


def model_context(model: PreTrainedModel) -> int | None:
    """The model's context length (None when its config does not say)."""
    return getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)


def demonstration_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase,
                       pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> float:
    """Per-token loss of (prompt, demonstration) pairs (response tokens and EOS), SFT's own loss."""
    from instructgpt.train.sft import sft_loss

    if not pairs:
        return float("nan")
    return sft_loss(model, tokenizer, list(pairs), max_len=model_context(model) or 256, batch_size=batch_size)
