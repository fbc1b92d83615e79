"""Helpers shared by the tests."""

from __future__ import annotations

from collections.abc import Mapping

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
