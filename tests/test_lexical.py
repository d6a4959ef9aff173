"""The lexical baseline: the fit rows' majority label per token type, exactly."""

from __future__ import annotations

import pytest
import torch

from fracbench.evaluate.lexical import lexical_predictions


def test_each_type_predicts_its_fit_rows_majority_the_smallest_class_on_ties_and_unseen_types_the_fallback() -> None:
    fit_tokens = torch.tensor([5, 5, 5, 9, 9, 2, 2, 2, 2])
    fit_labels = torch.tensor([1, 1, 0, 2, 0, 3, 3, 1, 1])  # 5 -> 1; 9 -> tie 0/2 -> 0; 2 -> tie 1/3 -> 1
    tokens = torch.tensor([2, 9, 5, 7, 5])  # 7 never occurs in fit
    assert lexical_predictions(fit_tokens, fit_labels, tokens, fallback=4).tolist() == [1, 0, 1, 4, 1]
    assert lexical_predictions(fit_tokens, fit_labels, torch.tensor([100, 0]), fallback=3).tolist() == [3, 3]  # beyond either end


def test_bad_shapes_and_no_fit_rows_are_refused() -> None:
    with pytest.raises(ValueError, match="must both be"):
        lexical_predictions(torch.arange(3), torch.zeros(4, dtype=torch.long), torch.arange(2), 0)
    with pytest.raises(ValueError, match="no fit rows"):
        lexical_predictions(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.arange(2), 0)
