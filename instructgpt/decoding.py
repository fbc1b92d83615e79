"""One decode step's token draw, and the static decode loop.

The static loop keeps every shape fixed (a preallocated cache, finished rows computing but
recording nothing) so that on CUDA one decode step is recorded as a CUDA graph and replayed: a
step of a small model is otherwise bound by kernel launches and Python. `instructgpt.generation`
chooses it (``generate``'s ``engine``) or its own dynamic loop; both draw tokens with ``draw``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedModel, StaticCache

from instructgpt.models import cache_kwarg

# The graph path reads ``done`` on the host (a sync that stalls the GPU) once per this many steps;
# steps run after every row ended record nothing and are trimmed.
_SYNC_EVERY = 8
# Real decode steps run eagerly before the CUDA graph is recorded: lazy CUDA state (cuBLAS
# workspaces, autocast's low-precision weight copies) must exist before capture.
_GRAPH_WARMUP = 2


@dataclass
class Generation:
    """Sampled responses with the sampling distribution's view of every sampled token."""

    response: torch.Tensor
    """(B, T_r) response ids; ``pad_token_id`` after a row's first EOS."""
    logprobs: torch.Tensor
    """(B, T_r) log softmax(logits / temperature)[token] (temperature 1 when greedy)."""
    entropy: torch.Tensor
    """(B, T_r) entropy of softmax(logits / temperature) at each response position."""


