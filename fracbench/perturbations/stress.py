"""Stress tests of a circuit and of the full model, one robustness curve per perturbation.

Each curve point holds per-prompt logit differences for two conditions: ``model`` (the
full model, perturbed at the circuit's nodes or weights) and ``circuit`` (the circuit
alone, every other node mean-ablated, perturbed the same way). Perturbations:

* ``activation_noise``: Gaussian noise added to every circuit node, sigma a multiple of
  that node's standard deviation over the task's training tokens;
* ``weight_noise``: Gaussian noise on the circuit's edges (weights joining two kept
  nodes), sigma a multiple of the standard deviation of the matrix's nonzero entries (a lone
  nonzero entry: its magnitude); native models only (adapters that expose their weights);
* ``dropout``: a random fraction of the circuit's nodes mean-ablated (redundancy);
* ``distractors``: neutral code lines inserted into the prompts
  (:mod:`fracbench.perturbations.inputs`), the circuit found on clean prompts.

Every draw is seeded from (kind, level, seed): the same seed gives the same curves. The full model
and the circuit get the same draws (common random numbers: the difference between the two curves
is the circuit's, not the noise's), and draws follow nodes, not indices (:mod:`fracbench.circuits.keys`),
so a model with its neurons and heads reordered gets the same curves.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from ..circuits.ablation import NodeStatistics, PromptBatches, ablated_logit_diffs, logit_diffs_under
from ..circuits.keys import NodeOrder
from ..circuits.nodes import NodeSite
from ..models.adapter import ModelAdapter
from ..tasks import Task
from ..tasks.base import stable_seed
from .inputs import DISTRACTOR_LEVELS, distractor_examples

ACTIVATION_NOISE_SIGMAS = (0.5, 1.0, 2.0, 4.0)  # x each node's standard deviation
WEIGHT_NOISE_SIGMAS = (0.25, 0.5, 1.0, 2.0)  # x the standard deviation of the matrix's nonzero weights
DROPOUT_FRACTIONS = (0.1, 0.25, 0.5, 0.75)  # of the circuit's nodes


@dataclass
class CurvePoint:
    level: float  # sigma, fraction or distractor lines
    model: torch.Tensor  # [N] logit differences of the perturbed full model
    circuit: torch.Tensor  # [N] logit differences of the perturbed circuit alone


def _generator(*parts: object) -> torch.Generator:
    return torch.Generator().manual_seed(stable_seed(*parts))


def _both(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, stats: NodeStatistics,
          kept: dict[str, torch.Tensor], make_edit=None) -> tuple[torch.Tensor, torch.Tensor]:
    """(full model, circuit alone) logit differences with the edit ``make_edit()`` returns applied at the node
    sites; it is made afresh for each condition, so both draw the same random numbers."""
    model = ablated_logit_diffs(adapter, batches, sites, {}, stats.values, make_edit() if make_edit else None)
    circuit = ablated_logit_diffs(adapter, batches, sites, kept, stats.values, make_edit() if make_edit else None)
    return model, circuit


def activation_noise(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, stats: NodeStatistics,
                     kept: dict[str, torch.Tensor], seed: int, order: NodeOrder,
                     sigmas: Sequence[float] = ACTIVATION_NOISE_SIGMAS) -> list[CurvePoint]:
    points = []
    for sigma in sigmas:
        def make_edit(sigma: float = sigma):
            generator = _generator("activation_noise", sigma, seed)

            def edit(site: NodeSite, nodes: torch.Tensor) -> torch.Tensor:
                scale = sigma * site.per_node(stats.stds[site.name]) * kept[site.name].to(nodes.dtype)[:, None]  # circuit nodes only
                noise = order.normal(site, tuple(nodes.shape[:-2]), generator).to(nodes.device, nodes.dtype)
                return nodes + noise * scale

            return edit

        points.append(CurvePoint(sigma, *_both(adapter, sites, batches, stats, kept, make_edit)))
    return points


def dropout(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, stats: NodeStatistics,
            kept: dict[str, torch.Tensor], seed: int, order: NodeOrder,
            fractions: Sequence[float] = DROPOUT_FRACTIONS) -> list[CurvePoint]:
    names = [s.name for s in sites]
    flat = torch.cat([kept[n].cpu() for n in names])
    members = order.canonical[flat[order.canonical]]  # the circuit's nodes in key order
    points = []
    for fraction in fractions:
        chosen = torch.randperm(len(members), generator=_generator("dropout", fraction, seed))
        dropped = torch.zeros_like(flat)
        dropped[members[chosen[: round(fraction * len(members))]]] = True
        split = dict(zip(names, dropped.split([s.n_nodes for s in sites])))
        model_keep = {n: ~split[n].to(kept[n].device) for n in names}
        circuit_keep = {n: kept[n] & model_keep[n] for n in names}
        model = ablated_logit_diffs(adapter, batches, sites, model_keep, stats.values)
        circuit = ablated_logit_diffs(adapter, batches, sites, circuit_keep, stats.values)
        points.append(CurvePoint(fraction, model, circuit))
    return points


def weight_noise(adapter: ModelAdapter, sites: Sequence[NodeSite], batches: PromptBatches, stats: NodeStatistics,
                 kept: dict[str, torch.Tensor], seed: int, order: NodeOrder,
                 sigmas: Sequence[float] = WEIGHT_NOISE_SIGMAS) -> list[CurvePoint] | None:
    """None when the adapter does not expose its weights. The model and the circuit carry the same noisy weights."""
    try:
        adapter.weight_links()
    except NotImplementedError:
        return None
    points = []
    for sigma in sigmas:
        with _noisy_edges(adapter, kept, sigma, _generator("weight_noise", sigma, seed), order):
            points.append(CurvePoint(sigma, *_both(adapter, sites, batches, stats, kept)))
    return points


@contextmanager
def _noisy_edges(adapter: ModelAdapter, kept: dict[str, torch.Tensor], sigma: float, generator: torch.Generator,
                 order: NodeOrder) -> Iterator[None]:
    """Add noise to every weight joining two kept nodes (drawn in the nodes' key order); the weights are restored
    on exit, whatever happens."""
    saved = []
    try:
        with torch.no_grad():
            for link in adapter.weight_links():
                rows, cols = kept.get(link.out_site), kept.get(link.in_site)
                if rows is None or cols is None:
                    continue
                w = link.weight
                saved.append((w, w.detach().clone()))
                edges = (rows[:, None] & cols[None, :]) & (w != 0)
                scale = sigma * _spread(w)
                noise = torch.randn(w.shape, generator=generator)
                noise = order.per_node(link.in_site, order.per_node(link.out_site, noise, dim=0), dim=1).to(w.device, w.dtype)
                w.add_(noise * scale * edges)
        yield
    finally:
        with torch.no_grad():
            for w, original in saved:
                w.copy_(original)


def _spread(w: torch.Tensor) -> float:
    """The scale weight noise is drawn in: the standard deviation of the matrix's nonzero weights; a lone nonzero weight
    (a hand-set model's matrix) has no spread, so its magnitude; 0 for an all-zero matrix."""
    nonzero = w[w != 0]
    if nonzero.numel() == 0:
        return 0.0
    return float(nonzero.std()) if nonzero.numel() > 1 else float(nonzero.abs()[0])


def distractors(adapter: ModelAdapter, task: Task, sites: Sequence[NodeSite], stats: NodeStatistics, kept: dict[str, torch.Tensor],
                n: int, seed: int, batch_size: int = 64, levels: Sequence[int] = tuple(range(1, len(DISTRACTOR_LEVELS) + 1))) -> list[CurvePoint]:
    """Curve over distractor levels (``DISTRACTOR_LEVELS[level - 1]`` lines inserted); the level recorded is the line count."""
    points = []
    for level in levels:
        batches = PromptBatches.build(adapter, task, distractor_examples(task, n, seed, level), batch_size)
        model = logit_diffs_under(adapter, batches)
        circuit = ablated_logit_diffs(adapter, batches, sites, kept, stats.values)
        points.append(CurvePoint(float(DISTRACTOR_LEVELS[level - 1]), model, circuit))
    return points
