"""Token-level data rules: prompt encoding, left-padded batches, SFT examples, pretraining blocks.

A prompt's context is ``instructgpt.text.prompt_context(tokenizer, text)`` (the model's chat
template when its tokenizer has one, else the plain ``format_prompt``); every sequence starts
with BOS (when the tokenizer has one and the template did not write it already); a response
ends with EOS. Batches are LEFT-padded with explicit position ids so that every prompt ends at
the same column (generation and PPO read from there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from instructgpt.models import position_ids_from_mask
from instructgpt.text import has_chat_template, lead_response, prompt_context, template_wrote_bos

IGNORE_INDEX = -100
_SLOT = "\u2063PROMPT\u2063"  # stands for the prompt when a template's wrapper is measured


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _split_bos(tokenizer: PreTrainedTokenizerBase, context: str) -> tuple[list[int], str]:
    """([BOS] or [], the rest of the context). BOS comes first whether we add it or the chat
    template wrote it (then it is taken off the text, so it is never doubled or cut away)."""
    if tokenizer.bos_token_id is None:
        return [], context
    if template_wrote_bos(tokenizer, context):
        return [tokenizer.bos_token_id], context[len(tokenizer.bos_token):]
    return [tokenizer.bos_token_id], context


def encode_prompt(tokenizer: PreTrainedTokenizerBase, text: str, max_len: int | None = None,
                  shots: Sequence[tuple[str, str]] = ()) -> list[int]:
    """[BOS] + tokens of ``prompt_context(tokenizer, text, shots)``.

    Too-long prompts keep their END: the text right before the response must stay. Plain
    format: the last tokens are kept (BOS first). Chat template: the template's own tokens
    (header and generation prompt) are kept and the prompt text loses tokens from its start;
    few-shot examples are dropped first, oldest first."""
    bos, context = _split_bos(tokenizer, prompt_context(tokenizer, text, shots))
    ids = _ids(tokenizer, context)
    if max_len is None or len(bos) + len(ids) <= max_len:
        return bos + ids
    if has_chat_template(tokenizer):
        if shots:
            return encode_prompt(tokenizer, text, max_len, shots[1:])
        cut = _cut_template_prompt(tokenizer, text, max_len - len(bos))
        if cut is not None:
            return bos + cut
    return bos + ids[len(ids) - (max_len - len(bos)):]


def _cut_template_prompt(tokenizer: PreTrainedTokenizerBase, text: str, budget: int) -> list[int] | None:
    """Template tokens around the prompt kept whole, the prompt's last tokens in between, within
    ``budget`` tokens (BOS not counted); None when the template hides where the prompt goes or
    leaves no room."""
    _, wrapped = _split_bos(tokenizer, prompt_context(tokenizer, _SLOT))
    if wrapped.count(_SLOT) != 1:
        return None
    head, tail = wrapped.split(_SLOT)
    head_ids, tail_ids = _ids(tokenizer, head), _ids(tokenizer, tail)
    room = budget - len(head_ids) - len(tail_ids)
    if room <= 0:
        return None
    body = _ids(tokenizer, text)
    return head_ids + body[len(body) - min(room, len(body)):] + tail_ids


def encode_response(tokenizer: PreTrainedTokenizerBase, response: str) -> list[int]:
    """Tokens of the response (``lead_response``: a leading space in the plain format) followed by EOS."""
    return _ids(tokenizer, lead_response(tokenizer, response)) + [tokenizer.eos_token_id]


def encode_responses(tokenizer: PreTrainedTokenizerBase, responses: Sequence[str]) -> list[list[int]]:
    """``encode_response`` of each response, in one call to the tokenizer."""
    if not responses:
        return []
    texts = [lead_response(tokenizer, r) for r in responses]
    return [ids + [tokenizer.eos_token_id] for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int, fill: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad lists of ids to the longest: (ids (B, T), attention_mask (B, T))."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id if fill is None else fill, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            ids[i, T - len(s):] = torch.tensor(s, dtype=torch.long)
            mask[i, T - len(s):] = 1
    return ids, mask


@dataclass
class Batch:
    """A left-padded batch; ``labels`` only for SFT (−100 on prompt and padding)."""

    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    position_ids: torch.Tensor  # (B, T)
    labels: torch.Tensor | None = None  # (B, T)

    def model_inputs(self) -> dict[str, torch.Tensor]:
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask, "position_ids": self.position_ids}


def collate_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], max_len: int | None = None,
                    shots: Sequence[tuple[str, str]] = ()) -> Batch:
    """Left-padded prompt batch with attention mask and position ids (``shots``: few-shot
    examples shown before every prompt, see ``encode_prompt``)."""
    ids, mask = left_pad([encode_prompt(tokenizer, p, max_len, shots) for p in prompts], tokenizer.pad_token_id)
    return Batch(ids, mask, position_ids_from_mask(mask))


def encode_sft(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_len: int
) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one demonstration: labels are −100 on prompt tokens, so the loss is
    on response tokens (EOS included).

    An example longer than ``max_len`` is cut by this rule: BOS always stays first. The response
    (EOS included) loses tokens from its END first, down to ``min(len(response ids), max_len // 2)``
    tokens so that a long prompt cannot squeeze it out; if that is not enough, the prompt loses
    tokens from its START, right after BOS (``encode_prompt``: plain format, its last tokens stay;
    chat template, the template's own tokens stay and the prompt text loses its first tokens).
    Examples that fit are not touched."""
    p_ids = encode_prompt(tokenizer, prompt)
    r_ids = encode_response(tokenizer, response)
    if len(p_ids) + len(r_ids) > max_len:
        keep_r = max(min(len(r_ids), max_len // 2), max_len - len(p_ids))
        p_ids = encode_prompt(tokenizer, prompt, max_len - keep_r)
        r_ids = r_ids[: max_len - len(p_ids)]
    return p_ids + r_ids, [IGNORE_INDEX] * len(p_ids) + r_ids


def collate_sft(tokenizer: PreTrainedTokenizerBase, examples: Sequence[tuple[str, str]], max_len: int) -> Batch:
    """Left-padded SFT batch of (prompt, response) pairs."""
    enc = [encode_sft(tokenizer, p, r, max_len) for p, r in examples]
    ids, mask = left_pad([e[0] for e in enc], tokenizer.pad_token_id)
    labels, _ = left_pad([e[1] for e in enc], tokenizer.pad_token_id, fill=IGNORE_INDEX)
    return Batch(ids, mask, position_ids_from_mask(mask), labels)


def collate_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[tuple[str, str]], max_len: int) -> Batch:
    """Left-padded (prompt, response + EOS) sequences for scoring (reward model, evaluation)."""
    return collate_sft(tokenizer, pairs, max_len)


def make_blocks(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], block_size: int) -> torch.Tensor:
    """Pretraining blocks: documents as [BOS] text [EOS], concatenated and cut into rows of
    ``block_size`` tokens (the tail shorter than a block is dropped). (N, block_size)"""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    stream: list[int] = []
    for t in texts:
        stream += bos + _ids(tokenizer, t) + [tokenizer.eos_token_id]
    n = len(stream) // block_size
    if n == 0:
        raise ValueError(f"pretraining texts give {len(stream)} tokens, fewer than one block of {block_size}")
    return torch.tensor(stream[: n * block_size], dtype=torch.long).view(n, block_size)  # (N, block_size)


def epoch_permutation(n: int, seed: int, epoch: int) -> list[int]:
    """Shuffled order of ``n`` items for one epoch; a pure function of (seed, epoch) so a resumed
    run finds the same data position."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def length_grouped_permutation(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                               mega: int = 50) -> list[int]:
    """Like ``epoch_permutation``, but each run of ``batch_size`` items has similar lengths.

    Items are shuffled, cut into mega-batches of ``mega * batch_size``, each sorted by length, cut
    into batches, and the batches shuffled again: padding (which costs compute but teaches
    nothing) shrinks a lot while batches stay random. Pure in (lengths, seed, epoch)."""
    perm = epoch_permutation(len(lengths), seed, epoch)
    size = mega * batch_size
    batches: list[list[int]] = []
    for start in range(0, len(perm), size):
        chunk = sorted(perm[start:start + size], key=lambda i: -lengths[i])
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    order = epoch_permutation(len(batches), seed + 1, epoch)
    return [i for b in order for i in batches[b]]
