"""Helpers shared by the tests."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch


def same_weights(a: torch.nn.Module | Mapping[str, torch.Tensor], b: torch.nn.Module | Mapping[str, torch.Tensor]) -> bool:
    """Whether two models (or state dicts) hold equal tensors under every name. Names first: a
    tensor missing on one side is an AssertionError naming it, whether the caller expects the
    weights equal or different (`zip` over the values stopped at the shorter side and let a
    missing tensor pass; a different-weights check must not pass for a missing one either)."""
    sa = a.state_dict() if isinstance(a, torch.nn.Module) else a
    sb = b.state_dict() if isinstance(b, torch.nn.Module) else b
    missing, extra = sorted(set(sa) - set(sb)), sorted(set(sb) - set(sa))
    assert not missing and not extra, f"not the same tensors: only in the first {missing}, only in the second {extra}"
    return all(torch.equal(sa[k], sb[k]) for k in sa)


def write_jsonl(path: Path, rows: Iterable[dict | str | bytes]) -> Path:
    """``rows`` as a JSON Lines file at ``path`` (its folders created): a dict is JSON-encoded, a str is
    written as a line as it is, bytes as they are (a malformed line, an unterminated last line)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for row in rows:
            if isinstance(row, bytes):
                f.write(row)
            else:
                f.write((row if isinstance(row, str) else json.dumps(row)).encode() + b"\n")
    return path
