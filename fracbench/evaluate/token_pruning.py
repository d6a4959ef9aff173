"""Which input tokens the prediction needs: greedy likelihood-preserving pruning of a prompt's tokens, compared with
the characters the task's ground truth says carry the answer (docs/metrics.md, "Which input tokens the prediction
needs"). A diagnostic beside D and C.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..behaviour import completion_ids
from ..models.adapter import Encoding, ModelAdapter
from ..tasks import Example, Task

N_TOKEN_PRUNING = 32  # test prompts pruned per task (the first ones the model answers right)
TOKEN_KEEP_SHARE = 0.5  # pruning goes on while the best removal keeps this share of the whole prompt's logit difference


@dataclass
class PrunedPrompt:
    kept: list[int]  # character positions of the removable tokens left
    evidence: list[int]  # the task's evidence characters, outside the last token
    n_chars: int  # characters of the removable tokens (every text token but the last)
    full: float  # the whole prompt's logit difference
    pruned: float  # the logit difference of what is left


@torch.no_grad()
def _last_diffs(adapter: ModelAdapter, ids: torch.Tensor, offsets: torch.Tensor, target: int, foil: int) -> torch.Tensor:
    """[N] logit(target) - logit(foil) after the last token of each (unpadded) row of ``ids``."""
    enc = Encoding(ids, torch.ones_like(ids), offsets, [""] * len(ids))
    last = adapter.last_token_logits(enc)
    return (last[:, target] - last[:, foil]).double().cpu()


def prune_prompt(adapter: ModelAdapter, task: Task, example: Example, keep_share: float = TOKEN_KEEP_SHARE) -> PrunedPrompt | None:
    """``example``'s prompt pruned greedily; None when the model gets it wrong (nothing to preserve)."""
    enc = adapter.encode([example.prompt])
    ids, offsets = enc.ids[0], enc.offsets[0]
    targets, foils = completion_ids(adapter, task, [example])
    target, foil = int(targets[0]), int(foils[0])
    full = float(_last_diffs(adapter, ids[None], offsets[None], target, foil)[0])
    if full <= 0:
        return None
    last = len(ids) - 1
    kept = list(range(len(ids)))
    removable = [t for t in range(last) if offsets[t, 1] > offsets[t, 0]]  # text tokens: special tokens span nothing
    pruned = full
    while removable:
        rows = [[t for t in kept if t != r] for r in removable]
        index = torch.tensor(rows, device=ids.device)
        diffs = _last_diffs(adapter, ids[index], offsets[index], target, foil)
        best = int(torch.argmax(diffs))  # the first of equal maxima: the earliest token
        if float(diffs[best]) < keep_share * full:
            break
        kept.remove(removable[best])
        pruned = float(diffs[best])
        del removable[best]
    last_chars = set(range(int(offsets[last, 0]), int(offsets[last, 1])))
    chars = lambda tokens: sorted({c for t in tokens for c in range(int(offsets[t, 0]), int(offsets[t, 1]))} - last_chars)  # noqa: E731
    text_tokens = [t for t in range(last) if offsets[t, 1] > offsets[t, 0]]
    evidence = sorted(set(task.evidence(example) or ()) - last_chars)
    return PrunedPrompt(chars(removable), evidence, len(chars(text_tokens)), full, pruned)


def measure_token_pruning(adapter: ModelAdapter, task: Task, examples: Sequence[Example], n: int = N_TOKEN_PRUNING,
                          progress: bool = False) -> list[PrunedPrompt]:
    """The first ``n`` of ``examples`` the model answers right, pruned (fewer when fewer are right)."""
    out = []
    bar = tqdm(total=n, desc=f"{task.name} token pruning", disable=not progress, leave=False)
    for example in examples:
        if len(out) == n:
            break
        pruned = prune_prompt(adapter, task, example)
        if pruned is not None:
            out.append(pruned)
            bar.update()
    bar.close()
    return out
