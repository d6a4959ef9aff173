"""Behaviour: the model's binary choice between target and foil, per example.

The raw per-item number is the logit difference ``logit(target) - logit(foil)`` at
the prompt's last token; an item is correct when it is positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from .config import BATCH_SIZE
from .models.adapter import ModelAdapter
from .tasks import Example, Task


def completion_ids(adapter: ModelAdapter, task: Task, examples: Sequence[Example]) -> tuple[torch.Tensor, torch.Tensor]:
    """Target and foil token ids [N]; a completion that is not one token raises, naming the task."""
    cache: dict[str, int] = {}

    def one(ex: Example, which: str) -> int:
        text = getattr(ex, which)
        if text not in cache:
            try:
                cache[text] = adapter.completion_id(text)
            except ValueError as err:
                raise ValueError(f"task {task.name!r}: the {which} completion {text!r} cannot be scored on {adapter.info.name}: {err}") from None
        return cache[text]

    targets = torch.tensor([one(ex, "target") for ex in examples])
    foils = torch.tensor([one(ex, "foil") for ex in examples])
    return targets, foils


@torch.no_grad()
def logit_diffs(
    adapter: ModelAdapter,
    task: Task,
    examples: Sequence[Example],
    batch_size: int = BATCH_SIZE,
    progress: bool = False,
    desc: str = "",
) -> torch.Tensor:
    """[N] float64 logit(target) - logit(foil) at each prompt's last token."""
    targets, foils = completion_ids(adapter, task, examples)
    out = []
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt))  # similar lengths batch together
    for start in tqdm(range(0, len(order), batch_size), desc=desc, disable=not progress, leave=False):
        idx = order[start : start + batch_size]
        enc = adapter.encode([examples[i].prompt for i in idx])
        last = adapter.last_token_logits(enc).double().cpu()
        rows = torch.arange(len(idx))
        out.append((idx, last[rows, targets[idx]] - last[rows, foils[idx]]))
    diffs = torch.empty(len(examples), dtype=torch.float64)
    for idx, d in out:
        diffs[idx] = d
    return diffs