def draw(logits: torch.Tensor, temperature: float, u: torch.Tensor | None, generator: torch.Generator | None,
          need_probs: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(next_tok (A,), scaled (A, V) fp32, probs (A, V) or None): a token per row from
    softmax(logits / temperature) by inverting its CDF at ``u`` (A, 1) when given, else by
    ``torch.multinomial`` on ``generator``; the argmax when ``temperature == 0``."""
    scaled = logits.float() / (temperature if temperature > 0 else 1.0)  # (A, V)
    probs = torch.softmax(scaled, dim=-1) if temperature > 0 or need_probs else None  # (A, V)
    if temperature > 0 and u is not None:
        cdf = probs.cumsum(-1)  # (A, V)
        u = u * cdf[:, -1:]  # (A, 1) scaled to the rounded total mass
        next_tok = torch.searchsorted(cdf, u, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)  # (A,)
    elif temperature > 0:
        next_tok = torch.multinomial(probs, 1, generator=generator).squeeze(1)  # (A,)
    else:
        next_tok = logits.argmax(-1)
    return next_tok, scaled, probs


def logprob_entropy(scaled: torch.Tensor, probs: torch.Tensor, next_tok: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """(log softmax(scaled)[next_tok], entropy of softmax(scaled)), (A,) each."""
    logz = torch.logsumexp(scaled, -1)  # (A,)
    logprob = scaled.gather(1, next_tok[:, None]).squeeze(1) - logz  # (A,)
    return logprob, logz - (probs * scaled).sum(-1)  # H = log Z − E_p[scaled]


def static_decode(model: PreTrainedModel, past: Any, logits: torch.Tensor, copies: torch.Tensor,
                   attention_mask: torch.Tensor, position_ids: torch.Tensor, max_new_tokens: int, temperature: float,
                   eos_token_id: int, pad_token_id: int, generator: torch.Generator | None, with_logprobs: bool,
                   uniforms: torch.Tensor | None) -> Generation:
    """``generate``'s decode on fixed shapes from the prompt pass of its distinct rows (``past``,
    ``logits`` (U, V), ``copies`` (B,)). Every step runs all B rows against a cache of
    T_q + max_new_tokens slots and a mask of that length; its inputs and results live in buffers
    allocated here, so the step (``decode``) is the same function whether it runs eagerly (CPU)
    or is replayed as a CUDA graph."""
    B, T_q = attention_mask.shape
    device = attention_mask.device
    cache_kw = cache_kwarg(model)
    # 1. the prompt's keys and values (one per distinct prompt) into slots [0, T_q) of every row
    cache = StaticCache(config=model.config, max_cache_len=T_q + max_new_tokens)
    # Each buffer in the dtype the decode steps write into it: under autocast RoPE's keys are fp32
    # and the values autocast's. transformers 5.17 allocates both in the keys' dtype, and its
    # dynamic cache widens the prompt's values to it (exactly); 5.24 keeps each dtype.
    autocast = torch.get_autocast_dtype(device.type) if torch.is_autocast_enabled(device.type) else None
    for i, (layer, prompt) in enumerate(zip(cache.layers, past.layers)):
        keys = prompt.keys[copies]  # (B, H, T_q, D)
        values = prompt.values[copies].to(autocast or prompt.values.dtype)  # (B, H, T_q, D)
        layer.lazy_initialization(keys, values)
        layer.values = layer.values.to(values.dtype)
        cache.update(keys, values, i)
    # 2. per-row noise: multinomial on a generator cannot be captured in a CUDA graph
    if temperature > 0 and uniforms is None:
        uniforms = torch.rand(B, max_new_tokens, generator=generator, device=device)  # (B, T_max)
    # slots after the current token are hidden by causality (query at slot T_q + t), not by the mask
    mask = torch.cat([attention_mask, attention_mask.new_ones(B, max_new_tokens)], dim=1)  # (B, T_q + T_max)
    tok = torch.empty(B, dtype=torch.long, device=device)  # (B,) the last sampled token, next step's input
    pos = position_ids[:, -1:].clone()  # (B, 1)
    t = torch.zeros(1, dtype=torch.long, device=device)  # (1,) the response column sampled next
    done = torch.zeros(B, dtype=torch.bool, device=device)  # (B,) rows past their EOS
    response = torch.full((B, max_new_tokens), pad_token_id, dtype=torch.long, device=device)  # (B, T_max)
    logprobs = torch.zeros(B, max_new_tokens, device=device)  # (B, T_max)
    entropy = torch.zeros(B, max_new_tokens, device=device)  # (B, T_max)

    def record(step_logits: torch.Tensor) -> None:  # (B, V): samples column t of every row, in place
        u = uniforms.index_select(1, t) if temperature > 0 else None  # (B, 1)
        next_tok, scaled, probs = draw(step_logits, temperature, u, None, with_logprobs)  # (B,), (B, V), (B, V)
        response.index_copy_(1, t, torch.where(done, pad_token_id, next_tok)[:, None])
        if with_logprobs:
            lp, ent = logprob_entropy(scaled, probs, next_tok)  # (B,), (B,)
            logprobs.index_copy_(1, t, lp.masked_fill(done, 0.0)[:, None])
            entropy.index_copy_(1, t, ent.masked_fill(done, 0.0)[:, None])
        done.logical_or_(next_tok == eos_token_id)
        tok.copy_(next_tok)
        t.add_(1)

    def decode() -> None:
        pos.add_(1)
        out = model(input_ids=tok[:, None], attention_mask=mask, position_ids=pos, use_cache=True,
                    **{cache_kw: cache})
        record(out.logits[:, -1, :])

    # 3. column 0 from the prompt pass, then one decode step per column
    record(logits[copies])  # (B, V)
    step, n = decode, 1  # n: columns sampled
    if device.type == "cuda" and max_new_tokens > 1 + _GRAPH_WARMUP:
        step, n = _cuda_graph(decode, _GRAPH_WARMUP), 1 + _GRAPH_WARMUP
    while n < max_new_tokens and not (n % _SYNC_EVERY == 0 and bool(done.all())):
        step()
        n += 1
    # 4. trimmed to the longest row (its first EOS, else all n columns), as the dynamic loop stops
    ended = response[:, :n] == eos_token_id  # (B, n)
    lengths = torch.where(ended.any(1), ended.int().argmax(1) + 1, n)  # (B,)
    steps = int(lengths.max())
    response = response[:, :steps]  # (B, T_r)
    if not with_logprobs:
        empty = response.new_zeros(response.shape, dtype=torch.float32)
        return Generation(response, empty, empty)
    return Generation(response, logprobs[:, :steps], entropy[:, :steps])


def _cuda_graph(step: Callable[[], None], warmup: int) -> Callable[[], None]:
    """Run ``step`` ``warmup`` times on a side stream (as torch.cuda.graph asks), record one more
    call as a CUDA graph (recording runs nothing) and return its replay. ``step`` must keep every
    shape fixed and read and write only tensors that outlive the graph, never the host."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph.replay
