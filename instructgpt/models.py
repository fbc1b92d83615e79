"""Causal LMs: build, load, save, and the helpers every model forward shares (the reward model
r_θ(x, y) built on them: `instructgpt.reward_model`).

Works with any local Hugging Face ``AutoModelForCausalLM`` directory; never downloads, never
runs remote code, writes safetensors only.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.activations import FastGELUActivation, NewGELUActivation

try:
    from transformers.activations import GELUTanh
except ImportError:  # older transformers 5.x spell it so
    from transformers.activations import PytorchGELUTanh as GELUTanh

from instructgpt.config import ConfigError

ARCHS = ("gpt2", "llama", "gpt_neox")
# Config attributes that hold a dropout probability, across the architectures we support.
_DROPOUT_ATTRS = (
    "resid_pdrop", "embd_pdrop", "attn_pdrop",  # gpt2
    "attention_dropout", "hidden_dropout", "classifier_dropout",  # llama, gpt_neox, qwen2
)


@dataclass
class ModelConfig:
    """Shape of a freshly initialised causal LM (the ``base`` stage)."""

    arch: str = "gpt2"
    """Architecture: "gpt2" (learned positions), "llama" (RoPE, RMSNorm, SwiGLU) or "gpt_neox"."""
    n_layer: int = 4
    """Number of transformer blocks."""
    n_embd: int = 128
    """Hidden size d (the reward head reads vectors of this size)."""
    n_head: int = 4
    """Attention heads; must divide n_embd."""
    n_positions: int = 256
    """Context length: prompt + response must fit (learned positions for gpt2, RoPE limit otherwise)."""
    dropout: float = 0.0
    """Residual, attention and embedding dropout (gpt2: all three; llama: attention only, the
    architecture has no residual dropout; gpt_neox: hidden + attention). The SFT stage sets its
    own value (paper: 0.2); RL turns it off."""

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"model.arch={self.arch!r}: choose one of {ARCHS}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"model.n_embd={self.n_embd} must be divisible by model.n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"model.dropout={self.dropout} must be in [0, 1)")


def build_causal_lm(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A randomly initialised causal LM sized for ``tokenizer``; same seed, same weights."""
    common = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if cfg.arch == "gpt2":
        hf_cfg = GPT2Config(
            n_layer=cfg.n_layer, n_embd=cfg.n_embd, n_head=cfg.n_head, n_positions=cfg.n_positions,
            resid_pdrop=cfg.dropout, embd_pdrop=cfg.dropout, attn_pdrop=cfg.dropout, **common,
        )
    elif cfg.arch == "llama":
        hf_cfg = LlamaConfig(
            num_hidden_layers=cfg.n_layer, hidden_size=cfg.n_embd, num_attention_heads=cfg.n_head,
            num_key_value_heads=cfg.n_head, intermediate_size=4 * cfg.n_embd,
            max_position_embeddings=cfg.n_positions, attention_dropout=cfg.dropout,
            tie_word_embeddings=True, **common,
        )
    else:
        hf_cfg = GPTNeoXConfig(
            num_hidden_layers=cfg.n_layer, hidden_size=cfg.n_embd, num_attention_heads=cfg.n_head,
            intermediate_size=4 * cfg.n_embd, max_position_embeddings=cfg.n_positions,
            hidden_dropout=cfg.dropout, attention_dropout=cfg.dropout, **common,
        )
    with torch.random.fork_rng(devices=[]):  # seed the init without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(hf_cfg)
    return fuse_activations(model.float())


def fuse_activations(model: nn.Module) -> nn.Module:
    """Replace, in place, GPT-2's tanh-approximated GELU (``gelu_new``, ``gelu_fast``: written as
    eight elementwise ops, each a pass over the MLP's activations forward and backward) with
    torch's fused kernel for the same function (Hugging Face's ``gelu_pytorch_tanh``): equal up
    to float rounding (~1e-7), a tenth less time per training step of the demo's models on the
    CPU. The config keeps its ``activation_function``: nothing saved changes."""
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) in (NewGELUActivation, FastGELUActivation):
                setattr(module, name, GELUTanh())
    return model


def set_dropout(model: nn.Module, p: float) -> None:
    """Set every dropout probability of a HF model (config fields, nn.Dropout modules, float attrs)."""
    configs = [m.config for m in model.modules() if hasattr(m, "config")]
    for c in {id(c): c for c in configs}.values():
        for attr in _DROPOUT_ATTRS:
            if isinstance(getattr(c, attr, None), (int, float)) and not isinstance(getattr(c, attr), bool):
                setattr(c, attr, p)
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
        # Attention modules (llama, qwen2, neox) keep the probability as a float attribute.
        for attr in ("attention_dropout", "dropout"):
            if isinstance(getattr(m, attr, None), float):
                setattr(m, attr, p)


