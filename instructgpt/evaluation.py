"""Model-only evaluation: corpus loss and multiple-choice accuracy (the alignment-tax task)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.data import left_pad
from instructgpt.models import position_ids_from_mask


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


@torch.no_grad()
def _sum_logprobs(model: PreTrainedModel, seqs: list[list[int]], target_mask: list[list[int]],
                  pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ log p(token) over positions where target_mask is 1, and the count, per sequence. (B,), (B,)"""
    device = next(model.parameters()).device
    ids, mask = left_pad(seqs, pad_id)  # (B, T)
    tmask, _ = left_pad(target_mask, 0, fill=0)  # (B, T)
    ids, mask, tmask = ids.to(device), mask.to(device), tmask.to(device)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_from_mask(mask)).logits  # (B, T, V)
    logp = F.log_softmax(logits[:, :-1].float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    tm = tmask[:, 1:].float()  # (B, T-1)
    return (logp * tm).sum(1), tm.sum(1)


def corpus_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str],
                batch_size: int = 16, max_len: int | None = None) -> float:
    """Mean per-token NLL of ``[BOS] text [EOS]`` over all texts (token-weighted); long texts are
    cut to ``max_len`` (default: the model's context)."""
    was_training = model.training
    model.eval()
    if max_len is None:
        max_len = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", 1024)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    total, count = 0.0, 0.0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start: start + batch_size]
        seqs = [(bos + _ids(tokenizer, t) + [tokenizer.eos_token_id])[:max_len] for t in chunk]
        tmask = [[0] * len(bos) + [1] * (len(s) - len(bos)) for s in seqs]
        lp, n = _sum_logprobs(model, seqs, tmask, tokenizer.pad_token_id)
        total -= float(lp.sum())
        count += float(n.sum())
    model.train(was_training)
    return total / max(count, 1.0)


def choice_accuracy(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, items: Sequence[dict[str, Any]],
                    batch_size: int = 16) -> float:
    """Fraction of items where the choice with the highest total log-likelihood given the context
    (``[BOS] context`` then ``choice``) is ``answer``. No items is a ValueError: an accuracy
    over nothing is no figure (a stage reports it absent, with the reason, instead of 0)."""
    if not items:
        raise ValueError("choice_accuracy needs at least one item")
    was_training = model.training
    model.eval()
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    seqs, tmasks, owner = [], [], []
    for i, item in enumerate(items):
        ctx = bos + _ids(tokenizer, item["context"])
        for choice in item["choices"]:
            c = _ids(tokenizer, choice)
            seqs.append(ctx + c)
            tmasks.append([0] * len(ctx) + [1] * len(c))
            owner.append(i)
    scores = []
    for start in range(0, len(seqs), batch_size):
        lp, _ = _sum_logprobs(model, seqs[start: start + batch_size], tmasks[start: start + batch_size],
                              tokenizer.pad_token_id)
        scores += lp.tolist()
    model.train(was_training)
    correct, k = 0, 0
    for i, item in enumerate(items):
        n = len(item["choices"])
        best = max(range(n), key=lambda j: scores[k + j])
        correct += int(best == int(item["answer"]))
        k += n
    return correct / len(items)
