"""Behaviour scoring: per-item logit differences, in example order, with errors that name the task."""

from __future__ import annotations

import pytest
import torch

from fracbench.behaviour import logit_diffs
from fracbench.models.native import NativeAdapter
from fracbench.tasks import get_task


def test_logit_diffs_are_target_minus_foil_at_the_last_token(tiny_adapter: NativeAdapter) -> None:
    task = get_task("dict_or_list")
    examples = task.examples("test", 7)
    diffs = logit_diffs(tiny_adapter, task, examples, batch_size=3)
    for ex, d in zip(examples, diffs):
        logits = tiny_adapter.forward(tiny_adapter.encode([ex.prompt])).logits[0, -1]
        expected = logits[tiny_adapter.completion_id(ex.target)] - logits[tiny_adapter.completion_id(ex.foil)]
        assert d.item() == pytest.approx(expected.item(), abs=1e-5)
    assert diffs.dtype == torch.float64


def test_a_completion_the_model_cannot_score_names_the_task_and_completion(tiny_adapter: NativeAdapter, monkeypatch) -> None:
    def two_tokens(completion: str) -> int:
        raise ValueError(f"{completion!r} splits into 2 tokens")

    monkeypatch.setattr(tiny_adapter, "completion_id", two_tokens)
    with pytest.raises(ValueError, match=r"task 'quote_close': the target completion .* cannot be scored on tiny: .* splits into 2 tokens"):
        logit_diffs(tiny_adapter, get_task("quote_close"), get_task("quote_close").examples("test", 2))
