"""Mechanism reuse across regimes: the task's circuit found separately in regimes of its input, and each regime's
circuit measured in the others (docs/metrics.md, "Mechanism reuse across regimes").

Two axes, each a pair of regimes with the same answer distribution: ``length`` (prompts shorter than
:data:`SHORT_PROMPT_CHARS` characters, ``short``, against the rest, ``long``) and ``ood`` (the reported
in-distribution circuit, ``id``, against one searched on the task's usable OOD splits pooled, ``ood``). Every regime
circuit is found by the task's search with one restart, the task's in-distribution ablation values and the same
target, and is then measured alone, beside random node sets of its size, on every in-distribution test prompt and on
the pooled OOD test prompts: scoring partitions them into regimes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from ..config import RunConfig
from ..models.adapter import ModelAdapter
from ..tasks import Example, Task
from ..tasks.base import stable_seed
from .ablation import AblationValues, PromptBatches, ablated_logit_diffs
from .curves import random_ranking, top
from .keys import NodeOrder
from .nodes import NodeSite
from .search import DEFAULT_STEPS, SearchSettings, search_circuits

SHORT_PROMPT_CHARS = 32  # a prompt shorter than this is in the "short" regime: about the median train prompt of the suite (29)
N_REGIME_RANDOM = 3  # random node sets of each regime circuit's size, measured beside it
MAX_DRAWS_PER_PROMPT = 64  # a length regime draws at most this many train prompts per prompt it needs, then takes what it found
REGIMES = ("id", "short", "long", "ood")


def is_short(example: Example) -> bool:
    return len(example.prompt) < SHORT_PROMPT_CHARS


def length_regime_examples(task: Task, regime: str, n: int, seed: int) -> list[Example]:
    """The first ``n`` train examples (in draw order) of the ``short`` or ``long`` regime; fewer when the task's
    train split rarely reaches it (at most ``MAX_DRAWS_PER_PROMPT * n`` draws)."""
    if regime not in ("short", "long"):
        raise ValueError(f"a length regime is 'short' or 'long', got {regime!r}")
    drawn, chunk = [], 4 * n
    while True:
        examples = task.examples("train", len(drawn) + chunk, seed)
        drawn = [ex for ex in examples if is_short(ex) == (regime == "short")]
        if len(drawn) >= n or len(examples) >= MAX_DRAWS_PER_PROMPT * n:
            return drawn[:n]
        chunk *= 2


def ood_regime_examples(task: Task, splits: Sequence[str], n: int, seed: int) -> list[Example]:
    """``n`` examples of the usable OOD ``splits``, taken in turn, drawn with a seed kept apart from the test prompts'."""
    if not splits:
        return []
    per = math.ceil(n / len(splits))
    drawn = [task.examples(split, per, stable_seed("regime search", seed)) for split in sorted(splits)]
    return [drawn[i % len(drawn)][i // len(drawn)] for i in range(n)]


def ood_pool(splits: Sequence[str], n_test: int) -> list[tuple[str, int]]:
    """The pooled OOD regime's test prompts: the first ``ceil(n_test / k)`` of each of the k usable splits' test prompts,
    as (split, index) pairs."""
    if not splits:
        return []
    per = min(n_test, math.ceil(n_test / len(splits)))
    return [(split, i) for split in sorted(splits) for i in range(per)]


@dataclass
class RegimeCircuit:
    """A regime's circuit and what it does alone on the in-distribution test prompts and the pooled OOD prompts."""

    kept: dict[str, torch.Tensor]  # site -> bool [n_nodes]
    search_sufficiency: float | None  # None: the regime's search prompts show no behaviour, no circuit
    test: torch.Tensor | None  # [N test] logit differences with the circuit alone
    ood: torch.Tensor | None  # [N pool]
    random_test: list[torch.Tensor]  # per random set of its size, [N test]
    random_ood: list[torch.Tensor]  # per random set, [N pool]

    @property
    def n_nodes(self) -> int:
        return int(sum(int(k.sum()) for k in self.kept.values()))


@dataclass
class RegimeMeasurement:
    short: list[bool]  # per in-distribution test prompt
    ood_prompts: list[tuple[str, int]]  # the pooled OOD regime's test prompts
    circuits: dict[str, RegimeCircuit]  # "id", "short", "long" and (with usable OOD splits) "ood"


@dataclass
class ReportedCircuit:
    """The task's reported in-distribution circuit, as the run measured it: the ``id`` regime."""

    kept: dict[str, torch.Tensor]
    search_sufficiency: float
    test: torch.Tensor  # [N test] alone on the test prompts
    ood: Mapping[str, torch.Tensor]  # OOD split -> [n_test] alone on the split's test prompts


def measure_regimes(adapter: ModelAdapter, task: Task, sites: Sequence[NodeSite], values: AblationValues, order: NodeOrder,
                    reported: ReportedCircuit, test: Sequence[Example], test_batches: PromptBatches, usable: Sequence[str],
                    config: RunConfig, *, n_search: int, search_batch: int = 64, steps: int = DEFAULT_STEPS,
                    progress: bool = False) -> RegimeMeasurement:
    """The regime circuits of ``task`` and their measurements (``config``'s n_test, seed and batch size; each regime
    searched with ``steps`` on ``n_search`` prompts and bisected on as many more); ``usable`` names the OOD splits where
    the model keeps its behaviour and the latents decode."""
    n_test, seed, batch_size = config.n_test, config.seed, config.batch_size
    pool = ood_pool(usable, n_test)
    pool_examples = {split: task.examples(split, n_test, seed) for split in sorted(set(s for s, _ in pool))}
    pool_batches = PromptBatches.build(adapter, task, [pool_examples[s][i] for s, i in pool], batch_size) if pool else None

    def alone(keep: Mapping[str, torch.Tensor], batches: PromptBatches | None) -> torch.Tensor | None:
        return None if batches is None else ablated_logit_diffs(adapter, batches, sites, keep, values)

    def measured(name: str, kept: dict[str, torch.Tensor], sufficiency: float | None, on_test: torch.Tensor | None = None,
                 on_ood: torch.Tensor | None = None) -> RegimeCircuit:
        if sufficiency is None:
            return RegimeCircuit(kept, None, None, None, [], [])
        size = int(sum(int(k.sum()) for k in kept.values()))
        randoms = [top(sites, random_ranking(order, stable_seed("regime random", seed, name), draw), size, adapter.device)
                   for draw in range(N_REGIME_RANDOM)]
        return RegimeCircuit(kept, sufficiency, alone(kept, test_batches) if on_test is None else on_test,
                             alone(kept, pool_batches) if on_ood is None else on_ood,
                             [alone(r, test_batches) for r in randoms], [alone(r, pool_batches) for r in randoms if pool_batches])

    id_ood = torch.stack([reported.ood[s][i] for s, i in pool]) if pool else None
    out = {"id": measured("id", dict(reported.kept), reported.search_sufficiency, reported.test, id_ood)}
    sources = {"short": lambda n: length_regime_examples(task, "short", n, seed),
               "long": lambda n: length_regime_examples(task, "long", n, seed)}
    if usable:
        sources["ood"] = lambda n: ood_regime_examples(task, usable, n, seed)
    for name, draw in tqdm(sources.items(), desc=f"{task.name} regimes", disable=not progress, leave=False):
        examples = draw(2 * n_search)
        if len(examples) < 2:
            out[name] = measured(name, _nothing(sites, adapter.device), None)
            continue
        half = len(examples) // 2
        searched = PromptBatches.build(adapter, task, examples[:half], search_batch)
        held_out = PromptBatches.build(adapter, task, examples[half:], batch_size)
        settings = SearchSettings(steps=steps, seed=stable_seed("regime search", seed, name), ranking=config.ranking)
        found = search_circuits(adapter, sites, searched, values, settings, held_out=held_out, order=order,
                                desc=f"{task.name} {name} circuit")[0]
        out[name] = measured(name, found.kept, found.search_sufficiency)
    return RegimeMeasurement([is_short(ex) for ex in test], pool, out)


def _nothing(sites: Sequence[NodeSite], device: torch.device) -> dict[str, torch.Tensor]:
    return {s.name: torch.zeros(s.n_nodes, dtype=torch.bool, device=device) for s in sites}
