"""r_θ(x, y) for (prompt, response) STRINGS, with a reward model and its own tokenizer.

The reward model may come from another base than the policy (``rm.model_path``), with another
tokenizer and another chat template. Whoever scores text with it (PPO when the tokenizers
differ, the evaluation, the MLflow reward-model server) goes through ``score_pairs``: each pair
is encoded exactly as the RM saw its training comparisons (``instructgpt.data.collate_pairs``:
[BOS] + the RM tokenizer's prompt context + response + EOS), so scores are comparable
everywhere.

    rm, tok = load_reward_model("outputs/rm/model")
    scores = score_pairs(rm, tok, [("list three colors .", "red , blue and green .")])  # (N,)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from instructgpt.data import collate_pairs
from instructgpt.models import load_tokenizer
from instructgpt.reward_model import RewardModel

__all__ = ["context_length", "load_reward_model", "score_pairs"]


def load_reward_model(path: str | os.PathLike) -> tuple[RewardModel, PreTrainedTokenizerBase]:
    """(reward model, its tokenizer) from a directory written by ``RewardModel.save_pretrained``
    (the rm stage's ``outputs/rm/model``), in eval mode."""
    return RewardModel.from_pretrained(path).eval(), load_tokenizer(path)


def context_length(rm: RewardModel, default: int = 1024) -> int:
    """Longest sequence the RM's backbone takes (its position limit; ``default`` when it has none)."""
    cfg = rm.backbone.config
    return int(getattr(cfg, "n_positions", None) or getattr(cfg, "max_position_embeddings", None) or default)


@torch.no_grad()
def score_pairs(rm: RewardModel, tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]],
                batch_size: int = 16, max_len: int = 256) -> torch.Tensor:
    """r_θ(x, y) (gain and bias included) for (prompt_text, response) pairs, in order. (N,)

    ``tokenizer`` must be the RM's own (``load_reward_model``); sequences longer than ``max_len``
    tokens are cut as in training (``instructgpt.data.encode_sft``)."""
    was_training = rm.training
    rm.eval()
    device = next(rm.parameters()).device
    out = []
    for start in range(0, len(pairs), batch_size):
        b = collate_pairs(tokenizer, pairs[start: start + batch_size], max_len)
        out.append(rm(**{k: v.to(device) for k, v in b.model_inputs().items()}).float().cpu())
    rm.train(was_training)
    return torch.cat(out) if out else torch.zeros(0)
