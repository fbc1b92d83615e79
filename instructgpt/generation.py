"""Sampling with a KV cache from left-padded prompts (rollouts, SFT samples, evaluation).

Top-k / top-p are deliberately absent: PPO needs the sampled distribution to be exactly
softmax(logits / temperature), the one whose log-probabilities it computes.

Two decode loops (``generate``'s ``engine``): the dynamic one here (the CPU's) drops finished
rows from a growing KV cache; the static one (`instructgpt.decoding`) keeps every shape fixed so
that on CUDA one decode step is recorded as a CUDA graph and replayed.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from instructgpt.data import collate_prompts, encode_prompt
from instructgpt.decoding import Generation, draw, logprob_entropy, static_decode
from instructgpt.models import cache_kwarg
from instructgpt.progress import progress
from instructgpt.text import strip_lead


ENGINES = ("auto", "dynamic", "static")


@dataclass
class Sample:
    """One generated response."""

    prompt: str
    response: str  # decoded, EOS and padding stripped
    response_ids: list[int]  # generated ids up to and including the first EOS
    ended_with_eos: bool


def _accepts(model: PreTrainedModel, name: str) -> bool:
    return name in inspect.signature(model.forward).parameters


def distinct_rows(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(first, copies): ``first`` (U,) the first row of each distinct (ids, mask) row in batch order,
    ``copies`` (B,) the index into ``first`` of every row, so ``x[first][copies]`` is ``x``."""
    keys = torch.cat([input_ids, attention_mask.to(input_ids.dtype)], dim=1)  # (B, 2T)
    _, inverse = torch.unique(keys, dim=0, return_inverse=True)  # (B,) ids of distinct rows, sorted order
    B = input_ids.shape[0]
    firsts = torch.full((int(inverse.max()) + 1,), B, dtype=torch.long, device=input_ids.device)
    firsts = firsts.scatter_reduce(0, inverse, torch.arange(B, device=input_ids.device), "amin")  # (U,)
    order = firsts.argsort()  # distinct rows in batch order
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=input_ids.device)
    return firsts[order], rank[inverse]


