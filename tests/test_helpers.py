"""The tests' own helpers fail where they should."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import same_weights


def test_same_weights_compares_names_before_tensors():
    a = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    b = torch.nn.Sequential(torch.nn.Linear(2, 2))
    b[0].load_state_dict(a[0].state_dict())
    # the old check, all(torch.equal(x, y) for x, y in zip(...values())), passed here: zip stops at b's end
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    with pytest.raises(AssertionError, match=r"only in the first \['1.bias', '1.weight'\]"):
        same_weights(a, b)
    with pytest.raises(AssertionError, match="only in the second"):
        assert not same_weights(b, a)  # "the weights differ" must not pass on a missing tensor either
    assert same_weights(a, a.state_dict())
    c = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    assert not same_weights(a, c)
