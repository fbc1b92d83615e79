"""Sampling with a KV cache from left-padded prompts (rollouts, SFT samples, evaluation).

Top-k / top-p are deliberately absent: PPO needs the sampled distribution to be exactly
softmax(logits / temperature), the one whose log-probabilities it computes.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.data import collate_prompts
from instructgpt.progress import progress


@dataclass
class Sample:
    """One generated response."""

    prompt: str
    response: str  # decoded, EOS and padding stripped
    response_ids: list[int]  # generated ids up to and including the first EOS
    ended_with_eos: bool


def _cache_kwarg(model: PreTrainedModel) -> str:
    """transformers 5.2x renamed ``past_key_values`` to ``cache``; accept both."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


@torch.no_grad()
def generate_ids(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    return_logprobs: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Sample up to ``max_new_tokens`` per row; after a row's first EOS it gets ``pad_token_id``.
    ``temperature == 0`` means greedy. Returns response ids (B, T_r), T_r <= max_new_tokens, and
    with ``return_logprobs`` also log softmax(logits / temperature)[token] (B, T_r) (checks that
    the cached sampling path and the full forward pass of PPO agree)."""
    B = input_ids.shape[0]
    device = input_ids.device
    cache_kw = _cache_kwarg(model)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True)
    past = out[cache_kw]
    logits = out.logits[:, -1, :]  # (B, V)
    pos = position_ids[:, -1:]  # (B, 1)
    mask = attention_mask
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, logprobs = [], []
    for t in range(max_new_tokens):
        scaled = logits.float() / (temperature if temperature > 0 else 1.0)  # (B, V)
        if temperature > 0:
            next_tok = torch.multinomial(torch.softmax(scaled, dim=-1), 1, generator=generator).squeeze(1)  # (B,)
        else:
            next_tok = logits.argmax(-1)
        next_tok = torch.where(finished, torch.full_like(next_tok, pad_token_id), next_tok)
        tokens.append(next_tok)
        if return_logprobs:
            logprobs.append(torch.log_softmax(scaled, -1).gather(1, next_tok[:, None]).squeeze(1))
        finished |= next_tok == eos_token_id
        if bool(finished.all()) or t == max_new_tokens - 1:
            break
        mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=device)], dim=1)  # (B, T+1)
        pos = pos + 1
        out = model(input_ids=next_tok[:, None], attention_mask=mask, position_ids=pos,
                    use_cache=True, **{cache_kw: past})
        past = out[cache_kw]
        logits = out.logits[:, -1, :]
    response = torch.stack(tokens, dim=1)  # (B, T_r)
    return (response, torch.stack(logprobs, dim=1)) if return_logprobs else response


def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int = 64,
    temperature: float = 1.0,
    batch_size: int = 16,
    seed: int = 0,
    max_prompt_len: int | None = None,
    show_progress: bool = False,
    desc: str = "sample",
    shots: Sequence[tuple[str, str]] = (),
) -> list[Sample]:
    """Responses for ``prompts`` in order; same (model, prompts, seed, batch_size) -> same output.

    Each prompt is formatted by ``instructgpt.text.prompt_context`` (the model's chat template
    when its tokenizer has one); ``shots`` are few-shot (prompt, response) examples shown before
    every prompt. ``show_progress`` shows a progress bar named ``desc``, counting prompts.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    g = torch.Generator(device=device).manual_seed(seed)
    if max_prompt_len is None:
        n_pos = getattr(model.config, "n_positions", None) or getattr(model.config, "max_position_embeddings", None)
        max_prompt_len = n_pos - max_new_tokens if n_pos else None
    samples: list[Sample] = []
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    bar = progress(total=len(prompts), desc=desc, unit="prompt", disable=not show_progress)
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start: start + batch_size])
        b = collate_prompts(tokenizer, chunk, max_prompt_len, shots)
        resp = generate_ids(model, b.input_ids.to(device), b.attention_mask.to(device), b.position_ids.to(device),
                            max_new_tokens, temperature, eos, pad, g)  # (B, T_r)
        for prompt, row in zip(chunk, resp.tolist()):
            ended = eos in row
            ids = row[: row.index(eos) + 1] if ended else row
            text = tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=True)
            samples.append(Sample(prompt, text, ids, ended))
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return samples
