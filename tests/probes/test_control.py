"""Control labels are a function of token identity, seeded, with the real labels' classes."""

from __future__ import annotations

import pytest
import torch

from fracbench.probes.control import control_labels


def test_control_labels_are_a_function_of_the_token() -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 50, (5000,), generator=g)
    labels = torch.randint(0, 3, (5000,), generator=g)
    control = control_labels(tokens, labels, seed=1)
    for t in tokens.unique():
        assert control[tokens == t].unique().numel() == 1
    assert set(control.tolist()) <= {0, 1, 2} and control.unique().numel() == 3
    assert torch.equal(control, control_labels(tokens, labels, seed=1))
    assert not torch.equal(control, control_labels(tokens, labels, seed=2))


def test_control_labels_follow_the_class_balance_over_token_types() -> None:
    tokens = torch.arange(4000)  # every row its own type: the draw is per row
    labels = torch.tensor([0] * 3000 + [1] * 1000)
    share = control_labels(tokens, labels).float().mean().item()
    assert 0.22 < share < 0.28


def test_mismatched_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="both be \\[N\\]"):
        control_labels(torch.arange(3), torch.zeros(4, dtype=torch.long))
