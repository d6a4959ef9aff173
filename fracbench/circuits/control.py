"""The circuit control task: the same search for labels the model does not compute (docs/metrics.md, "Circuit
control task").

A learned mask can make a model compute what it does not compute by itself (Drori 2026; Lepori et al. 2023), so a
circuit is evidence only by its margin over what the search finds for a nonsense version of the task. Here the
nonsense is typed, as Hewitt & Liang's (2019) control tasks for probes are: the control's target is the task's
target or its foil by a seeded random function of the prompt's length in characters, which recurs across prompts
(so a mask wiring a length detector to the output would generalize) and which no model is trained on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..models.adapter import ModelAdapter
from ..tasks import Example, Task
from ..tasks.base import stable_seed
from .ablation import AblationValues, PromptBatches
from .curves import learned_ranking, ranking_curve
from .keys import NodeOrder
from .nodes import NodeSite
from .search import SearchSettings, batch_spans, learn_scores


def control_flips(task: Task, examples: Sequence[Example], seed: int) -> list[bool]:
    """Per example, whether the control's target is the task's foil: bit 0 of a seeded hash of the prompt's length."""
    return [bool(stable_seed("circuit control", task.name, seed, len(ex.prompt)) & 1) for ex in examples]


def control_examples(examples: Sequence[Example], flips: Sequence[bool]) -> list[Example]:
    """The examples with target and foil swapped where ``flips`` says so (the prompts and latents unchanged)."""
    return [dataclasses.replace(ex, target=ex.foil, foil=ex.target) if flip else ex for ex, flip in zip(examples, flips)]


@dataclass
class ControlMeasurement:
    """The control ranking cut at the real circuit's size and at every curve size, on the test prompts (logit
    differences of the real task, target minus foil: the control's are these times -1 where ``flip``)."""

    flip: list[bool]  # per test prompt
    circuit: torch.Tensor  # [N] at the real circuit's size
    learned: list[torch.Tensor]  # per curve size, [N]


def measure_control(adapter: ModelAdapter, task: Task, sites: Sequence[NodeSite], means: AblationValues, order: NodeOrder,
                    search: Sequence[Example], test: Sequence[Example], test_batches: PromptBatches, circuit_size: int,
                    sizes: Sequence[int], settings: SearchSettings = SearchSettings(), *, search_batch: int = 64,
                    progress: bool = False, full: torch.Tensor | None = None) -> ControlMeasurement | None:
    """One control search (``settings``, its seed drawn from theirs, one restart) on the ``search`` prompts (the task's
    own search prompts, control labels), normalized by the real task's span on each batch; its ranking alone at
    ``circuit_size`` and at ``sizes`` on the ``test`` prompts (``test_batches``, built from them with the real labels;
    ``full``, the full model's logit differences there, is the curve's 100% point when given). None when the real task
    shows no behaviour."""
    seed = settings.seed
    spans = batch_spans(adapter, sites, PromptBatches.build(adapter, task, search, search_batch), means)
    labels = PromptBatches.build(adapter, task, control_examples(search, control_flips(task, search, seed)), search_batch)
    control = dataclasses.replace(settings, seed=stable_seed("control search", seed), restarts=1)
    scores = learn_scores(adapter, sites, labels, means, control, order=order, spans=spans, progress=progress,
                          desc=f"{task.name} control")
    if scores is None:
        return None
    ranking = learned_ranking(sites, scores[0], order)
    at = ranking_curve(adapter, sites, test_batches, means, ranking, [circuit_size, *sizes], full)
    return ControlMeasurement(control_flips(task, test, seed), at[0], at[1:])