def _check_model_dir(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not (p.is_dir() and (p / "config.json").is_file()):
        raise FileNotFoundError(
            f"{p} is not a Hugging Face model directory (expected a folder with config.json and "
            "*.safetensors written by save_model / save_pretrained)"
        )
    return p


def check_model_path(path: str | os.PathLike, models_dir: str | os.PathLike, key: str) -> Path:
    """``path`` (params key ``key``, e.g. ``base.model_path``) as a model directory inside
    ``models_dir`` (params ``inputs.models``), or a ConfigError that says what to do.

    The stages that read a team's model declare ``${inputs.models}`` as their DVC dependency, so
    a model elsewhere would be read without being versioned: its changes would not re-run the
    pipeline. The check is on the path as written (a symlink under models/ pointing at a big
    disk is fine)."""
    p, root = Path(path), Path(models_dir)
    inside = Path(os.path.abspath(p)).is_relative_to(Path(os.path.abspath(root)))
    if not inside:
        raise ConfigError(
            f"{key}={str(path)!r} lies outside inputs.models={str(root)!r}, which is what DVC tracks: "
            f"put the model there (e.g. {root / p.name}) and set {key} to that path, or point "
            f"inputs.models at the directory that holds the model")
    if not (p.is_dir() and (p / "config.json").is_file()):
        raise ConfigError(
            f"{key}={str(path)!r} is not a Hugging Face model directory: expected a folder with "
            "config.json, *.safetensors and the tokenizer files (save_pretrained writes them)")
    return p


def _ensure_pad_token(tok: PreTrainedTokenizerBase) -> None:
    """Give ``tok`` a pad token distinct from EOS, in place (padding must never be mistaken for
    the end of a response). Kept when it has one; else its UNK token when that is distinct from
    EOS and BOS (no new embedding row: Llama-style tokenizers); else a new ``<|pad|>`` token
    (the model's embeddings then grow by one row, ``_fit_embeddings``)."""
    if tok.pad_token_id is not None and tok.pad_token_id != tok.eos_token_id:
        return
    unk = tok.unk_token_id
    if unk is not None and unk not in (tok.eos_token_id, tok.bos_token_id):
        tok.pad_token = tok.unk_token
    else:
        tok.add_special_tokens({"pad_token": "<|pad|>"})


def _fit_embeddings(model: PreTrainedModel, tok: PreTrainedTokenizerBase) -> None:
    """Grow the embeddings to the tokenizer (a pad token was added) with a seeded init, so two
    loads of one directory give the same weights; record the pad id in the config."""
    if len(tok) > model.get_input_embeddings().weight.shape[0]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model.resize_token_embeddings(len(tok))
    model.config.pad_token_id = tok.pad_token_id


def load_tokenizer(path: str | os.PathLike) -> PreTrainedTokenizerBase:
    """Tokenizer from a local directory: left padding, a pad token distinct from EOS (see
    ``_ensure_pad_token``), its chat template if it has one (``instructgpt.text``)."""
    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)
    tok.padding_side = "left"
    _ensure_pad_token(tok)
    return tok


def load_causal_lm(
    path: str | os.PathLike, dropout: float | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from a local directory: safetensors only, float32, no remote code,
    nothing downloaded.

    A tokenizer without a pad token (or whose pad equals EOS) gets one (``load_tokenizer``);
    when that is a new token the embeddings grow by one row.
    """
    p = _check_model_dir(path)
    tok = load_tokenizer(p)
    model = AutoModelForCausalLM.from_pretrained(
        str(p), local_files_only=True, trust_remote_code=False, use_safetensors=True, dtype=torch.float32
    )
    if model.config.pad_token_id != tok.pad_token_id or len(tok) > model.get_input_embeddings().weight.shape[0]:
        _fit_embeddings(model, tok)
    if dropout is not None:
        set_dropout(model, dropout)
    return fuse_activations(model), tok


def same_tokenizer(a: PreTrainedTokenizerBase, b: PreTrainedTokenizerBase) -> bool:
    """True when ``a`` and ``b`` turn any (prompt, response) into the same ids: same vocabulary,
    special tokens, chat template and (fast tokenizers) the same normaliser, pre-tokeniser and
    model. Then a reward model can read the policy's token ids directly (PPO)."""
    if a is b:
        return True
    specials = ("bos_token_id", "eos_token_id", "pad_token_id", "unk_token_id")
    if any(getattr(a, k) != getattr(b, k) for k in specials):
        return False
    if (a.chat_template or None) != (b.chat_template or None) or a.get_vocab() != b.get_vocab():
        return False
    return _pipeline(a) == _pipeline(b)


def _pipeline(tok: PreTrainedTokenizerBase) -> object:
    """The fast tokenizer's serialised pipeline without its padding/truncation settings."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return type(tok).__name__
    spec = json.loads(backend.to_str())
    return {k: v for k, v in spec.items() if k not in ("padding", "truncation")}


def _atomic_dir(path: str | os.PathLike):
    """Write into ``path.tmp`` then swap it in, so a crash never leaves a half-written model."""
    final = Path(path)
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return final, tmp


def swap_in_dir(final: Path, tmp: Path) -> None:
    """Replace directory ``final`` by the finished ``tmp`` (rename: a reader sees old or new, never half)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    if old.exists():
        shutil.rmtree(old)


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, path: str | os.PathLike) -> None:
    """Save a causal LM (safetensors) and its tokenizer atomically into ``path``."""
    final, tmp = _atomic_dir(path)
    model.save_pretrained(str(tmp))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(tmp))
    swap_in_dir(final, tmp)


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted over real tokens only, so left padding does not shift them. (B, T)"""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def cache_kwarg(model: nn.Module) -> str:
    """Name of the KV-cache argument (and output field) of ``model.forward``: transformers 5.2x
    renamed ``past_key_values`` to ``cache``; both are accepted."""
    return _cache_kwarg_of(type(model))


@functools.cache
def _cache_kwarg_of(cls: type) -> str:
    return "cache" if "cache" in inspect.signature(cls.forward).parameters else "past_key_values"


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real (mask 1) token of each row. (B,)"""
    T = attention_mask.shape[-1]
    return T - 1 - attention_mask.long().flip(-1).argmax(-1)
