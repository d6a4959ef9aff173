"""Counterfactual prompts for resample ablation (docs/metrics.md, "Resample ablation").

A prompt's counterfactual is a real prompt of the same task and split with another target and the
same number of tokens, so that an ablated node can take its activation there position for position.
It is drawn from the task's own generator on a stream seeded apart from the prompts'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from ..models.adapter import ModelAdapter
from ..tasks import Example, Task
from ..tasks.base import stable_seed

COUNTERFACTUAL_DRAWS = 16  # draws of the generator per prompt to look for counterfactuals in
ENCODE_CHUNK = 256  # candidates tokenized at a time


def token_counts(adapter: ModelAdapter, prompts: Sequence[str]) -> list[int]:
    """How many tokens the adapter reads for each prompt (special tokens included)."""
    out: list[int] = []
    for start in range(0, len(prompts), ENCODE_CHUNK):
        out += adapter.encode(list(prompts[start : start + ENCODE_CHUNK])).attention_mask.sum(dim=1).tolist()
    return out


def counterfactual_examples(adapter: ModelAdapter, task: Task, examples: Sequence[Example], split: str,
                            seed: int) -> list[Example | None]:
    """For each example, the first unused draw (of ``COUNTERFACTUAL_DRAWS`` per example) of ``task`` on ``split``
    with as many tokens and another target; None where the draws hold none (the prompt is then mean-ablated)."""
    draws = task.examples(split, COUNTERFACTUAL_DRAWS * len(examples), stable_seed("counterfactual", seed))
    by_length: dict[int, list[int]] = defaultdict(list)  # token count -> draws of that length, in draw order
    for j, n_tokens in enumerate(token_counts(adapter, [d.prompt for d in draws])):
        by_length[n_tokens].append(j)
    used: set[int] = set()
    out: list[Example | None] = []
    for example, n_tokens in zip(examples, token_counts(adapter, [e.prompt for e in examples])):
        j = next((j for j in by_length[n_tokens] if j not in used and draws[j].target != example.target), None)
        if j is not None:
            used.add(j)
        out.append(None if j is None else draws[j])
    return out
