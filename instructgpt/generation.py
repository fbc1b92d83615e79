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
from instructgpt.models import cache_kwarg
from instructgpt.progress import progress


@dataclass
class Sample:
    """One generated response."""

    prompt: str
    response: str  # decoded, EOS and padding stripped
    response_ids: list[int]  # generated ids up to and including the first EOS
    ended_with_eos: bool


def _accepts(model: PreTrainedModel, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


@dataclass
class Generation:
    """Sampled responses with the sampling distribution's view of every sampled token."""

    response: torch.Tensor
    """(B, T_r) response ids; ``pad_token_id`` after a row's first EOS."""
    logprobs: torch.Tensor
    """(B, T_r) log softmax(logits / temperature)[token] (temperature 1 when greedy)."""
    entropy: torch.Tensor
    """(B, T_r) entropy of softmax(logits / temperature) at each response position."""


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    max_new_tokens: int,
    temperature: float,
    eos_token_id: int,
    pad_token_id: int,
    generator: torch.Generator | None = None,
    with_logprobs: bool = True,
    uniforms: torch.Tensor | None = None,
) -> Generation:
    """Sample up to ``max_new_tokens`` per row with the KV cache; after a row's first EOS it gets
    ``pad_token_id``. ``temperature == 0`` means greedy. With ``with_logprobs`` the logits the
    loop already has give each sampled token's log-probability and the entropy for free
    (a gather and a logsumexp per step; no second forward pass); without, both are empty.

    ``uniforms`` (B, max_new_tokens) in [0, 1): sample token t of row b by inverting the CDF of
    softmax(logits / temperature) at ``uniforms[b, t]`` instead of ``torch.multinomial`` on
    ``generator``. The same distribution, but each row's draws are its own: a row samples the
    same tokens whatever other rows share its batch (data-parallel shards, see ``train_ppo``)."""
    B = input_ids.shape[0]
    device = input_ids.device
    cache_kw = cache_kwarg(model)
    # only the last prompt position's logits are read: skip unembedding the others (bit-identical)
    keep = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=True,
                **keep)
    past = out[cache_kw]
    logits = out.logits[:, -1, :]  # (B, V)
    pos = position_ids[:, -1:]  # (B, 1)
    # the mask of every step is a prefix of one buffer: no reallocation per token
    T_q = attention_mask.shape[1]
    full_mask = torch.cat([attention_mask, attention_mask.new_ones(B, max_new_tokens)], dim=1)  # (B, T_q + T_max)
    finished = torch.zeros(B, dtype=torch.bool, device=device)
    tokens, logprobs, entropy = [], [], []
    for t in range(max_new_tokens):
        scaled = logits.float() / (temperature if temperature > 0 else 1.0)  # (B, V)
        probs = torch.softmax(scaled, dim=-1) if temperature > 0 or with_logprobs else None  # (B, V)
        if temperature > 0 and uniforms is not None:
            cdf = probs.cumsum(-1)  # (B, V)
            u = uniforms[:, t: t + 1] * cdf[:, -1:]  # (B, 1) scaled to the rounded total mass
            next_tok = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)  # (B,)
        elif temperature > 0:
            next_tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (B,)
        else:
            next_tok = logits.argmax(-1)
        next_tok = torch.where(finished, torch.full_like(next_tok, pad_token_id), next_tok)
        tokens.append(next_tok)
        if with_logprobs:
            logz = torch.logsumexp(scaled, -1)  # (B,)
            logprobs.append(scaled.gather(1, next_tok[:, None]).squeeze(1) - logz)  # (B,)
            entropy.append(logz - (probs * scaled).sum(-1))  # (B,) H = log Z − E_p[scaled]
        finished |= next_tok == eos_token_id
        if bool(finished.all()) or t == max_new_tokens - 1:
            break
        pos = pos + 1
        out = model(input_ids=next_tok[:, None], attention_mask=full_mask[:, : T_q + t + 1], position_ids=pos,
                    use_cache=True, **{cache_kw: past})
        past = out[cache_kw]
        logits = out.logits[:, -1, :]
    response = torch.stack(tokens, dim=1)  # (B, T_r)
    if not with_logprobs:
        empty = response.new_zeros(response.shape, dtype=torch.float32)
        return Generation(response, empty, empty)
    return Generation(response, torch.stack(logprobs, dim=1), torch.stack(entropy, dim=1))


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
    """``generate``'s response ids (B, T_r), T_r <= max_new_tokens; with ``return_logprobs`` also
    its log softmax(logits / temperature)[token] (B, T_r)."""
    g = generate(model, input_ids, attention_mask, position_ids, max_new_tokens, temperature, eos_token_id,
                 pad_token_id, generator, with_logprobs=return_logprobs)
    return (g.response, g.logprobs) if return_logprobs else g.response


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
