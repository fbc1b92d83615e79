"""The reward model r_θ(x, y) (paper section 3.5, step 2): a causal LM's backbone with a scalar
head, saved and loaded next to it (safetensors only, never downloads, never runs remote code)."""

from __future__ import annotations

import json
import math
import os

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoModel, Cache, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from instructgpt.models import (
    _atomic_dir,
    _check_model_dir,
    _fit_embeddings,
    cache_kwarg,
    fuse_activations,
    last_token_index,
    load_tokenizer,
    position_ids_from_mask,
    set_dropout,
    swap_in_dir,
)


_HEAD_FILE = "reward_head.safetensors"
_META_FILE = "reward_model.json"


class RewardModel(nn.Module):
    """r_θ(x, y): a causal LM with the unembedding removed and a scalar head (paper step 2).

    ``forward`` gives the reward read at the last real token; ``per_token`` gives a value at
    every position (the PPO value function is initialised from the RM). The output is
    ``gain · head(h) + bias``: ``gain`` and ``bias`` are buffers set after training
    (``instructgpt.train.reward.normalize_rewards``) so that the policy's samples have standard
    deviation 1 and the labeler demonstrations mean 0; they are 1 and 0 until then.
    """

    def __init__(self, backbone: PreTrainedModel, seed: int = 0) -> None:
        super().__init__()
        self.backbone = fuse_activations(backbone)
        d = backbone.config.hidden_size
        self.head = nn.Linear(d, 1)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            # Small head init: std 1/sqrt(d+1) (lm-human-preferences).
            self.head.weight.copy_(torch.randn(1, d, generator=g) / math.sqrt(d + 1))
            self.head.bias.zero_()
        self.register_buffer("bias", torch.zeros(()))
        self.register_buffer("gain", torch.ones(()))

    @classmethod
    def from_causal_lm(cls, path_or_model: str | os.PathLike | PreTrainedModel, seed: int = 0,
                       dropout: float | None = None) -> "RewardModel":
        """Backbone of a causal-LM directory (or in-memory model, deep-copied) + a fresh head.

        From a directory the backbone fits ``load_tokenizer(path)`` (a pad token it had to add
        gets its embedding row, as in ``load_causal_lm``)."""
        if isinstance(path_or_model, PreTrainedModel):
            import copy
            backbone = copy.deepcopy(path_or_model.base_model)
        else:
            p = _check_model_dir(path_or_model)
            verbosity = hf_logging.get_verbosity()
            hf_logging.set_verbosity_error()  # "lm_head weights not used" is the point here
            try:
                backbone = AutoModel.from_pretrained(
                    str(p), local_files_only=True, trust_remote_code=False, use_safetensors=True,
                    dtype=torch.float32,
                )
            finally:
                hf_logging.set_verbosity(verbosity)
            tok = load_tokenizer(p)  # a directory without a pad token: the same row load_causal_lm adds
            if backbone.config.pad_token_id != tok.pad_token_id or len(tok) > backbone.get_input_embeddings().weight.shape[0]:
                _fit_embeddings(backbone, tok)
        if dropout is not None:
            set_dropout(backbone, dropout)
        return cls(backbone, seed=seed)

    def per_token(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  position_ids: torch.Tensor | None = None, past_key_values: Cache | None = None) -> torch.Tensor:
        """Scalar output at every position, gain and bias included. (B, T)

        With ``past_key_values`` (the KV cache of tokens that come before, see
        ``instructgpt.prefix_sharing``) ``input_ids`` continue them: ``attention_mask`` covers
        cached + new tokens and ``position_ids`` must be given."""
        if position_ids is None:
            position_ids = position_ids_from_mask(attention_mask)
        # no cache to keep unless continuing one (building it copies every layer's keys and values)
        cache = {"use_cache": False} if past_key_values is None else {
            "use_cache": True, cache_kwarg(self.backbone): past_key_values}
        hidden = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **cache
        ).last_hidden_state  # (B, T, d)
        # the scalar head in fp32 under bf16 autocast too (a d→1 projection costs nothing): a bf16
        # reward would be rounded to 8 bits (0.008 at 1) before PPO adds its β·KL terms to it
        with torch.autocast(device_type=hidden.device.type, enabled=False):
            return self.gain * self.head(hidden.float()).squeeze(-1) + self.bias  # (B, T)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                position_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Reward at the last real token of each sequence. (B,)"""
        values = self.per_token(input_ids, attention_mask, position_ids)  # (B, T)
        idx = last_token_index(attention_mask)  # (B,)
        return values.gather(1, idx[:, None]).squeeze(1)  # (B,)

    def save_pretrained(self, path: str | os.PathLike, tokenizer: PreTrainedTokenizerBase | None = None) -> None:
        """Backbone (HF format) + head, gain and bias (safetensors) into ``path``, atomically."""
        final, tmp = _atomic_dir(path)
        self.backbone.save_pretrained(str(tmp))
        save_file(
            {"weight": self.head.weight.detach().contiguous(), "head_bias": self.head.bias.detach().contiguous(),
             "bias": self.bias.detach().reshape(1).contiguous(), "gain": self.gain.detach().reshape(1).contiguous()},
            str(tmp / _HEAD_FILE),
        )
        meta = {"kind": "reward_model", "bias": float(self.bias), "gain": float(self.gain)}
        (tmp / _META_FILE).write_text(json.dumps(meta, indent=2))
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        swap_in_dir(final, tmp)

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, dropout: float | None = None) -> "RewardModel":
        """Load what ``save_pretrained`` wrote (a directory written before the gain existed: gain 1)."""
        p = _check_model_dir(path)
        if not (p / _HEAD_FILE).is_file():
            raise FileNotFoundError(f"{p} has no {_HEAD_FILE}: not a reward model directory")
        backbone = AutoModel.from_pretrained(
            str(p), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
        )
        if dropout is not None:
            set_dropout(backbone, dropout)
        rm = cls(backbone)
        t = load_file(str(p / _HEAD_FILE))
        with torch.no_grad():
            rm.head.weight.copy_(t["weight"])
            rm.head.bias.copy_(t["head_bias"])
            rm.bias.copy_(t["bias"].reshape(()))
            if "gain" in t:
                rm.gain.copy_(t["gain"].reshape(()))
        return rm