def select_rows(past: Any, idx: torch.Tensor) -> Any:
    """The KV cache of batch rows ``idx`` only: a transformers ``Cache`` in place, or a legacy tuple
    of per-layer (key, value) tensors (B, H, T, D) as a new tuple."""
    if hasattr(past, "batch_select_indices"):
        past.batch_select_indices(idx)
        return past
    return tuple(tuple(t[idx] for t in layer) for layer in past)


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
    engine: str = "auto",
) -> Generation:
    """Sample up to ``max_new_tokens`` per row with the KV cache; after a row's first EOS it gets
    ``pad_token_id``. ``temperature == 0`` means greedy. With ``with_logprobs`` the logits the
    loop already has give each sampled token's log-probability and the entropy for free
    (a gather and a logsumexp per step; no second forward pass); without, both are empty.

    ``uniforms`` (B, max_new_tokens) in [0, 1): sample token t of row b by inverting the CDF of
    softmax(logits / temperature) at ``uniforms[b, t]`` instead of ``torch.multinomial`` on
    ``generator``. The same distribution, but each row's draws are its own: a row samples the
    same tokens whatever other rows share its batch (data-parallel shards, see ``train_ppo``).

    ``engine``: "dynamic" drops finished rows from a growing KV cache (fastest on a CPU);
    "static" decodes on fixed shapes with a preallocated cache, one step replayed as a CUDA graph
    on CUDA, and always samples from per-row uniforms (drawn from ``generator`` up front when
    ``uniforms`` is None: the same distribution as ``torch.multinomial``, other numbers);
    "auto" is "static" on CUDA, "dynamic" elsewhere. Same contract either way: with the same
    ``uniforms`` both give the same tokens, up to float rounding of the logits."""
    if engine not in ENGINES:
        raise ValueError(f"engine={engine!r}: choose one of {ENGINES}")
    B = input_ids.shape[0]
    device = input_ids.device
    cache_kw = cache_kwarg(model)
    # only the last prompt position's logits are read: skip unembedding the others (bit-identical)
    keep = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    # A prompt repeated in the batch (the label stage samples 2K answers per prompt) is run once and
    # its KV cache copied to its rows: the prompt pass is most of sampling's cost on a CPU.
    first, copies = distinct_rows(input_ids, attention_mask)  # (U,), (B,)
    out = model(input_ids=input_ids[first], attention_mask=attention_mask[first], position_ids=position_ids[first],
                use_cache=True, **keep)
    past = out[cache_kw]
    logits = out.logits[:, -1, :]  # (U, V)
    if engine == "static" or (engine == "auto" and device.type == "cuda"):
        return static_decode(model, past, logits, copies, attention_mask, position_ids, max_new_tokens, temperature,
                              eos_token_id, pad_token_id, generator, with_logprobs, uniforms)
    if len(first) < B:
        past, logits = select_rows(past, copies), logits[copies]  # (A, V), A = rows still sampling (B at first)
    pos = position_ids[:, -1:]  # (A, 1)
    # the mask of every step is a prefix of one buffer: no reallocation per token
    T_q = attention_mask.shape[1]
    full_mask = torch.cat([attention_mask, attention_mask.new_ones(B, max_new_tokens)], dim=1)  # (A, T_q + T_max)
    # Rows leave the batch after their first EOS (``select_rows``): sampled answers are much shorter
    # than max_new_tokens, and running finished rows until the longest ends was most of the work.
    rows = torch.arange(B, device=device)  # (A,) batch row of each active row
    response = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)  # (B, T_max)
    logprobs = torch.zeros(B, max_new_tokens, device=device)  # (B, T_max)
    entropy = torch.zeros(B, max_new_tokens, device=device)  # (B, T_max)
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (A,) rows past their EOS, not yet dropped
    steps = 0
    for t in range(max_new_tokens):
        steps = t + 1
        u = uniforms[rows, t: t + 1] if temperature > 0 and uniforms is not None else None  # (A, 1)
        next_tok, scaled, probs = draw(logits, temperature, u, generator, with_logprobs)  # (A,), (A, V), (A, V)
        live = rows[~done]  # (L,) batch rows that sampled a real token this step
        response[live, t] = next_tok[~done]
        if with_logprobs:
            lp, ent = logprob_entropy(scaled, probs, next_tok)  # (A,), (A,)
            logprobs[live, t] = lp[~done]
            entropy[live, t] = ent[~done]
        done |= next_tok == eos_token_id
        if bool(done.all()) or t == max_new_tokens - 1:
            break
        # Rows leave the batch in groups: dropping them copies the whole cache, so wait until a
        # quarter of the batch is done (rows past EOS meanwhile compute but record nothing).
        if int(done.sum()) * 4 >= len(done):
            idx = (~done).nonzero().squeeze(1)  # (A',)
            past = select_rows(past, idx)
            rows, next_tok, pos, full_mask, done = rows[idx], next_tok[idx], pos[idx], full_mask[idx], done[idx]
        pos = pos + 1
        out = model(input_ids=next_tok[:, None], attention_mask=full_mask[:, : T_q + t + 1], position_ids=pos,
                    use_cache=True, **{cache_kw: past})
        past = out[cache_kw]
        logits = out.logits[:, -1, :]
    response = response[:, :steps]  # (B, T_r)
    if not with_logprobs:
        empty = response.new_zeros(response.shape, dtype=torch.float32)
        return Generation(response, empty, empty)
    return Generation(response, logprobs[:, :steps], entropy[:, :steps])


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
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    # Batches of prompts of similar length (stable: repeated prompts stay together): left padding
    # to the longest prompt of a batch made most of the prompt pass's tokens padding.
    lengths = [len(encode_prompt(tokenizer, p, max_prompt_len, shots)) for p in prompts]
    order = sorted(range(len(prompts)), key=lengths.__getitem__)
    samples: list[Sample | None] = [None] * len(prompts)
    bar = progress(total=len(prompts), desc=desc, unit="prompt", disable=not show_progress)
    for start in range(0, len(prompts), batch_size):
        rows = order[start: start + batch_size]
        chunk = [prompts[i] for i in rows]
        b = collate_prompts(tokenizer, chunk, max_prompt_len, shots)
        resp = generate_ids(model, b.input_ids.to(device), b.attention_mask.to(device), b.position_ids.to(device),
                            max_new_tokens, temperature, eos, pad, g)  # (B, T_r)
        for i, prompt, row in zip(rows, chunk, resp.tolist()):
            ended = eos in row
            ids = row[: row.index(eos) + 1] if ended else row
            text = strip_lead(tokenizer, tokenizer.decode(ids[:-1] if ended else ids, skip_special_tokens=True))
            samples[i] = Sample(prompt, text, ids, ended)
        bar.update(len(chunk))
    bar.close()
    model.train(was_training)
    return samples  # type: ignore[return-value]  (every slot filled)
